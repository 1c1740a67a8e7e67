#!/usr/bin/env bash
# walctl backup / restore wall time and peak RSS (GNU time %M) per --jobs (1, 2, 4) on one
# pgbench cluster, file repository, lz4 + AES-256-GCM, one run each.  Not a test: run by hand
# as root:  bash bench/jobs_bench.sh      (BENCH_SCALE=100 by default; BENCH_JOBS="1 2 4")
# Prints the load average before each run: other work on the machine skews the times.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
WS_SCRIPT=jobs_bench
WS_KEEP=${BENCH_KEEP:-0}
scale=${BENCH_SCALE:-100}
read -r -a jobs_list <<<"${BENCH_JOBS:-1 2 4}"

[[ -x /usr/bin/time ]] || ws_die "GNU time not installed (apt-get install time)"
ws_setup
ws_require_tool walpush walfetch walctl

bench_backup_cluster --key-file "$WS_TMP/key"

results=()
# measure NAME CMD...: runs CMD under GNU time, records "NAME seconds peak_kib user_s sys_s load1".
measure() {
  local name=$1 out load
  shift
  sync
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$WS_TMP/time.$name
  /usr/bin/time -f '%e %M %U %S' -o "$out" "$@" >"$WS_TMP/out.$name" 2>&1 ||
    { cat "$WS_TMP/out.$name" >&2; ws_die "$name failed"; }
  results+=("$name $(cat "$out") $load")
  ws_log "$name: $(cat "$out") (seconds, peak KiB, user s, system s), load before $load"
}
wsctl=("$WS_BIN/walctl" --repo "$repo" --key-file "$WS_TMP/key")

ws_log "pgbench -i -s $scale"
pg_pgbench "$port" -i -q -s "$scale" >/dev/null 2>&1
pg_psql "$port" "checkpoint"
db_size=$(pg_psql "$port" "select pg_database_size('postgres')")
ws_log "database size $(numfmt --to=iec "$db_size")"

for j in "${jobs_list[@]}"; do
  measure "backup_j$j" "${wsctl[@]}" backup -d "$conninfo" --label "j$j" --compression lz4 --jobs "$j" -q
done
pg_stop "$data"
ws_pg_dir "$WS_TMP/restores"
for j in "${jobs_list[@]}"; do
  measure "restore_j$j" "${wsctl[@]}" restore "j$j" "$WS_TMP/restores/j$j" --jobs "$j" --no-progress -q
  rm -rf "$WS_TMP/restores/j$j"
done

echo
echo "walctl --jobs: pgbench scale $scale, database $(numfmt --to=iec "$db_size"), $(nproc) cores, lz4 + AES-256-GCM, file repository"
printf '%-12s %10s %12s %8s %8s %8s\n' "run" "seconds" "peak RSS" "user s" "sys s" "load1"
for r in "${results[@]}"; do
  read -r name secs kib user sys load <<<"$r"
  printf '%-12s %10s %9s MiB %8s %8s %8s\n' "$name" "$secs" "$((kib / 1024))" "$user" "$sys" "$load"
done
