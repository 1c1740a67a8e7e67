#!/usr/bin/env bash
# walstore against pgBackRest on S3 at a real region's round-trip time: one s3rver over HTTPS
# on loopback (pgBackRest 2.45 only speaks TLS to S3) behind tests/lib/latency_proxy.py, which
# delays every chunk by RTT/2 in each direction (and a new connection by one RTT) without
# capping the bandwidth.  Every RTT of BENCH_RTTS (default "0 50") has a proxy of its own, so
# the figures of two RTTs differ only in the delay.  lz4 on both sides, no encryption.  One run
# of each measurement per RTT, the tools in alternating order.  Three measurements, on one
# PostgreSQL 15 cluster of pgbench scale BENCH_SCALE:
#
# 1. Backup and restore: walctl backup --jobs J vs pgbackrest backup --type=full
#    --process-max=J (J = BENCH_JOBS, default 2), then walctl restore vs pgbackrest restore of
#    that backup into an empty directory, same J.  Wall time and peak RSS (GNU time %e %M); the
#    restored directory must be about the size of the data directory.  During the backups
#    archive_command pushes with both tools at that RTT (walctl waits for its WAL in the
#    archive, pgBackRest checks its archive: archive-check=y).
# 2. Sustained archiving: CHECKPOINT, then archive_command = the tool at that RTT (walpush as
#    configured by default, push-ahead; pgbackrest archive-push with archive-async=y and
#    process-max 2, as many as push-ahead's uploads), and a pgbench load, unthrottled,
#    BENCH_CLIENTS clients (2) for BENCH_ARCHIVE_SECONDS (60): BENCH_LOAD=bulk (the default) a
#    script of bulk inserts (10,000 rows of two md5 texts per transaction, about 1.4 MB of WAL),
#    which writes WAL faster than either tool archives it, so the archived rate is the tool's
#    capacity; BENCH_LOAD=tpcb pgbench's TPC-B.  Reported: the WAL rate the load
#    generated (pg_current_wal_lsn over the run), the archived rate (pg_stat_archiver's
#    archived_count over the run x 16 MiB) and the archive lag (.ready segments) at the end and
#    at most during the run (polled every 0.5 s).  Afterwards, outside the figures:
#    archive_command = 'true' to skip the rest of the backlog, background work ends (walpush's
#    worker by itself once nothing is .ready; pgBackRest's async processes are killed), and the
#    last segment the tool archived is fetched back and compared with pg_wal's.
# 3. Recovery: a base backup (pg_basebackup -X none), then pgbench until BENCH_WAL_MB (2048)
#    MiB of WAL, archived by both tools (at the first RTT) and copied aside.  The cluster
#    stops; the base backup is recovered to the end of the archive through walfetch (as
#    configured by default: read-ahead) and through pgbackrest archive-get with archive-async=y
#    (process-max 2: walfetch's read-ahead worker fetches two segments at a time) at each RTT,
#    and once with every segment already in pg_wal (no restore_command: PostgreSQL replays
#    from pg_wal as after a crash, from the backup's checkpoint).  The figure is PostgreSQL's
#    own "redo done ... elapsed"; every recovered cluster must hold the primary's final
#    pgbench_branches / pgbench_tellers and pgbench_history row count.
#
# Memory: walctl and pgbackrest backup/restore by GNU time; every archive_command and
# restore_command call runs under GNU time (%M, both tools alike); and tests/lib/rss_sampler.py
# samples every walstore and pgbackrest process of the run every 0.1 s (the detached workers:
# walpush's push-ahead, walfetch's read-ahead, pgbackrest's :async and :local processes).
# Prints a markdown table, every figure with the walstore / pgBackRest ratio, and the goals of
# issue 12 (at the largest RTT: archiving and replay at >= 2x pgBackRest's rate; replay through
# walfetch <= 1.1x the local replay; every walstore process <= 32 MiB).
#
# Not a test: run it by hand as root on an idle machine, after `scripts/build`:
#   bench/rtt_bench.sh
# Env: BENCH_RTTS ("0 50", ms), BENCH_SCALE (100), BENCH_WAL_MB (2048), BENCH_ARCHIVE_SECONDS
# (60), BENCH_LOAD (bulk), BENCH_CLIENTS (2), BENCH_JOBS (2), BENCH_KEEP=1, WALSTORE_BUILD_DIR (<source>/build).
# A quick trial: BENCH_SCALE=5 BENCH_WAL_MB=128 BENCH_ARCHIVE_SECONDS=10 bench/rtt_bench.sh
set -euo pipefail
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
bench_t0=$(date +%s)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$root/tests/lib/s3.sh"
WS_SCRIPT=rtt_bench
WS_KEEP=${BENCH_KEEP:-0}
read -r -a rtts <<<"${BENCH_RTTS:-0 50}"
scale=${BENCH_SCALE:-100}
wal_mb=${BENCH_WAL_MB:-2048}
archive_secs=${BENCH_ARCHIVE_SECONDS:-60}
clients=${BENCH_CLIENTS:-2}
jobs=${BENCH_JOBS:-2}
load=${BENCH_LOAD:-bulk}
[[ $load == bulk || $load == tpcb ]] || ws_die "BENCH_LOAD must be bulk or tpcb, not '$load'"
for v in scale wal_mb archive_secs clients jobs; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || ws_die "$v must be a positive integer, not '${!v}'"
done
((${#rtts[@]} > 0)) || ws_die "BENCH_RTTS is empty"
for rtt in "${rtts[@]}"; do [[ $rtt =~ ^[0-9]+$ ]] || ws_die "BENCH_RTTS: '$rtt' is not a number of ms"; done
ws_is_root || ws_die "run as root (the servers run as the postgres user)"
command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (scripts/install-deps)"
[[ -x /usr/bin/time ]] || ws_die "GNU time not installed (apt-get install time)"
ws_setup
ws_require_tool walpush walfetch walctl
results=$WS_TMP/results.txt # "KEY VALUE" lines, read by the report at the end
: >"$results"
record() { echo "$1 $2" >>"$results"; }

# ---- S3 and one latency proxy per RTT ------------------------------------------------------------
s3_start --tls
declare -A endpoint=()
for rtt in "${rtts[@]}"; do
  AWS_ENDPOINT_URL=$S3_ENDPOINT s3_latency_start "$(python3 -c "print($rtt / 2)")"
  endpoint[$rtt]=$AWS_ENDPOINT_URL
  ws_log "RTT $rtt ms: S3 through $AWS_ENDPOINT_URL"
done
export AWS_ENDPOINT_URL=$S3_ENDPOINT

# ---- the cluster ---------------------------------------------------------------------------------
# Physical path: pgbackrest compares pg1-path with the archiver's working directory.
ws_pg_dir "$WS_TMP/pg"
data=$(cd "$WS_TMP/pg" && pwd -P)/data
port=$(ws_free_port)
pg_init "$data"
# Checkpoints only where the script asks for them; no autovacuum beside a measurement.
pg_conf "$data" "archive_mode = on" "archive_command = 'true'" "max_wal_size = '16GB'" \
  "checkpoint_timeout = '1h'" "autovacuum = off"
pg_start "$data" "$port"
sysid=$(pg_system_id "$data")
conninfo="host=127.0.0.1 port=$port user=postgres"

# One walstore repository and one pgBackRest stanza in the bucket, reached through each RTT's
# proxy by a configuration of its own: the archive written at one RTT is read at another.
mapfile -t pgbr_s3 < <(s3_pgbr_settings "${S3_ENDPOINT##*:}")
pgbr_setup "$data" "$port" "${pgbr_s3[@]}" archive-async=y archive-check=y start-fast=y
printf '%s\n' "" "[global:archive-push]" "process-max=2" "" "[global:archive-get]" "process-max=2" \
  >>"$WS_TMP/pgbackrest.conf"
declare -A ws_conf=() pgbr=()
for rtt in "${rtts[@]}"; do
  ws_conf[$rtt]=$WS_TMP/walstore-$rtt.toml
  s3_walstore_conf "${ws_conf[$rtt]}" walstore "${endpoint[$rtt]}"
  sed "s/^repo1-storage-port=.*/repo1-storage-port=${endpoint[$rtt]##*:}/" "$WS_TMP/pgbackrest.conf" \
    >"$WS_TMP/pgbackrest-$rtt.conf"
  chmod 0644 "$WS_TMP/pgbackrest-$rtt.conf"
  pgbr[$rtt]="pgbackrest --config=$WS_TMP/pgbackrest-$rtt.conf --stanza=bench"
done
# pgbr_at RTT ARGS...: pgbackrest at RTT, as postgres.
pgbr_at() {
  local rtt=$1
  shift
  as_pg pgbackrest "--config=$WS_TMP/pgbackrest-$rtt.conf" --stanza=bench "$@"
}
pgbr_at "${rtts[0]}" stanza-create >/dev/null

# GNU time needs a program, not the as_pg shell function.
as_postgres=(runuser -u postgres --)
# timed TOOL: the prefix that runs a command under GNU time, its peak RSS in KiB appended to
# $WS_TMP/rss-calls.TOOL, for archive_command and restore_command (both tools alike).
timed() { printf '/usr/bin/time -a -o %q -f %%M ' "$WS_TMP/rss-calls.$1"; }
# archive_cmd TOOLS RTT: archive_command pushing %p with each of TOOLS (walpush, pgbackrest)
# through RTT's proxy, one after the other.
archive_cmd() {
  local tool cmd=
  for tool in $1; do
    cmd+=${cmd:+ && }$(timed "$tool")
    case $tool in
      walpush) cmd+="$(ws_tool_cmd walpush -c "${ws_conf[$2]}") %p" ;;
      pgbackrest) cmd+="${pgbr[$2]} archive-push %p" ;;
    esac
  done
  printf '%s' "$cmd"
}
# rss_start NAME / rss_stop: tests/lib/rss_sampler.py over a phase, into $WS_TMP/rss-NAME.json.
rss_pid=
rss_start() {
  python3 "$WS_LIB_DIR/rss_sampler.py" "$WS_BIN" "$WS_TMP/rss-$1.json" "$(date +%s)" 1 \
    "$WS_TMP/pgbackrest" &
  rss_pid=$!
  WS_PIDS+=("$rss_pid")
}
rss_stop() {
  kill "$rss_pid"
  wait "$rss_pid" || true
}
# wait_archived: waits until nothing is .ready (up to 20 minutes).
wait_archived() {
  local i
  for ((i = 0; i < 12000; i++)); do
    (($(pg_ready_count "$data") == 0)) && return 0
    sleep 0.1
  done
  ws_die "segments still .ready after 20 minutes: $(pg_ready_count "$data")"
}

ws_log "pgbench -i -s $scale"
pg_pgbench "$port" -i -q -s "$scale" >/dev/null 2>&1
pg_psql "$port" "checkpoint" >/dev/null
db_size=$(pg_psql "$port" "select pg_database_size('postgres')")
data_kib=$(du -sk --exclude=pg_wal "$data" | cut -f1)
record db_size "$db_size"
ws_log "database $(numfmt --to=iec "$db_size")"

# ---- 1. backup and restore -----------------------------------------------------------------------
# measure KEY CMD...: CMD under GNU time (as postgres); records KEY.s and KEY.rss (KiB).
measure() {
  local key=$1 secs kib
  shift
  sync
  /usr/bin/time -f '%e %M' -o "$WS_TMP/time.$key" "${as_postgres[@]}" "$@" >"$WS_TMP/out.$key" 2>&1 ||
    { cat "$WS_TMP/out.$key" >&2; ws_die "$key failed: $*"; }
  read -r secs kib <"$WS_TMP/time.$key"
  record "$key.s" "$secs"
  record "$key.rss" "$kib"
  ws_log "$key: $secs s, peak RSS $((kib / 1024)) MiB"
}
# check_restored KEY DIR: the restored DIR is within 10 % of the data directory's size (pg_wal
# left out); removes it.
check_restored() {
  local kib
  kib=$(du -sk --exclude=pg_wal "$2" | cut -f1)
  ((kib * 10 >= data_kib * 9 && kib * 10 <= data_kib * 11)) ||
    ws_die "$1: restored $kib KiB, the data directory has $data_kib KiB"
  rm -rf "$2"
}
ws_pg_dir "$WS_TMP/restores"
n=0
for rtt in "${rtts[@]}"; do
  pg_set_archive_command "$port" "$(archive_cmd "walpush pgbackrest" "$rtt")"
  rss_start "backup-$rtt"
  order=(walctl pgbackrest)
  if ((n++ % 2 == 1)); then order=(pgbackrest walctl); fi
  for tool in "${order[@]}"; do
    ws_quiesce
    if [[ $tool == walctl ]]; then
      measure "backup.walstore.$rtt" "$WS_BIN/walctl" -c "${ws_conf[$rtt]}" backup -d "$conninfo" \
        --label "rtt$rtt" --jobs "$jobs" --no-progress -q
    else
      measure "backup.pgbackrest.$rtt" pgbackrest "--config=$WS_TMP/pgbackrest-$rtt.conf" --stanza=bench --type=full --process-max="$jobs" backup
    fi
  done
  pgbr_label=$(pgbr_at "$rtt" info --output=json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["label"])')
  for tool in "${order[@]}"; do
    dir=$WS_TMP/restores/$tool-$rtt
    as_pg mkdir -m 0700 "$dir"
    if [[ $tool == walctl ]]; then
      measure "restore.walstore.$rtt" "$WS_BIN/walctl" -c "${ws_conf[$rtt]}" restore "rtt$rtt" "$dir" \
        --jobs "$jobs" --no-progress -q
    else
      measure "restore.pgbackrest.$rtt" pgbackrest "--config=$WS_TMP/pgbackrest-$rtt.conf" --stanza=bench --process-max="$jobs" --pg1-path="$dir" \
        --set="$pgbr_label" restore
    fi
    check_restored "$tool restore at $rtt ms" "$dir"
  done
  rss_stop
done
pg_set_archive_command "$port" 'true'
wait_archived
ws_quiesce

# ---- 2. sustained archiving ----------------------------------------------------------------------
# archive_run TOOL RTT: one run of the load with TOOL (walpush, pgbackrest) as archive_command.
archive_run() {
  local tool=$1 rtt=$2 key="archive.$1.$2" lsn0 lsn1 n0 n1 f0 f1 t0 t1 pid ready max_ready=0 last
  pg_psql "$port" "checkpoint" >/dev/null
  ws_quiesce
  pg_set_archive_command "$port" "$(archive_cmd "$tool" "$rtt")"
  rss_start "$key"
  read -r n0 f0 < <(pg_psql "$port" "select archived_count || ' ' || failed_count from pg_stat_archiver")
  lsn0=$(pg_psql "$port" "select pg_current_wal_lsn()")
  t0=${EPOCHREALTIME/[.,]/}
  pg_pgbench "$port" "${load_args[@]}" -c "$clients" -j "$clients" -n -T "$archive_secs" \
    >"$WS_TMP/pgbench.$key" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    ready=$(pg_ready_count "$data")
    ((ready > max_ready)) && max_ready=$ready
    sleep 0.5
  done
  wait "$pid" || { cat "$WS_TMP/pgbench.$key" >&2; ws_die "pgbench failed"; }
  t1=${EPOCHREALTIME/[.,]/}
  lsn1=$(pg_psql "$port" "select pg_current_wal_lsn()")
  ready=$(pg_ready_count "$data")
  read -r n1 f1 last < <(pg_psql "$port" \
    "select archived_count || ' ' || failed_count || ' ' || coalesce(last_archived_wal, '') from pg_stat_archiver")
  ((ready > max_ready)) && max_ready=$ready
  python3 - "$key" "$lsn0" "$lsn1" "$n0" "$n1" "$t0" "$t1" >>"$results" <<'PY'
import sys
key, lsn0, lsn1, n0, n1, t0, t1 = sys.argv[1:]
lsn = lambda s: (int(s.split("/")[0], 16) << 32) + int(s.split("/")[1], 16)
secs = (int(t1) - int(t0)) / 1e6
print(f"{key}.secs {secs:.1f}")
print(f"{key}.wal_mbs {(lsn(lsn1) - lsn(lsn0)) / 1e6 / secs:.1f}")
print(f"{key}.archived_mbs {(int(n1) - int(n0)) * 16 * 2**20 / 1e6 / secs:.1f}")
PY
  record "$key.ready_end" "$ready"
  record "$key.ready_max" "$max_ready"
  record "$key.failed" "$((f1 - f0))"
  ws_log "$tool at $rtt ms: $(grep "^$key\." "$results" | tr '\n' ' ')"
  # Outside the figures: skip the rest of the backlog, let background work end, and check the
  # last segment the tool archived against pg_wal's (no checkpoint since: still there).
  pg_set_archive_command "$port" 'true'
  wait_archived
  # pgBackRest's background push works through the batch it took, up to many minutes behind at
  # 50 ms: it ends here (its processes, started by this run's archiver, by pid).
  local bg
  for bg in $(pgrep -f -- "pgbackrest --config=$WS_TMP/.*archive-push:(async|local)"); do
    kill "$bg" 2>/dev/null || true
  done
  ws_quiesce
  rss_stop
  [[ $load == tpcb ]] || pg_psql "$port" "truncate rtt_load" >/dev/null
  [[ -n $last && $((n1 - n0)) -gt 0 ]] || ws_die "$tool at $rtt ms archived nothing"
  rm -f "$WS_TMP/check"
  if [[ $tool == walpush ]]; then
    as_pg walfetch -c "${ws_conf[$rtt]}" --system-id "$sysid" --prefetch 0 "$last" "$WS_TMP/check"
  else
    pgbr_at "$rtt" archive-get "$last" "$WS_TMP/check"
  fi
  cmp "$data/pg_wal/$last" "$WS_TMP/check" || ws_die "$tool at $rtt ms: $last restores different"
}
# The load: pgbench's TPC-B, or (bulk, the default) pgbench running a script of bulk inserts,
# which writes WAL faster than either tool archives it on 2 cores, so the archived rate is
# the tool's capacity and the lag grows where it falls short.
load_args=()
if [[ $load == bulk ]]; then
  pg_psql "$port" "create table rtt_load (id int, a text, b text)" >/dev/null
  echo "insert into rtt_load select g, md5(random()::text), md5(random()::text) from generate_series(1, 10000) g;" \
    >"$WS_TMP/bulk.sql"
  chmod 0644 "$WS_TMP/bulk.sql"
  load_args=(-f "$WS_TMP/bulk.sql")
fi
n=0
for rtt in "${rtts[@]}"; do
  order=(walpush pgbackrest)
  if ((n++ % 2 == 1)); then order=(pgbackrest walpush); fi
  for tool in "${order[@]}"; do archive_run "$tool" "$rtt"; done
done

# ---- 3. recovery -----------------------------------------------------------------------------------
first=${rtts[0]}
ws_pg_dir "$WS_TMP/walcopy"
pg_psql "$port" "checkpoint" >/dev/null
pg_set_archive_command "$port" \
  "$(archive_cmd "walpush pgbackrest" "$first") && test ! -f $WS_TMP/walcopy/%f && cp %p $WS_TMP/walcopy/%f"
rss_start "recovery-archive"
pg_base_backup "$port" "$WS_TMP/basebackup"
ws_log "base backup taken; writing $wal_mb MiB of WAL with pgbench"
lsn_start=$(pg_psql "$port" "select pg_current_wal_lsn()")
while :; do
  written=$(pg_psql "$port" "select ((pg_current_wal_lsn() - '$lsn_start'::pg_lsn) / 1048576)::bigint")
  ((written >= wal_mb)) && break
  pg_pgbench "$port" -c "$clients" -j "$clients" -n -T 5 >/dev/null 2>&1
done
for ((i = 0; i < 4; i++)); do pg_switch_and_wait_archived "$port" && break; done
((i < 4)) || ws_die "the recovery WAL was not archived"
ws_quiesce
rss_stop
expected=$(pg_psql "$port" "select (select md5(string_agg(b::text, ',' order by bid)) from pgbench_branches b) || \
  (select md5(string_agg(t::text, ',' order by tid)) from pgbench_tellers t) || (select count(*) from pgbench_history)")
pg_stop "$data"
nwal=$(ws_segments "$WS_TMP/walcopy" | wc -l)
record recovery.segments "$nwal"
ws_log "$nwal segments archived for the recovery"

# recover KEY RESTORE_COMMAND: recovers the base backup with RESTORE_COMMAND (@DIR@: the new data
# directory), or with every segment in pg_wal when it is "local"; records KEY.s (PostgreSQL's
# "redo done ... elapsed") and checks the result.
recover() {
  local key=$1 cmd=$2 dir p line elapsed i rc got
  dir=$(cd "$WS_TMP" && pwd -P)/recover-$key
  cmd=${cmd//@DIR@/$dir}
  rm -rf "$WS_TMP/pgbr-spool/archive"
  if [[ $cmd == local ]]; then
    as_pg cp -a "$WS_TMP/basebackup" "$dir"
    as_pg cp "$WS_TMP"/walcopy/* "$dir/pg_wal/"
    pg_conf "$dir" "archive_mode = off"
  else
    pg_prepare_recovery "$WS_TMP/basebackup" "$dir" "$cmd" "recovery_target_action = 'promote'"
  fi
  sync
  ws_quiesce
  rss_start "$key"
  p=$(ws_free_port)
  pg_start "$dir" "$p" || ws_die "recovery $key: the server did not start"
  for ((i = 0; i < 10; i++)); do
    rc=0
    pg_wait_recovery_done "$p" || rc=$?
    ((rc == 2)) || break
  done
  ((rc == 0)) || ws_die "recovery $key failed"
  got=$(pg_psql "$p" "select (select md5(string_agg(b::text, ',' order by bid)) from pgbench_branches b) || \
    (select md5(string_agg(t::text, ',' order by tid)) from pgbench_tellers t) || (select count(*) from pgbench_history)")
  pg_stop "$dir"
  ws_quiesce
  rss_stop
  [[ $got == "$expected" ]] || ws_die "recovery $key: the recovered cluster differs from the primary"
  line=$(grep -m1 'redo done at' "$(pg_log "$dir")") || ws_die "recovery $key: no 'redo done' line"
  elapsed=$(sed -n 's/.*elapsed: \([0-9.]*\) s.*/\1/p' <<<"$line")
  record "$key.s" "$elapsed"
  ws_log "recovery $key: redo $elapsed s"
  rm -rf "$dir"
}
recover recovery.local local
n=0
for rtt in "${rtts[@]}"; do
  order=(walstore pgbackrest)
  if ((n++ % 2 == 1)); then order=(pgbackrest walstore); fi
  for tool in "${order[@]}"; do
    if [[ $tool == walstore ]]; then
      recover "recovery.walstore.$rtt" "$(timed walfetch)$(ws_tool_cmd walfetch -c "${ws_conf[$rtt]}") %f %p"
    else
      recover "recovery.pgbackrest.$rtt" "$(timed pgbackrest)${pgbr[$rtt]} --pg1-path=@DIR@ archive-get %f \"%p\""
    fi
  done
done

# ---- report --------------------------------------------------------------------------------------
python3 - "$WS_TMP" "${rtts[*]}" "$scale" "$wal_mb" "$archive_secs" "$clients $load" "$jobs" "$load_start" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(($(date +%s) - bench_t0))" "$(pgbackrest version)" "$(nproc)" <<'PY'
import glob, json, os, sys
tmp, rtts, scale, wal_mb, secs, clients, jobs, load_start, load_end, runtime, version, cores = sys.argv[1:13]
rtts = rtts.split()
r = {}
for line in open(f"{tmp}/results.txt"):
    k, v = line.split()
    r[k] = float(v)
mib = lambda kib: f"{kib / 1024:.1f} MiB"
def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"
print()
print(f"S3 (s3rver, HTTPS, loopback) behind a latency proxy, lz4, no encryption, {cores} cores, {version}; "
      f"pgbench scale {scale} ({r['db_size'] / 2**30:.2f} GiB), {jobs} processes for backup/restore; "
      f"runtime {runtime} s; load average at the start {load_start}, at the end {load_end}")
print()
print("| measure | RTT | walstore | pgBackRest | walstore / pgBackRest |")
print("|---|---:|---:|---:|---:|")
for rtt in rtts:
    for what, label in [("wal_mbs", "WAL generated, MB/s"), ("archived_mbs", "archived, MB/s"),
                        ("ready_end", ".ready at the end"), ("ready_max", ".ready at most")]:
        a, b = r[f"archive.walpush.{rtt}.{what}"], r[f"archive.pgbackrest.{rtt}.{what}"]
        fmt = (lambda x: f"{x:.1f}") if "mbs" in what else (lambda x: f"{x:.0f}")
        print(f"| archiving, {secs} s of pgbench {clients.split()[1]} ({clients.split()[0]} clients): {label} | {rtt} ms | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
local = r["recovery.local.s"]
for rtt in rtts:
    a, b = r[f"recovery.walstore.{rtt}.s"], r[f"recovery.pgbackrest.{rtt}.s"]
    print(f"| recovery of {int(r['recovery.segments'])} segments: redo s (local WAL: {local:.2f} s) | {rtt} ms | "
          f"{a:.2f} ({a / local:.2f}x local) | {b:.2f} ({b / local:.2f}x local) | {ratio(a, b)} |")
for rtt in rtts:
    for op in ("backup", "restore"):
        a, b = r[f"{op}.walstore.{rtt}.s"], r[f"{op}.pgbackrest.{rtt}.s"]
        ma, mb = r[f"{op}.walstore.{rtt}.rss"], r[f"{op}.pgbackrest.{rtt}.rss"]
        print(f"| {op}, {jobs} processes: s | {rtt} ms | {a:.2f} | {b:.2f} | {ratio(a, b)} |")
        print(f"| {op}, {jobs} processes: peak RSS | {rtt} ms | {mib(ma)} | {mib(mb)} | {ratio(ma, mb)} |")

# Peak RSS per kind of process: GNU time of every call, and the sampler's VmHWM per phase.
peaks, seen = {}, {}
for path in glob.glob(f"{tmp}/rss-calls.*"):
    # GNU time also writes "Command exited with non-zero status 1" (the end of the archive).
    vals = [int(x) for x in open(path).read().splitlines() if x.strip().isdigit()]
    if vals:
        kind = os.path.basename(path).split(".", 1)[1] + " (calls, GNU time)"
        peaks[kind], seen[kind] = max(vals), len(vals)
for path in glob.glob(f"{tmp}/rss-*.json"):
    for kind, t in json.load(open(path))["tools"].items():
        peaks[kind] = max(peaks.get(kind, 0), t["peak_vmhwm_kib"])
        seen[kind] = seen.get(kind, 0) + t["processes_seen"]
for kind in ("walctl backup", "walctl restore"):
    peaks[kind] = max([peaks.get(kind, 0)] + [r[f"{kind.split()[1]}.walstore.{rtt}.rss"] for rtt in rtts])
print()
print("peak RSS per kind of process, all phases and RTTs (processes: sampled or timed)")
for kind in sorted(peaks):
    print(f"  {kind:<44}{mib(peaks[kind]):>12}{seen.get(kind, 0):>8}")

top = rtts[-1]
def goal(text, ok):
    print(f"goal: {text}: {'holds' if ok else 'NOT met'}")
print()
a, b = r[f"archive.walpush.{top}.archived_mbs"], r[f"archive.pgbackrest.{top}.archived_mbs"]
goal(f"at {top} ms walstore archives at >= 2x pgBackRest's rate ({a:.1f} vs {b:.1f} MB/s, {ratio(a, b)}x)", a >= 2 * b)
a, b = r[f"recovery.walstore.{top}.s"], r[f"recovery.pgbackrest.{top}.s"]
goal(f"at {top} ms walstore replays at >= 2x pgBackRest's rate ({a:.2f} vs {b:.2f} s, {ratio(b, a)}x the rate)", b >= 2 * a)
worst = max(r[f"recovery.walstore.{rtt}.s"] for rtt in rtts)
goal(f"recovery through walfetch <= 1.1x the local replay (at most {worst:.2f} vs {local:.2f} s, {worst / local:.2f}x)",
     worst <= 1.1 * local)
ws = {k: v for k, v in peaks.items() if k.startswith(("walpush", "walfetch", "walctl"))}
big = max(ws, key=ws.get)
goal(f"every walstore process <= 32 MiB peak (largest: {big}, {mib(ws[big])})", ws[big] <= 32 * 1024)
PY
