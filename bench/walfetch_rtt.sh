#!/usr/bin/env bash
# walfetch's read-ahead at a real region's round-trip time, in isolation: BENCH_SEGMENTS (32)
# segments archived to s3rver, then fetched back-to-back as PostgreSQL's restore_command does
# (from a data directory into pg_wal/RECOVERYXLOG, read-ahead on at its default depth) through
# tests/lib/latency_proxy.py at BENCH_RTT ms (50).  Between two calls it sleeps BENCH_REPLAY_MS
# (0: the worker never gets ahead, so the figure is its throughput).  Reported per walfetch
# binary: seconds per segment (wall time of all calls / segments), how many calls the spool
# served, and the read-ahead worker's peak RSS (tests/lib/rss_sampler.py).
#
#   bench/walfetch_rtt.sh [WALFETCH...]
#
# Each WALFETCH (default: this build's) is measured BENCH_RUNS (2) times, the binaries in
# alternating order, each run with an empty spool and no worker left from the run before.  Give
# an older build's walfetch too to compare.  Not a test: run by hand on an idle machine, after
# scripts/build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$root/tests/lib/s3.sh"
WS_SCRIPT=walfetch_rtt
n=${BENCH_SEGMENTS:-32}
rtt=${BENCH_RTT:-50}
runs=${BENCH_RUNS:-2}
replay_ms=${BENCH_REPLAY_MS:-0}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
s3_setup_with_wal "$n"
binaries=("$@")
[[ ${#binaries[@]} -gt 0 ]] || binaries=("$WS_BIN/walfetch")
for i in "${!binaries[@]}"; do
  mkdir -p "$WS_TMP/bin-$i"
  cp "${binaries[$i]}" "$WS_TMP/bin-$i/walfetch"
done
s3_start
export WALSTORE_REPO=s3://$S3_BUCKET/rtt
for s in "${segs[@]}"; do walpush --compression lz4 "$WS_TMP/wal/$s"; done
s3_latency_start $((rtt / 2))
data=$WS_TMP/data

# run I: every segment through binary I; prints "seconds-per-segment served-from-spool peak-KiB".
run() {
  local bin=$WS_TMP/bin-$1/walfetch served=0 restored=0 start end sampler s
  ws_worker_pids | xargs -r kill -KILL 2>/dev/null
  ws_wait_workers
  rm -rf "$data"
  mkdir -p "$data/pg_wal"
  python3 "$WS_LIB_DIR/rss_sampler.py" "$WS_TMP/bin-$1" "$WS_TMP/rss.json" "$(date +%s)" 1 &
  sampler=$!
  start=$(date +%s.%N)
  for s in "${segs[@]}"; do
    (cd "$data" && "$bin" --json "$s" pg_wal/RECOVERYXLOG) >"$WS_TMP/out.json"
    grep -q '"prefetched":true' "$WS_TMP/out.json" && served=$((served + 1))
    cmp -s "$WS_TMP/wal/$s" "$data/pg_wal/RECOVERYXLOG" || ws_die "$s: wrong bytes"
    restored=$((restored + 1))
    rm -f "$data/pg_wal/RECOVERYXLOG"
    ((replay_ms == 0)) || sleep "$(python3 -c "print($replay_ms / 1000)")"
  done
  end=$(date +%s.%N)
  ws_check "$bin restored all $n segments with the right bytes" test "$restored" -eq "$n" >&2
  ws_worker_pids | xargs -r kill -KILL 2>/dev/null
  kill "$sampler"
  wait "$sampler" || true
  python3 - "$start" "$end" "$n" "$served" "$WS_TMP/rss.json" <<'PY'
import json, sys
start, end, n, served, rss = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
worker = json.load(open(rss))["tools"].get("walfetch read-ahead worker", {})
print(f"{(end - start) / n:.3f} {served} {worker.get('peak_vmhwm_kib', 0)}")
PY
}

printf '| walfetch | run | s/segment | served from the spool | worker peak RSS (MiB) |\n|---|---|---|---|---|\n'
for ((r = 1; r <= runs; r++)); do
  order=("${!binaries[@]}")
  ((r % 2 == 1)) || mapfile -t order < <(printf '%s\n' "${!binaries[@]}" | tac)
  for i in "${order[@]}"; do
    read -r per served peak < <(run "$i")
    printf '| %s | %d | %s | %s/%d | %.1f |\n' "${binaries[$i]}" "$r" "$per" "$served" "$n" \
      "$(python3 -c "print($peak / 1024)")"
  done
done
printf '\n%d segments, %d ms RTT, %d ms between calls; load average %s at the start, %s at the end\n' \
  "$n" "$rtt" "$replay_ms" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
ws_done
