#!/usr/bin/env bash
# Core benchmark: walpush / walfetch vs pgbackrest archive-push / archive-get
# on the same real 16 MiB WAL segments made by pgbench, in one run.
#   walstore:  file:// repository, lz4 + AES-256-GCM; walfetch with and without read-ahead
#   pgBackRest 2.x: posix repository, lz4, no encryption; archive-push synchronous,
#              archive-get both synchronous and asynchronous (archive-async=y, read-ahead)
# Every command runs as the postgres user (at nice -15, BENCH_NICE), one process per segment as
# PostgreSQL would run it, alternating which tool goes first.  Prints the median wall time per segment, the ratios and
# the peak RSS of each tool (GNU time %M).  Not a test: run it by hand (as root).
# Then the fetches again back to back (every segment in a row per mode, as a standby catching up).
# Env: BENCH_SEGMENTS (default 48), BENCH_B2B_ROUNDS (2), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
WS_SCRIPT=push_fetch_bench
WS_KEEP=${BENCH_KEEP:-0}
nseg=${BENCH_SEGMENTS:-48}
# Both tools run at this nice level (root may raise priority), so that other work on the machine
# disturbs the figures less.  BENCH_NICE=0 to measure at normal priority.
prio=${BENCH_NICE:--15}
[[ $(id -u) -eq 0 ]] || ws_die "run as root (the tools run as the postgres user)"

command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (scripts/install-deps)"
[[ -x /usr/bin/time ]] || ws_die "GNU time not installed (apt-get install time)"
ws_setup
ws_require_tool walpush walfetch

