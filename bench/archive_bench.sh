#!/usr/bin/env bash
# Archiving benchmark: a real PostgreSQL 15 archiver working off a backlog of .ready segments
# through archive_command, walpush against pgbackrest archive-push, on one local S3 server
# (s3rver over HTTPS: pgbackrest only speaks TLS to S3), lz4 and no encryption on both sides.
# bench/s3_bench.sh times the same with a simulated archiver (a bash loop over a fake pg_wal);
# here PostgreSQL's own archiver does the calling, with its own pacing.
#
# One cluster (archive_mode = on, no checkpoint while a backlog is built or drained) and, per
# variant, in rotating order, BENCH_ROUNDS times:
#   1. archive_command = '' (PostgreSQL then keeps finished segments .ready and archives
#      nothing), and pgbench's TPC-B load (after a CHECKPOINT, so with full-page images) until
#      BENCH_SEGMENTS full segments are .ready; the partly written current segment is not part
#      of the backlog (no pg_switch_wal: every segment of the backlog is full);
#   2. archive_command = the variant, wrapped in a shell snippet that logs each call's start and
#      end (date +%s%N, the same wrapper for every variant), pg_reload_conf(), and wait until the
#      backlog's last segment is .done and pg_stat_archiver agrees (any failed call fails the
#      bench);
#   3. drain time = last call's end - first call's start, per segment = drain / calls, and the
#      median call;
#   4. outside the timed region: wait for background work (walpush's push-ahead worker,
#      pgbackrest's archive-push:async), archive_command = '' again, fetch every segment of the
#      backlog back (walfetch --prefetch 0 / pgbackrest archive-get) and compare it with the
#      file still in pg_wal (nothing is recycled before the CHECKPOINT that starts the next
#      backlog).
# Variants (walstore: a fresh prefix s3://<bucket>/<variant>-<round> each time; pgbackrest: a
# stanza per variant, created once against this cluster; each backlog is new WAL, so new names):
#   walpush                           (as configured by default: push-ahead of 8 segments)
#   walpush --push-ahead 0
#   pgbackrest archive-push           (archive-async=n, its default)
#   pgbackrest archive-push --archive-async   (spool path set, process-max 1, its default)
# Prints per variant the drain time (median over the rounds), ms per segment and the median call,
# the ratios walstore / pgbackrest, the segment count and the load average at start and end.
#
# Not a test: run it by hand as root on an idle machine (2 cores: wait until `uptime` shows a
# 1-minute load below ~0.7), after `meson setup build && ninja -C build`:
#   bench/archive_bench.sh
# Env: BENCH_SEGMENTS (segments per backlog, default 16), BENCH_ROUNDS (default 2),
# BENCH_KEEP=1 (keep the temp dir), WALSTORE_BUILD_DIR (default <source>/build).
set -euo pipefail
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
bench_t0=$(date +%s)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$root/tests/lib/s3.sh"
WS_SCRIPT=archive_bench
WS_KEEP=${BENCH_KEEP:-0}
nseg=${BENCH_SEGMENTS:-16}
rounds=${BENCH_ROUNDS:-2}
[[ $nseg =~ ^[1-9][0-9]*$ ]] || ws_die "BENCH_SEGMENTS must be a positive integer"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || ws_die "BENCH_ROUNDS must be a positive integer"
ws_is_root || ws_die "run as root (the server runs as the postgres user)"
command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (scripts/install-deps)"
ws_setup
ws_require_tool walpush walfetch
"$WS_BIN/walpush" --help 2>&1 | grep -qE -- '--push-ahead([^-]|$)' ||
  ws_die "this walpush has no --push-ahead option"

s3_start --tls
chmod 0644 "$S3_CA_BUNDLE"

# ---- the cluster ---------------------------------------------------------------------------------
# Physical path: pgbackrest compares pg1-path with the archiver's working directory.
ws_pg_dir "$WS_TMP/pg"
data=$(cd "$WS_TMP/pg" && pwd -P)/data
port=$(ws_free_port)
pg_init "$data"
# No checkpoint but ours (max_wal_size, checkpoint_timeout): .done segments stay in pg_wal until
# they have been compared.  No autovacuum running beside a drain.  'true' archives (discards)
# pgbench -i's WAL before the first backlog.
pg_conf "$data" "archive_mode = on" "archive_command = 'true'" "max_wal_size = '64GB'" \
  "checkpoint_timeout = '1d'" "autovacuum = off"
pg_start "$data" "$port"
sysid=$(pg_system_id "$data")
status=$data/pg_wal/archive_status

# pgBackRest: pgbr_setup's configuration (its repo1-path is the S3 key prefix here), S3 settings
# of s3_pgbr_settings, and two stanzas for this cluster, one per pgbackrest variant.
mapfile -t pgbr_s3 < <(s3_pgbr_settings "${S3_ENDPOINT##*:}")
PGBR_STANZA=archive-sync pgbr_setup "$data" "$port" archive-async=n "${pgbr_s3[@]}"
printf '%s\n' "" "[archive-async]" "pg1-path=$data" "pg1-port=$port" "pg1-socket-path=$WS_TMP/sock" \
  "pg1-user=postgres" >>"$WS_TMP/pgbackrest.conf"
