#!/usr/bin/env bash
# walpush / walfetch through tests/lib/fault_proxy.py, which injects 500s,
# 503 SlowDown, stalls, dropped connections and cut bodies in front of s3rver:
# both still succeed within the retry budget, give up when it is spent, and a
# walpush killed mid-upload (single PUT or multipart) leaves no visible object
# while a retried one succeeds.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
s3_setup_with_wal 3
wal=$WS_TMP/wal
out=$WS_TMP/out
mkdir -p "$out"
s3_start
s3_proxy_start

# Short timeouts so that stalls are noticed quickly; a generous retry budget.
cat >"$WS_TMP/faults.toml" <<TOML
repository = "s3://$S3_BUCKET/faults"
[s3]
connect_timeout_seconds = 2
low_speed_seconds = 2
retry_total_seconds = 60
max_attempts = 8
TOML
export WALSTORE_CONFIG=$WS_TMP/faults.toml
plan() { printf '%s\n' "$@" >"$S3_PROXY_PLAN"; }
plan_left() { grep -c . "$S3_PROXY_PLAN" || true; }

plan 500 slowdown reset "stall:4 PUT"
ws_expect_exit 0 "walpush succeeds through a 500, a 503 SlowDown, a reset and a stalled PUT" \
  walpush "$wal/${segs[0]}"
ws_same "every injected fault was met" 0 "$(plan_left)"
ws_contains "the retries were logged" "$WS_ERR" "HTTP 503; retrying in"

: >"$S3_PROXY_LOG"
plan "cut GET" "reset GET" "slowdown GET" "cut GET"
ws_expect_exit 0 "walfetch succeeds through cut bodies, a reset and a SlowDown" \
  walfetch "${segs[0]}" "$out/a"
ws_check "the restored segment is identical" cmp "$wal/${segs[0]}" "$out/a"
ws_same "every injected fault was met" 0 "$(plan_left)"
ws_contains "a cut transfer resumed with a Range request" "$(cat "$S3_PROXY_LOG")" "range=bytes="

# An exhausted budget is an error, never a success or a "missing".
cat >"$WS_TMP/short.toml" <<TOML
repository = "s3://$S3_BUCKET/faults"
[s3]
retry_total_seconds = 3
max_attempts = 3
TOML
plan 500 500 500 500 500 500
start=$SECONDS
ws_expect_exit 14 "walpush gives up after max_attempts 500s (storage_transient)" \
  walpush -c "$WS_TMP/short.toml" "$wal/${segs[1]}"
plan 500 500 500 500 500 500
ws_expect_exit 126 "walfetch gives up with 126, not 'missing'" \
  walfetch -c "$WS_TMP/short.toml" "${segs[0]}" "$out/b"
ws_check "both gave up within the budget" test $((SECONDS - start)) -lt 15
plan

# A walpush killed mid-upload leaves nothing visible; a retried one succeeds.
# kill_mid_upload DESC METHOD TEXT PATTERN WALPUSH_ARGS...: the proxy holds the first METHOD
# request with TEXT in its path and query; once one matching the regex PATTERN has arrived,
# walpush is killed with SIGKILL.
kill_mid_upload() {
  local desc=$1 method=$2 text=$3 pattern=$4 pid i
  shift 4
  : >"$S3_PROXY_LOG"
  plan "hang $method $text"
  walpush "$@" >/dev/null 2>&1 &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -q "$method .*$pattern" "$S3_PROXY_LOG" && break
    sleep 0.1
  done
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  plan
  ws_check "$desc: walpush was killed during its upload" grep -q "$method .*$pattern" "$S3_PROXY_LOG"
  ws_expect_exit 1 "$desc: no visible object afterwards (walfetch: missing)" \
    walfetch "${segs[1]}" "$out/c"
  ws_expect_exit 0 "$desc: a retried walpush succeeds" walpush "$@"
  ws_expect_exit 0 "$desc: and walfetch restores it" walfetch "${segs[1]}" "$out/c"
  ws_check "$desc: identical" cmp "$wal/${segs[1]}" "$out/c"
}
kill_mid_upload "single PUT" PUT "${segs[1]}" "${segs[1]} " "$wal/${segs[1]}"