ws_log "making $nseg+ segments of real WAL with pgbench"
wal=$WS_TMP/wal
WS_WAL_SCALE=10 WS_WAL_TPCB_SECONDS=5 ws_make_wal "$wal" "$nseg"
mapfile -t segs < <(ws_segments "$wal")
segs=("${segs[@]:0:$nseg}")
chmod 0644 "$wal"/*
ws_log "${#segs[@]} segments ${segs[0]}..${segs[-1]}, system id $WS_WAL_SYSID"

# walstore
key=$WS_TMP/key
ws_make_key "$key"
ws_pg_dir "$WS_TMP/wsrepo"
ws_opts=(--repo "file://$WS_TMP/wsrepo" --key-file "$key")

# pgBackRest: a stanza for the cluster that made the WAL (stanza-create needs it running).
port=$(ws_free_port)
pgbr_setup "$WS_WAL_DATADIR" "$port" archive-async=n
pgbr=("${PGBR[@]}")
pg_start "$WS_WAL_DATADIR" "$port"
as_pg "${pgbr[@]}" stanza-create >/dev/null
pg_stop "$WS_WAL_DATADIR"

ws_pg_dir "$WS_TMP/fetched"
results=$WS_TMP/results.tsv
: >"$results"
chmod 0666 "$results"

# measure TOOL OP SEG CMD...: one run as postgres; appends
# "tool op seg wall_microseconds rss_kib user_seconds system_seconds".
measure() {
  local tool=$1 op=$2 seg=$3
  shift 3
  # shellcheck disable=SC2016  # expanded by the inner bash
  nice -n "$prio" runuser -u postgres -- bash -c '
    out=$1 tool=$2 op=$3 seg=$4; shift 4
    mem=$(mktemp)
    start=$EPOCHREALTIME
    /usr/bin/time -f "%M\t%U\t%S" -o "$mem" "$@" >/dev/null 2>"$mem.err" || { cat "$mem.err" >&2; exit 1; }
    end=$EPOCHREALTIME
    us=$(( (${end/./} - ${start/./}) ))
    printf "%s\t%s\t%s\t%s\t%s\n" "$tool" "$op" "$seg" "$us" "$(tail -n 1 "$mem")" >>"$out"
    rm -f "$mem" "$mem.err"' bench "$results" "$tool" "$op" "$seg" "$@"
}

ws_log "archive push: ${#segs[@]} segments, each tool once per segment"
i=0
for s in "${segs[@]}"; do
  if ((i++ % 2 == 0)); then
    measure walpush push "$s" "$WS_BIN/walpush" "${ws_opts[@]}" --compression lz4 "$wal/$s"
    measure pgbackrest push "$s" "${pgbr[@]}" archive-push "$wal/$s"
  else
    measure pgbackrest push "$s" "${pgbr[@]}" archive-push "$wal/$s"
    measure walpush push "$s" "$WS_BIN/walpush" "${ws_opts[@]}" --compression lz4 "$wal/$s"
  fi
done

# Fetch, in two modes, each tool's default first:
#  - read-ahead: walfetch as configured by default (prefetch = 8: after each restored segment a
#    background worker spools the next ones) against pgbackrest archive-get with
#    archive-async=y (its read-ahead queue in spool-path).  Between two calls the script waits
#    until both tools' background work is done, outside the timed region: that is the time
#    PostgreSQL spends replaying a segment before it asks for the next.
#  - one shot: walfetch --prefetch 0 against synchronous archive-get (archive-async=n): every
#    call fetches, verifies and writes its segment itself.
# fetch_as MODE PREFIX SEG DEST: one measured fetch of SEG to DEST; MODE 0 walfetch default
# (read-ahead), 1 archive-get async, 2 walfetch --prefetch 0, 3 archive-get sync; recorded
# as op PREFIX-ahead (0, 1) or PREFIX (2, 3).
fetch_as() {
  local mode=$1 op=$2 s=$3 dest=$4
  case $mode in
    0) measure walfetch "$op-ahead" "$s" "$WS_BIN/walfetch" "${ws_opts[@]}" --system-id "$WS_WAL_SYSID" \
         "$s" "$dest" ;;
    1) measure pgbackrest "$op-ahead" "$s" "${pgbr[@]}" --archive-async archive-get "$s" "$dest" ;;
    2) measure walfetch "$op" "$s" "$WS_BIN/walfetch" "${ws_opts[@]}" --system-id "$WS_WAL_SYSID" \
         --prefetch 0 "$s" "$dest" ;;
    3) measure pgbackrest "$op" "$s" "${pgbr[@]}" archive-get "$s" "$dest" ;;
  esac
}
for d in ahead oneshot; do ws_pg_dir "$WS_TMP/fetched-$d"; done
ws_log "archive get: ${#segs[@]} segments, each tool and mode once per segment"
tools=(walfetch pgbackrest walfetch pgbackrest)
dirs=(ahead ahead oneshot oneshot)
i=0
for s in "${segs[@]}"; do
  for turn in 0 1 2 3; do
    mode=$(((i + turn) % 4))
    fetch_as "$mode" fetch "$s" "$WS_TMP/fetched-${dirs[$mode]}/$s.${tools[$mode]}"
    ws_quiesce
  done
  i=$((i + 1))
  for f in "$WS_TMP"/fetched-{ahead,oneshot}/"$s".{walfetch,pgbackrest}; do
    cmp "$wal/$s" "$f" || ws_die "$f differs from the original segment"
  done
  rm -f "$WS_TMP"/fetched-{ahead,oneshot}/"$s".*
done

# Back to back, as a standby catching up on the archive calls restore_command: each mode fetches
# every segment in a row, the next call right after the last (no replay time for read-ahead to
# hide in: the worker races the next call), the four modes in rotating order for
# BENCH_B2B_ROUNDS (2) rounds, background work ended between two modes.
b2b_rounds=${BENCH_B2B_ROUNDS:-2}
ws_log "back to back: ${#segs[@]} segments per mode and round, $b2b_rounds rounds"
for ((r = 0; r < b2b_rounds; r++)); do
  for turn in 0 1 2 3; do
    mode=$(((r + turn) % 4))
    dir=$WS_TMP/b2b-$mode
    ws_pg_dir "$dir"
    for s in "${segs[@]}"; do fetch_as "$mode" b2b "$s" "$dir/$s"; done
    ws_quiesce
    for s in "${segs[@]}"; do cmp "$wal/$s" "$dir/$s" || ws_die "$dir/$s differs from the original segment"; done
    rm -rf "$dir"
  done
done

ws_size=$(du -sb "$WS_TMP/wsrepo" | cut -f1)
pgbr_size=$(du -sb "$WS_TMP/pgbr-repo/archive" | cut -f1)
wal_size=$((${#segs[@]} * 16777216))
python3 - "$results" "${#segs[@]}" "$wal_size" "$ws_size" "$pgbr_size" \
  "$(pgbackrest version)" "$(nproc)" <<'PY'
import statistics, sys
from collections import defaultdict
path, n, wal, ws_size, pgbr_size, pgbr_version, cores = sys.argv[1:8]
t = defaultdict(list)
m = defaultdict(int)
cpu = defaultdict(list)
for line in open(path):
    tool, op, seg, us, rss, user, system = line.split("\t")
    t[(tool, op)].append(int(us) / 1000.0)
    cpu[(tool, op)].append((float(user) + float(system)) * 1000.0)
    m[(tool, op)] = max(m[(tool, op)], int(rss))
def med(k): return statistics.median(t[k])
print()
print(f"{n} segments of 16 MiB from pgbench ({int(wal) / 2**20:.0f} MiB), {cores} cores, {pgbr_version}")
print(f"{'':<34}{'median ms/seg':>14}{'p90 ms/seg':>12}{'CPU ms/seg':>12}{'peak RSS MiB':>14}")
rows = [("walpush (lz4 + AES-256-GCM)", ("walpush", "push")),
        ("pgbackrest archive-push (lz4)", ("pgbackrest", "push")),
        ("walfetch, read-ahead (default)", ("walfetch", "fetch-ahead")),
        ("pgbackrest archive-get, async", ("pgbackrest", "fetch-ahead")),
        ("walfetch --prefetch 0 (one shot)", ("walfetch", "fetch")),
        ("pgbackrest archive-get (sync)", ("pgbackrest", "fetch"))]
for label, k in rows:
    q = sorted(t[k])
    p90 = q[min(len(q) - 1, int(0.9 * len(q)))]
    print(f"{label:<34}{med(k):>14.1f}{p90:>12.1f}{statistics.mean(cpu[k]):>12.1f}{m[k] / 1024:>14.1f}")
push_ratio = med(("walpush", "push")) / med(("pgbackrest", "push"))
fetch_ratio = med(("walfetch", "fetch-ahead")) / med(("pgbackrest", "fetch"))
ahead_ratio = med(("walfetch", "fetch-ahead")) / med(("pgbackrest", "fetch-ahead"))
oneshot_ratio = med(("walfetch", "fetch")) / med(("pgbackrest", "fetch"))
push_mem = m[("walpush", "push")] / 1024
print()
print(f"push  ratio walpush / archive-push: {push_ratio:.2f}  (target <= 0.60: {'met' if push_ratio <= 0.6 else 'NOT met'})")
print(f"fetch ratio walfetch (default, read-ahead) / archive-get (default, sync): {fetch_ratio:.2f}  (target <= 0.60: {'met' if fetch_ratio <= 0.6 else 'NOT met'})")
print(f"      both reading ahead (walfetch / archive-get async): {ahead_ratio:.2f}")
print(f"      both one shot (walfetch --prefetch 0 / archive-get sync): {oneshot_ratio:.2f}")
print(f"walpush peak RSS: {push_mem:.1f} MiB  (target < 32 MiB: {'met' if push_mem < 32 else 'NOT met'})")
def mean(k): return statistics.mean(t[k])
print()
print("back to back (every segment in a row, as a standby catching up), mean ms/seg over all rounds:")
b2b = [("walfetch, read-ahead (default)", ("walfetch", "b2b-ahead")),
       ("pgbackrest archive-get, async", ("pgbackrest", "b2b-ahead")),
       ("walfetch --prefetch 0 (one shot)", ("walfetch", "b2b")),
       ("pgbackrest archive-get (sync)", ("pgbackrest", "b2b"))]
for label, k in b2b:
    print(f"{label:<34}{mean(k):>14.1f}  (median {med(k):.1f}, peak RSS {m[k] / 1024:.1f} MiB)")
d = mean(("walfetch", "b2b-ahead")); z = mean(("walfetch", "b2b")); g = mean(("pgbackrest", "b2b"))
print(f"  walfetch default / --prefetch 0: {d / z:.2f}  (target <= 1: {'met' if d <= z else 'NOT met'})")
print(f"  walfetch default / archive-get sync: {d / g:.2f}, --prefetch 0 / archive-get sync: {z / g:.2f}  (target both <= 0.60: {'met' if max(d, z) / g <= 0.6 else 'NOT met'})")
print(f"  walfetch default / archive-get async: {d / mean(('pgbackrest', 'b2b-ahead')):.2f}")
load = open("/proc/loadavg").read().split()[:3]
print(f"load average at the end: {' '.join(load)} (wall times are only meaningful on an idle machine)")
print(f"repository size: walstore {int(ws_size) / 2**20:.0f} MiB (encrypted), pgbackrest {int(pgbr_size) / 2**20:.0f} MiB")
PY