pgbr_conf=$WS_TMP/pgbackrest.conf
# A stanza is tied to a system id: check that it is this cluster's.  Each backlog is new WAL (new
# segment names, checked below), so one stanza per variant never meets an archived segment again.
for stanza in archive-sync archive-async; do
  as_pg pgbackrest --config="$pgbr_conf" --stanza="$stanza" stanza-create >/dev/null
  got=$(as_pg pgbackrest --config="$pgbr_conf" --stanza="$stanza" --output=json info |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["db"][-1]["system-id"])')
  [[ $got == "$sysid" ]] || ws_die "stanza $stanza has system id $got, the cluster $sysid"
done

ws_log "pgbench -i -s 10"
pg_pgbench "$port" -i -q -s 10 >/dev/null 2>&1
pg_switch_and_wait_archived "$port" || ws_die "pgbench -i's WAL not archived by 'true'"

pg_set_archive_command "$port" ''
sleep 1

# ready_segments: the segments now .ready, in name (= WAL) order.
ready_segments() {
  find "$status" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}\.ready' -printf '%f\n' |
    sed 's/\.ready$//' | sort
}
# make_backlog: CHECKPOINT (the previous backlog's .done segments may go), then pgbench's TPC-B
# load until $nseg segments are .ready.  Fills the array backlog.
make_backlog() {
  local pid i
  (($(pg_ready_count "$data") == 0)) || ws_die "segments .ready before the backlog: $(ready_segments | tr '\n' ' ')"
  pg_psql "$port" "checkpoint" >/dev/null
  pg_pgbench "$port" -c 2 -j 2 -n -T 3600 >/dev/null 2>&1 &
  pid=$!
  for ((i = 0; i < 12000; i++)); do
    (($(pg_ready_count "$data") >= nseg)) && break
    kill -0 "$pid" 2>/dev/null || ws_die "pgbench ended early"
    sleep 0.05
  done
  pg_psql "$port" "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'pgbench'" >/dev/null
  wait "$pid" || true
  mapfile -t backlog < <(ready_segments)
  ((${#backlog[@]} >= nseg)) || ws_die "only ${#backlog[@]} segments .ready after 10 minutes of pgbench"
  sync
}


# variant_cmd KEY ROUND: the archive tool's command line for KEY (%p appended by the wrapper).
variant_cmd() {
  local key=$1 round=$2
  case $key in
    walpush)
      s3_walstore_conf "$WS_TMP/$key-$round.toml" "$key-$round"
      ws_tool_cmd walpush -c "$WS_TMP/$key-$round.toml" ;;
    walpush-pa0)
      s3_walstore_conf "$WS_TMP/$key-$round.toml" "$key-$round"
      ws_tool_cmd walpush -c "$WS_TMP/$key-$round.toml" --push-ahead 0 ;;
    archive-sync) printf 'pgbackrest --config=%q --stanza=archive-sync archive-push' "$pgbr_conf" ;;
    archive-async)
      printf 'pgbackrest --config=%q --stanza=archive-async --archive-async archive-push' "$pgbr_conf" ;;
  esac
}

# wrap CMD LOG: archive_command running CMD %p, logging "s NS SEGMENT" before it and
# "e NS SEGMENT RC" after it to LOG.  PostgreSQL runs it with sh in the data directory.
wrap() {
  printf '%s' "printf \"s %s %s\\n\" \"\$(date +%s%N)\" %f >>$2; $1 %p; rc=\$?; printf \"e %s %s %s\\n\" \"\$(date +%s%N)\" %f \$rc >>$2; exit \$rc"
}

# verify KEY ROUND: fetches every segment of the backlog back and compares it with pg_wal's file.
verify() {
  local key=$1 round=$2 seg out=$WS_TMP/verify
  ws_pg_dir "$out"
  for seg in "${backlog[@]}"; do
    rm -f "$out/$seg"
    case $key in
      walpush*)
        as_pg walfetch -c "$WS_TMP/$key-$round.toml" --system-id "$sysid" --prefetch 0 \
          "$seg" "$out/$seg" >/dev/null 2>"$WS_TMP/last.err" ;;
      archive-*)
        as_pg pgbackrest --config="$pgbr_conf" --stanza="$key" archive-get "$seg" "$out/$seg" \
          >/dev/null 2>"$WS_TMP/last.err" ;;
    esac || { cat "$WS_TMP/last.err" >&2; ws_die "$key, round $round: $seg not restored"; }
    cmp "$data/pg_wal/$seg" "$out/$seg" || ws_die "$key, round $round: restored $seg differs"
    rm -f "$out/$seg"
  done
}

