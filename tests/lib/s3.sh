# shellcheck shell=bash
# S3 helpers for walstore's integration tests: an s3rver on loopback and a
# fault-injecting, signature-checking proxy in front of it.  Source after
# tests/lib/common.sh and ws_setup.
#
#   s3_start [--tls]   starts s3rver (npm, installed by scripts/install-deps under
#                      /opt/walstore-test-tools, or $S3RVER) on a free port with
#                      bucket $S3_BUCKET (default walstore-test); with --tls it
#                      serves HTTPS with a fresh self-signed certificate for
#                      127.0.0.1/localhost, whose PEM is $S3_CA_BUNDLE.  Exports
#                      AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                      AWS_REGION, S3_BUCKET, S3_DIR (s3rver's data directory).
#   s3_stop            stops it (the EXIT trap also does).
#   s3_object_file KEY the file in which s3rver keeps the object KEY of $S3_BUCKET.
#   s3_proxy_start     starts tests/lib/fault_proxy.py in front of the running
#                      s3rver (HTTP only) and points AWS_ENDPOINT_URL at it;
#                      $S3_PROXY_PLAN is its fault plan, $S3_PROXY_LOG its request
#                      log (see fault_proxy.py).  Every request through it must be
#                      correctly SigV4-signed (and, with $S3_PROXY_TOKEN_PREFIX set,
#                      carry a signed x-amz-security-token starting with it).
#   s3_proxy_stop      stops the proxy and points AWS_ENDPOINT_URL back at s3rver.
#   s3_latency_start MS  starts tests/lib/latency_proxy.py in front of the running s3rver (or
#                      of the fault proxy, if that runs): MS milliseconds in each direction
#                      (RTT = 2 x MS, a new connection one RTT more), bandwidth not capped;
#                      points AWS_ENDPOINT_URL at it.  Stopped by the EXIT trap.
#   s3_setup_with_wal N   ws_setup, then N real WAL segments in $WS_TMP/wal (ws_make_wal):
#                      their names in the array segs, WALSTORE_SYSTEM_ID exported.

S3RVER=${S3RVER:-/opt/walstore-test-tools/node_modules/.bin/s3rver}
S3_BUCKET=${S3_BUCKET:-walstore-test}
S3_PID=
S3_PROXY_PID=
# shellcheck disable=SC2034  # filled by s3_setup_with_wal for the scripts
segs=()

# Waits until something accepts TCP connections on 127.0.0.1:$1.
s3_wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" \
      "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  ws_die "nothing listens on 127.0.0.1:$1 after 10 s"
}

s3_start() {
  local port scheme=http args
  [[ -x $S3RVER ]] || ws_die "s3rver not found at $S3RVER: run scripts/install-deps" \
    "(npm install --prefix /opt/walstore-test-tools s3rver)"
  port=$(ws_free_port)
  S3_DIR=$WS_TMP/s3rver.$port
  mkdir -p "$S3_DIR/data"
  args=(-d "$S3_DIR/data" -a 127.0.0.1 -p "$port" --silent --configure-bucket "$S3_BUCKET")
  if [[ ${1:-} == --tls ]]; then
    scheme=https
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      -keyout "$S3_DIR/key.pem" -out "$S3_DIR/cert.pem" >/dev/null 2>&1 ||
      ws_die "openssl could not make a certificate"
    chmod 0644 "$S3_DIR/cert.pem"
    S3_CA_BUNDLE=$S3_DIR/cert.pem
    export S3_CA_BUNDLE
    args+=(--key "$S3_DIR/key.pem" --cert "$S3_DIR/cert.pem")
  fi
  # s3rver 3.7 ciphers continuation tokens with DES, which Node 20 (OpenSSL 3) only has
  # in its legacy provider.
  NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" "${args[@]}" >"$S3_DIR/s3rver.log" 2>&1 &
  S3_PID=$!
  WS_PIDS+=("$S3_PID")
  s3_wait_port "$port"
  S3_ENDPOINT=$scheme://127.0.0.1:$port
  # s3rver's built-in account.
  export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  export AWS_REGION=us-east-1 S3_BUCKET S3_DIR S3_ENDPOINT
  # A machine-wide AWS_CA_BUNDLE would override the tests' ca_bundle settings.
  unset AWS_CA_BUNDLE
  ws_log "s3rver on $S3_ENDPOINT, bucket $S3_BUCKET"
}

s3_stop() {
  s3_proxy_stop
  if [[ -n $S3_PID ]]; then
    kill "$S3_PID" 2>/dev/null
    wait "$S3_PID" 2>/dev/null
  fi
  S3_PID=
}

s3_object_file() { echo "$S3_DIR/data/$S3_BUCKET/$1._S3rver_object"; }

s3_proxy_start() {
  local port_file=$S3_DIR/proxy.port
  S3_PROXY_PLAN=$S3_DIR/proxy.plan
  S3_PROXY_LOG=$S3_DIR/proxy.log
  : >"$S3_PROXY_PLAN"
  : >"$S3_PROXY_LOG"
  rm -f "$port_file"
  python3 "$WS_LIB_DIR/fault_proxy.py" --upstream "$S3_ENDPOINT" --port-file "$port_file" \
    --plan "$S3_PROXY_PLAN" --log "$S3_PROXY_LOG" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
    ${S3_PROXY_TOKEN_PREFIX:+--session-token-prefix "$S3_PROXY_TOKEN_PREFIX"} \
    2>"$S3_DIR/proxy.err" &
  S3_PROXY_PID=$!
  WS_PIDS+=("$S3_PROXY_PID")
  local i
  for ((i = 0; i < 100; i++)); do [[ -s $port_file ]] && break; sleep 0.1; done
  [[ -s $port_file ]] || ws_die "fault proxy did not start: $(cat "$S3_DIR/proxy.err")"
  AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$port_file")
  export AWS_ENDPOINT_URL S3_PROXY_PLAN S3_PROXY_LOG
}

s3_proxy_stop() {
  if [[ -n $S3_PROXY_PID ]]; then
    kill "$S3_PROXY_PID" 2>/dev/null
    wait "$S3_PROXY_PID" 2>/dev/null
    export AWS_ENDPOINT_URL=$S3_ENDPOINT
  fi
  S3_PROXY_PID=
}

s3_latency_start() {
  local port_file=$S3_DIR/latency.port upstream=${AWS_ENDPOINT_URL#*://}
  rm -f "$port_file"
  python3 "$WS_LIB_DIR/latency_proxy.py" --upstream "${upstream%%/*}" --delay-ms "$1" \
    --port-file "$port_file" 2>"$S3_DIR/latency.err" &
  WS_PIDS+=("$!")
  local i
  for ((i = 0; i < 100; i++)); do [[ -s $port_file ]] && break; sleep 0.1; done
  [[ -s $port_file ]] || ws_die "latency proxy did not start: $(cat "$S3_DIR/latency.err")"
  export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$port_file")
}

s3_setup_with_wal() {
  ws_setup
  ws_require_tool walpush walfetch
  ws_make_wal "$WS_TMP/wal" "$1"
  # shellcheck disable=SC2034  # used by the calling script
  mapfile -t segs < <(ws_segments "$WS_TMP/wal")
  export WALSTORE_SYSTEM_ID=$WS_WAL_SYSID
}