cat >"$WS_TMP/multipart.toml" <<TOML
repository = "s3://$S3_BUCKET/faults-multipart"
[s3]
multipart_threshold = 1048576
part_size = 5242880
TOML
export WALSTORE_CONFIG=$WS_TMP/multipart.toml
kill_mid_upload "multipart, during a part" PUT partNumber=2 "partNumber=2" \
  --compression none "$wal/${segs[1]}"
export WALSTORE_CONFIG=$WS_TMP/multipart2.toml
sed 's/faults-multipart/faults-multipart2/' "$WS_TMP/multipart.toml" >"$WALSTORE_CONFIG"
kill_mid_upload "multipart, during CompleteMultipartUpload" POST "?uploadId=" "?uploadId=" \
  --compression none "$wal/${segs[1]}"

# Push-ahead on a flaky S3 (a backlog of three .ready segments in a pg_wal laid out like
# PostgreSQL's): the worker retries through faults as walpush does; while its upload of the last
# segment hangs, nothing of it is visible and PostgreSQL's call for it waits for the worker;
# once the worker is killed, that call archives the segment itself.
cat >"$WS_TMP/ahead.toml" <<TOML
repository = "s3://$S3_BUCKET/faults-ahead"
[s3]
connect_timeout_seconds = 2
low_speed_seconds = 60
retry_total_seconds = 60
max_attempts = 8
TOML
export WALSTORE_CONFIG=$WS_TMP/ahead.toml
pa=$WS_TMP/pa
mkdir -p "$pa/pg_wal/archive_status"
for i in 0 1 2; do
  cp "$wal/${segs[$i]}" "$pa/pg_wal/"
  : >"$pa/pg_wal/archive_status/${segs[$i]}.ready"
done
pa_push() { (cd "$pa" && walpush --push-ahead 2 --json "pg_wal/${segs[$1]}"); }
pa_done() { mv "$pa/pg_wal/archive_status/${segs[$1]}.ready" "$pa/pg_wal/archive_status/${segs[$1]}.done"; }
: >"$S3_PROXY_LOG"
plan "slowdown HEAD ${segs[1]}" "500 PUT ${segs[1]}" "hang PUT ${segs[2]}"
ws_run pa_push 0
ws_same "push-ahead, flaky S3: segment 0 archived by walpush" 0 "$WS_RC"
pa_done 0
for ((i = 0; i < 300; i++)); do
  grep -q "PUT .*${segs[2]}" "$S3_PROXY_LOG" && [[ -e $pa/pg_wal/.walstore-push/${segs[1]}.pushed ]] && break
  sleep 0.1
done
ws_run pa_push 1
ws_contains "push-ahead, flaky S3: segment 1 pushed ahead through a 503 and a 500" "$WS_OUT" \
  '"outcome":"pushed_ahead"'
pa_done 1
ws_same "push-ahead, flaky S3: every injected fault was met" 0 "$(plan_left)"
ws_contains "push-ahead, flaky S3: the worker logged its retries" \
  "$(cat "$pa/pg_wal/.walstore-push/push.log")" "retrying in"
(pa_push 2 >"$WS_TMP/pa2.out" 2>"$WS_TMP/pa2.err"; echo $? >"$WS_TMP/pa2.rc") &
waiter=$!
sleep 0.5
ws_check "push-ahead, flaky S3: walpush waits for the worker's hanging upload" test ! -e "$WS_TMP/pa2.rc"
ws_expect_exit 1 "push-ahead, flaky S3: nothing of the hanging upload is visible" \
  walfetch --prefetch 0 "${segs[2]}" "$out/pa2"
ws_worker_pids | xargs -r kill -KILL
wait "$waiter"
ws_same "push-ahead, flaky S3: with the worker killed, walpush archives it itself" 0 "$(cat "$WS_TMP/pa2.rc")"
ws_contains "push-ahead, flaky S3: ... stored by walpush" "$(cat "$WS_TMP/pa2.out")" '"outcome":"stored"'
for i in 0 1 2; do
  ws_expect_exit 0 "push-ahead, flaky S3: walfetch of segment $i" walfetch --prefetch 0 "${segs[$i]}" "$out/pa$i"
  ws_check "push-ahead, flaky S3: segment $i identical" cmp "$wal/${segs[$i]}" "$out/pa$i"
done

ws_not_contains "every request was correctly signed (proxy check)" "$(cat "$S3_PROXY_LOG")" \
  SIGNATURE-ERROR
ws_done