variants=(walpush walpush-pa0 archive-sync archive-async)
results=$WS_TMP/results.txt
: >"$results"
declare -A seen=()
last_archived=$(pg_psql "$port" "select coalesce(last_archived_wal, '') from pg_stat_archiver")
for ((round = 1; round <= rounds; round++)); do
  for ((k = 0; k < ${#variants[@]}; k++)); do
    key=${variants[$(((k + round - 1) % ${#variants[@]}))]}
    ws_quiesce
    make_backlog
    for seg in "${backlog[@]}"; do
      [[ -z ${seen[$seg]:-} ]] || ws_die "$seg was in an earlier backlog"
      seen[$seg]=1
    done
    read -r archived failed < <(pg_psql "$port" \
      "select coalesce(last_archived_wal, '') || ' ' || failed_count from pg_stat_archiver")
    [[ $archived == "$last_archived" ]] ||
      ws_die "something was archived while archive_command was '' ($archived after $last_archived)"
    last=${backlog[-1]}
    log=$WS_TMP/calls-$key-$round.log
    as_pg touch "$log"
    ws_log "round $round, $key: ${#backlog[@]} segments .ready (${backlog[0]}..$last), load $(cut -d' ' -f1 /proc/loadavg)"
    pg_set_archive_command "$port" "$(wrap "$(variant_cmd "$key" "$round")" "$log")"
    # The timed region is in the log; this wait is outside it (no process but sleep per poll).
    for ((i = 0; ; i++)); do
      [[ -e $status/$last.done ]] && break
      if ((i % 10 == 9)) && grep -q '^e [0-9]* [0-9A-F]* [1-9]' "$log"; then
        ws_die "$key, round $round: archive_command failed: $(grep '^e [0-9]* [0-9A-F]* [1-9]' "$log" | head -3)"
      fi
      ((i < 6000)) || ws_die "$key, round $round: backlog not archived after 600 s"
      sleep 0.1
    done
    read -r archived failed_now < <(pg_psql "$port" \
      "select coalesce(last_archived_wal, '') || ' ' || failed_count from pg_stat_archiver")
    [[ $archived == "$last" ]] || ws_die "$key, round $round: pg_stat_archiver says $archived, expected $last"
    [[ $failed_now == "$failed" ]] || ws_die "$key, round $round: failed_count went from $failed to $failed_now"
    last_archived=$archived
    ws_quiesce
    pg_set_archive_command "$port" ''
    verify "$key" "$round"
    echo "$key $round $log" >>"$results"
    first=$(awk '$1 == "s" { print $2; exit }' "$log")
    end=$(awk '$1 == "e" { e = $2 } END { print e }' "$log")
    calls=$(grep -c '^e ' "$log")
    ((calls == ${#backlog[@]})) || ws_log "note: $calls calls for ${#backlog[@]} segments"
    ws_log "round $round, $key: drained in $(((end - first) / 1000000)) ms, $calls calls, every segment restores identical"
    sleep 1 # the archiver has reloaded archive_command = '' before the next backlog
  done
done

python3 - "$results" "$nseg" "$rounds" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(pgbackrest version)" "$(nproc)" "$(($(date +%s) - bench_t0))" <<'PY'
import statistics, sys
path, nseg, rounds, load_start, load_end, version, cores, runtime = sys.argv[1:9]
med = statistics.median
rows = {}
for line in open(path):
    key, _, log = line.split()
    start, end, calls = {}, {}, []
    for rec in open(log):
        kind, ns, seg, *_ = rec.split()
        (start if kind == "s" else end)[seg] = int(ns)
        if kind == "e":
            calls.append((int(ns) - start[seg]) / 1e6)
    row = rows.setdefault(key, {"drain": [], "n": [], "calls": []})
    row["drain"].append((max(end.values()) - min(start.values())) / 1e6)
    row["n"].append(len(calls))
    row["calls"] += calls
labels = {"walpush": "walpush (default, push-ahead)", "walpush-pa0": "walpush --push-ahead 0",
          "archive-sync": "pgbackrest archive-push", "archive-async": "archive-push --archive-async"}
counts = sorted({n for r in rows.values() for n in r["n"]})
print()
print(f"PostgreSQL 15's archiver draining a backlog of {nseg} full .ready segments (calls per backlog: "
      f"{', '.join(map(str, counts))}), {rounds} round(s), S3 (s3rver, HTTPS, loopback), lz4, "
      f"no encryption, {cores} cores, {version}")
print(f"{'variant':<32}{'drain ms':>9}{'ms/seg':>8}{'call median':>12}{'call max':>9}  drain ms per round")
drain = {}
for key, label in labels.items():
    r = rows[key]
    drain[key] = med(r["drain"])
    per_seg = med([d / n for d, n in zip(r["drain"], r["n"])])
    print(f"{label:<32}{drain[key]:>9.0f}{per_seg:>8.1f}{med(r['calls']):>12.1f}{max(r['calls']):>9.1f}  "
          + " ".join(f"{d:.0f}" for d in r["drain"]))
print()
for a, b in [("walpush", "archive-sync"), ("walpush-pa0", "archive-sync"), ("walpush", "archive-async")]:
    print(f"{labels[a]} / {labels[b]}: {drain[a] / drain[b]:.2f}")
print(f"load average at the start: {load_start}, at the end: {load_end}; bench runtime {runtime} s")
PY
