#!/usr/bin/env bash
# Recovery benchmark: what the per-segment figures of push_fetch_bench.sh mean for a DBA, the
# time a real PostgreSQL 15 needs to replay archived WAL through restore_command.
#
# One cluster archives every segment twice (archive_command runs walpush, lz4 + AES-256-GCM,
# then pgbackrest archive-push, lz4) while pgbench writes BENCH_SEGMENTS segments after a base
# backup.  The base backup is then recovered to the end of the archive, once per variant:
#   walfetch                  (default: read-ahead of 8 segments)
#   walfetch --prefetch 0     (one process fetches each segment itself)
#   pgbackrest archive-get    (archive-async=n, pgBackRest's default)
#   pgbackrest archive-get    (archive-async=y, its read-ahead queue)
# in rotating order, BENCH_ROUNDS times.  The figure is PostgreSQL's own "redo done ... elapsed"
# (from the first record replayed to the last), medians over the rounds.
# Not a test: run it by hand as root on an idle machine.  Env: BENCH_SEGMENTS (default 64),
# BENCH_ROUNDS (default 3), BENCH_KEEP=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
WS_SCRIPT=recovery_bench
WS_KEEP=${BENCH_KEEP:-0}
nseg=${BENCH_SEGMENTS:-64}
rounds=${BENCH_ROUNDS:-3}
[[ $(id -u) -eq 0 ]] || ws_die "run as root (the servers run as the postgres user)"
command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (scripts/install-deps)"
ws_setup
ws_require_tool walpush walfetch

key=$WS_TMP/key
ws_make_key "$key"
ws_pg_dir "$WS_TMP/wsrepo"
ws_opts=(--repo "file://$WS_TMP/wsrepo" --key-file "$key")

primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pgbr_setup "$primary" "$port" archive-async=n
pgbr=("${PGBR[@]}")
pg_enable_archiving "$primary" \
  "$(ws_tool_cmd walpush "${ws_opts[@]}" --compression lz4 %p) && $(printf '%q ' "${pgbr[@]}") archive-push %p"
pg_start "$primary" "$port"
as_pg "${pgbr[@]}" stanza-create >/dev/null
pg_pgbench "$port" -i -q -s 10 >/dev/null 2>&1
pg_base_backup "$port" "$WS_TMP/backup"
start_seg=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p' "$WS_TMP/backup/backup_label")
ws_log "base backup taken (WAL from $start_seg); writing $nseg segments with pgbench"
lsn_start=$(pg_psql "$port" "select pg_current_wal_lsn()")
while :; do
  written=$(pg_psql "$port" "select (pg_current_wal_lsn() - '$lsn_start'::pg_lsn) / 16777216")
  ((${written%.*} >= nseg)) && break
  pg_pgbench "$port" -c 2 -n -T 5 >/dev/null 2>&1
done
ws_check "everything archived by both tools" pg_switch_and_wait_archived "$port"
pg_stop "$primary"
archived=$(find "$WS_TMP/wsrepo" -type f -name '[0-9A-F]*' ! -name '*.*' | wc -l)
ws_log "$archived segments archived"

fetch_ws=$(ws_tool_cmd walfetch "${ws_opts[@]}" %f %p)
variants=(
  "walfetch (read-ahead, default)|$fetch_ws"
  "walfetch --prefetch 0|$(ws_tool_cmd walfetch "${ws_opts[@]}" --prefetch 0 %f %p)"
  # pgBackRest insists that pg1-path is the data directory it runs in: @DIR@ is set per restore.
  "pgbackrest archive-get (sync)|$(printf '%q ' "${pgbr[@]}") --pg1-path=@DIR@ archive-get %f \"%p\""
  "pgbackrest archive-get (async)|$(printf '%q ' "${pgbr[@]}") --pg1-path=@DIR@ --archive-async archive-get %f \"%p\""
)
results=$WS_TMP/results.tsv
: >"$results"
n=0
for ((round = 0; round < rounds; round++)); do
  for ((k = 0; k < ${#variants[@]}; k++)); do
    v=${variants[$(((k + round) % ${#variants[@]}))]}
    label=${v%%|*}
    n=$((n + 1))
    dir=$WS_TMP/restore-$n
    cmd=${v#*|}
    cmd=${cmd//@DIR@/$dir}
    p=$(ws_free_port)
    rm -rf "$WS_TMP/pgbr-spool/archive"
    pg_prepare_recovery "$WS_TMP/backup" "$dir" "$cmd" "recovery_target_action = 'promote'"
    pg_start "$dir" "$p"
    pg_wait_recovery_done "$p" || ws_die "recovery with $label failed"
    pg_stop "$dir"
    line=$(grep -m1 'redo done at' "$(pg_log "$dir")") || ws_die "no 'redo done' line for $label"
    elapsed=$(sed -n 's/.*elapsed: \([0-9.]*\) s.*/\1/p' <<<"$line")
    replayed=$(grep -c 'restored log file "[0-9A-F]\{24\}" from archive' "$(pg_log "$dir")" || true)
    ws_log "$label: redo $elapsed s, $replayed segments from the archive"
    printf '%s\t%s\t%s\n' "$label" "$elapsed" "$replayed" >>"$results"
    rm -rf "$dir"
  done
done

python3 - "$results" "$(pgbackrest version)" "$(nproc)" <<'PY'
import statistics, sys
from collections import defaultdict
path, version, cores = sys.argv[1:4]
t = defaultdict(list)
segs = {}
for line in open(path):
    label, elapsed, replayed = line.rstrip("\n").split("\t")
    t[label].append(float(elapsed))
    segs[label] = int(replayed)
order = ["walfetch (read-ahead, default)", "walfetch --prefetch 0",
         "pgbackrest archive-get (sync)", "pgbackrest archive-get (async)"]
print()
print(f"PostgreSQL 15 redo of archived WAL through restore_command, {cores} cores, {version}")
print(f"{'':<34}{'segments':>9}{'median s':>10}{'min s':>8}{'max s':>8}{'ms/segment':>12}")
for label in order:
    q = t[label]
    m = statistics.median(q)
    print(f"{label:<34}{segs[label]:>9}{m:>10.2f}{min(q):>8.2f}{max(q):>8.2f}{1000 * m / max(1, segs[label]):>12.1f}")
med = {k: statistics.median(v) for k, v in t.items()}
print()
print(f"walfetch default / archive-get default (sync): {med[order[0]] / med[order[2]]:.2f}")
print(f"walfetch read-ahead / archive-get async:       {med[order[0]] / med[order[3]]:.2f}")
print(f"walfetch --prefetch 0 / archive-get sync:      {med[order[1]] / med[order[2]]:.2f}")
load = open("/proc/loadavg").read().split()[:3]
print(f"load average at the end: {' '.join(load)}")
PY
