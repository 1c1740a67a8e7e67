#!/usr/bin/env bash
# tests/lib/latency_proxy.py, the tool the benchmarks use to run S3 at a real region's round-trip
# time: through it walpush and walfetch work unchanged (identical bytes), every exchange costs
# the configured delay in each direction, and the delay does not cap the bandwidth.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
s3_setup_with_wal 2
s3_start
export WALSTORE_REPO=s3://$S3_BUCKET/latency
direct=$AWS_ENDPOINT_URL
# seconds CMD...: wall time of CMD in seconds (3 decimals); its exit code must be 0.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || ws_die "$* failed"
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.3f}')"
}
ws_expect_exit 0 "walpush directly" walpush "$WS_TMP/wal/${segs[0]}"
t_direct=$(seconds walfetch --prefetch 0 "${segs[0]}" "$WS_TMP/direct")
s3_latency_start 100
ws_expect_exit 0 "walpush through 100 ms each way" walpush "$WS_TMP/wal/${segs[1]}"
t_delayed=$(seconds walfetch --prefetch 0 "${segs[1]}" "$WS_TMP/delayed")
ws_check "the segment fetched through the proxy is identical" cmp "$WS_TMP/wal/${segs[1]}" "$WS_TMP/delayed"
ws_log "walfetch of one segment: ${t_direct} s directly, ${t_delayed} s at 200 ms RTT"
# At least one connection (1 RTT) and one request (1 RTT): 0.4 s, whatever the machine's speed.
ws_check "the round trips cost what they should (${t_delayed} s >= 0.4 s)" \
  python3 -c "import sys; sys.exit(0 if $t_delayed >= 0.4 else 1)"
# Bandwidth: 64 MiB through a 200 ms RTT proxy with a plain HTTP GET: a window-limited or
# chunk-serialised proxy would need seconds per MiB.
head -c $((64 << 20)) /dev/urandom >"$WS_TMP/big"
port_file=$WS_TMP/http.port
python3 - "$WS_TMP" "$port_file" <<'PY' &
import http.server, functools, sys, os
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.log_message = lambda *a: None
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
open(sys.argv[2] + ".tmp", "w").write(str(srv.server_address[1]))
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
srv.serve_forever()
PY
WS_PIDS+=("$!")
for _ in $(seq 100); do [[ -s $port_file ]] && break; sleep 0.1; done
AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$port_file") s3_latency_start 100
t_big=$(seconds curl -sSf -o "$WS_TMP/big.copy" "$AWS_ENDPOINT_URL/big")
ws_check "64 MiB passed intact" cmp "$WS_TMP/big" "$WS_TMP/big.copy"
ws_log "64 MiB through 200 ms RTT in ${t_big} s"
ws_check "the delay does not cap the bandwidth (64 MiB in ${t_big} s < 8 s)" \
  python3 -c "import sys; sys.exit(0 if $t_big < 8 else 1)"
AWS_ENDPOINT_URL=$direct
ws_done
