#!/usr/bin/env bash
# walfetch read-ahead hand-off (include/walstore/prefetch.h), with the real worker against s3rver
# behind tests/lib/fault_proxy.py, whose stalls hold the worker in the middle of a fetch:
# - asked for the segment the worker is fetching, walfetch waits for the worker's copy instead
#   of fetching it a second time (the proxy sees one GET of it);
# - with two segments in flight, walfetch of either waits for the worker's copy;
# - a worker killed in the middle of that fetch ends the wait at once: walfetch fetches itself;
# - a stuck (stopped) worker is waited for at most kPrefetchMaxWait (20 s), then walfetch fetches
#   itself with a WARNING, and leaves "stalled" so that later calls do not wait again.
# Every restored segment is compared with the original.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
s3_setup_with_wal 4
wal=$WS_TMP/wal
s3_start
cat >"$WS_TMP/walstore.toml" <<TOML
repository = "s3://$S3_BUCKET/handoff"
compression = "lz4"
TOML
export WALSTORE_CONFIG=$WS_TMP/walstore.toml
for s in "${segs[@]}"; do
  ws_expect_exit 0 "walpush $s" walpush "$wal/$s"
done
s3_proxy_start
plan() { printf '%s\n' "$@" >"$S3_PROXY_PLAN"; }

data=$WS_TMP/data
spool=$data/pg_wal/.walstore-prefetch
# fetch I: walfetch of segment I into pg_wal/RECOVERYXLOG, from the data directory as
# PostgreSQL runs it; read-ahead of 2 segments.
fetch() {
  rm -f "$data/pg_wal/RECOVERYXLOG"
  ws_run bash -c 'cd "$1" && shift && exec "$@"' _ "$data" \
    walfetch --prefetch 2 --json "${segs[$1]}" pg_wal/RECOVERYXLOG
}
# fresh: an empty pg_wal (no spool, no worker of an earlier step).
fresh() {
  ws_worker_pids | xargs -r kill -KILL 2>/dev/null
  ws_wait_workers
  rm -rf "$data"
  mkdir -p "$data/pg_wal"
  : >"$S3_PROXY_LOG"
}
# await_fetching NAME: waits (up to 30 s) until the worker names NAME among the segments it fetches.
await_fetching() {
  local i
  for ((i = 0; i < 600; i++)); do
    grep -qxF "$1" "$spool/fetching" 2>/dev/null && return 0
    sleep 0.05
  done
  ws_die "the read-ahead worker never fetched $1"
}
gets_of() { grep -c "GET .*$1" "$S3_PROXY_LOG" || true; }
same_segment() {
  ws_check "$1: the restored segment is identical" cmp "$wal/${segs[$2]}" "$data/pg_wal/RECOVERYXLOG"
}

# 1. The hand-off: the worker's GET of segment 1 stalls 3 s; walfetch of segment 1 waits for it.
fresh
plan "stall:3 GET ${segs[1]}"
fetch 0
ws_same "walfetch of segment 0 (starts the worker)" 0 "$WS_RC"
await_fetching "${segs[1]}"
start=$SECONDS
fetch 1
ws_same "walfetch of the segment the worker is fetching" 0 "$WS_RC"
ws_contains "... is served the worker's copy" "$WS_OUT" '"prefetched":true'
ws_check "... after waiting for it (at least 1 s of the 3 s stall)" test $((SECONDS - start)) -ge 1
ws_same "... and the segment was fetched once, by the worker" 1 "$(gets_of "${segs[1]}")"
same_segment "hand-off" 1

# 1b. Two segments in flight at once (kPrefetchParallelFetches): "fetching" names both, and
# walfetch of either waits for the worker's copy; neither is fetched twice.  Segment 2's GET
# stalls longer, so it is still in flight when segment 1 has been served.
fresh
plan "stall:2 GET ${segs[1]}" "stall:6 GET ${segs[2]}"
fetch 0
await_fetching "${segs[1]}"
await_fetching "${segs[2]}"
ws_check "both are in flight together" grep -qxF "${segs[1]}" "$spool/fetching"
fetch 1
ws_contains "walfetch of the first segment in flight is served the worker's copy" "$WS_OUT" \
  '"prefetched":true'
same_segment "first in flight" 1
ws_check "the second is still in flight" grep -qxF "${segs[2]}" "$spool/fetching"
start=$SECONDS
fetch 2
ws_contains "walfetch of the second is served the worker's copy" "$WS_OUT" '"prefetched":true'
ws_check "... after waiting for it" test $((SECONDS - start)) -ge 1
same_segment "second in flight" 2
ws_same "... each fetched once, by the worker" "1 1" "$(gets_of "${segs[1]}") $(gets_of "${segs[2]}")"

# 2. A worker killed in the middle of that fetch: walfetch fetches itself, at once.
fresh
plan "stall:30 GET ${segs[1]}" "stall:30 GET ${segs[2]}"
fetch 0
await_fetching "${segs[1]}"
await_fetching "${segs[2]}"
(sleep 1 && ws_worker_pids | xargs -r kill -KILL) &
killer=$!
start=$SECONDS
fetch 1
wait "$killer"
ws_same "walfetch after the worker was killed mid-fetch" 0 "$WS_RC"
ws_contains "... fetched the segment itself" "$WS_OUT" '"prefetched":false'
ws_check "... without waiting for the 20 s bound ($((SECONDS - start)) s)" \
  test $((SECONDS - start)) -lt 15
same_segment "killed worker" 1
fetch 2
ws_same "walfetch of the other segment the killed worker had in flight" 0 "$WS_RC"
same_segment "killed worker, second in flight (no partial copy served)" 2

# 3. A stuck worker (stopped): waited for at most 20 s, then walfetch fetches itself.
fresh
plan "stall:3 GET ${segs[1]}"
fetch 0
await_fetching "${segs[1]}"
mapfile -t stuck < <(ws_worker_pids)
[[ ${#stuck[@]} -gt 0 ]] || ws_die "no read-ahead worker to stop"
kill -STOP "${stuck[@]}"
start=$SECONDS
fetch 1
ws_same "walfetch while the worker is stuck" 0 "$WS_RC"
ws_contains "... fetched the segment itself" "$WS_OUT" '"prefetched":false'
ws_contains "... saying why" "$WS_ERR" "the read-ahead worker has not fetched ${segs[1]}"
ws_check "... after the bounded wait ($((SECONDS - start)) s, bound 20 s)" \
  test $((SECONDS - start)) -ge 19 -a $((SECONDS - start)) -lt 60
ws_check "... leaving 'stalled' for later calls" test -e "$spool/stalled"
same_segment "stuck worker" 1
start=$SECONDS
fetch 2
ws_same "the next walfetch while the worker is still stuck" 0 "$WS_RC"
ws_check "... does not wait ($((SECONDS - start)) s)" test $((SECONDS - start)) -lt 10
same_segment "after a stuck worker" 2
kill -KILL "${stuck[@]}" 2>/dev/null
kill -CONT "${stuck[@]}" 2>/dev/null
ws_done
