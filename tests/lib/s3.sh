# shellcheck shell=bash
# S3 helpers for walstore's integration tests: an S3 server on loopback and a
# fault-injecting, signature-checking proxy in front of it.  Source after
# tests/lib/common.sh and ws_setup.
#
# The server is $WALSTORE_TEST_S3_SERVER: s3rver (the default) or rgw, a private Ceph cluster
# with the RADOS Gateway (tests/lib/rgw.sh); meson registers each S3 test for both.  $S3_SERVER
# says which one runs, for the few checks where the two stores really differ.
#
# Known s3rver limitation (3.7.1): a listing with delimiter=/ reports no CommonPrefix for a
# "directory" whose keys all sit two or more levels below the prefix (its filesystem walk
# skips such directories), so ListChildren("<sysid>/") can come back empty although the
# cluster has WAL.  walstore asks "does the repository hold anything of the cluster" with a
# listing without delimiter (Storage::AnyBelow), which s3rver, RGW and S3 answer alike; tests
# must not rely on delimiter listings of deep keys on s3rver.
#
#   s3_start [--tls]   starts the server on a free port of 127.0.0.1 with bucket $S3_BUCKET
#                      (default walstore-test): s3rver (npm, installed by scripts/install-deps
#                      under /opt/walstore-test-tools, or $S3RVER) or rgw_start; with --tls it
#                      serves HTTPS with a fresh self-signed certificate for
#                      127.0.0.1/localhost, whose PEM is $S3_CA_BUNDLE.  Exports
#                      AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                      AWS_REGION, S3_BUCKET, S3_ENDPOINT (the server itself, even while a
#                      proxy runs), S3_DIR (the server's directory: data, logs).
#   s3_stop            stops it (the EXIT trap also does).
#   s3_client ARGS...  tests/lib/s3_client.py against the server itself (not through the
#                      proxy): objects read and written behind walstore's back.
#   s3_object_head KEY prints the status and headers of a HEAD of KEY (in $S3_BUCKET).
#   s3_object_damage KEY OFFSET   inverts one byte of the stored object KEY (negative OFFSET
#                      counts from the end), keeping its x-amz-meta-* headers; the original
#                      is kept for s3_object_repair KEY, which stores it back.
#   s3_object_count PREFIX   how many objects of $S3_BUCKET have keys starting with PREFIX.
#   s3_object_file KEY the file in which s3rver keeps the object KEY of $S3_BUCKET (s3rver
#                      only).
#   s3_proxy_start     starts tests/lib/fault_proxy.py in front of the running
#                      server (HTTP only) and points AWS_ENDPOINT_URL at it;
#                      $S3_PROXY_PLAN is its fault plan, $S3_PROXY_LOG its request
#                      log (see fault_proxy.py).  Every request through it must be
#                      correctly SigV4-signed (and, with $S3_PROXY_TOKEN_PREFIX set,
#                      carry a signed x-amz-security-token starting with it).
#   s3_proxy_stop      stops the proxy and points AWS_ENDPOINT_URL back at the server.
#   s3_latency_start MS  starts tests/lib/latency_proxy.py in front of $AWS_ENDPOINT_URL (the
#                      running server, or the fault proxy if that runs): MS milliseconds in
#                      each direction (RTT = 2 x MS, a new connection one RTT more), bandwidth
#                      not capped; points AWS_ENDPOINT_URL at it, with the same scheme (TLS
#                      passes through: the server's certificate names 127.0.0.1 too).  Stopped
#                      by the EXIT trap.
#   s3_walstore_conf FILE PREFIX [ENDPOINT]   writes a walstore configuration (mode 0644) for
#                      s3://$S3_BUCKET/PREFIX through ENDPOINT (default $S3_ENDPOINT), lz4,
#                      no encryption, s3rver's account, ca_bundle $S3_CA_BUNDLE if set.
#   s3_pgbr_settings [PORT]   prints pgBackRest [global] settings, one a line, for $S3_BUCKET
#                      on 127.0.0.1:PORT (default the server's port), for pgbr_setup.  No TLS
#                      verification: pgBackRest 2.45 matches only DNS names of a certificate,
#                      not its IP address (walstore verifies, so this favours pgBackRest).
#   s3_setup_with_wal N   ws_setup, then real WAL segments in $WS_TMP/wal (ws_make_wal): the
#                      names of the first N in the array segs, WALSTORE_SYSTEM_ID exported.

S3RVER=${S3RVER:-/opt/walstore-test-tools/node_modules/.bin/s3rver}
S3_SERVER=${WALSTORE_TEST_S3_SERVER:-s3rver}
S3_BUCKET=${S3_BUCKET:-walstore-test}
S3_PID=
case $S3_SERVER in
  s3rver) ;;
  rgw)
    # shellcheck source=tests/lib/rgw.sh
    . "$WS_LIB_DIR/rgw.sh"
    ;;
  *) ws_die "WALSTORE_TEST_S3_SERVER must be s3rver or rgw, not '$S3_SERVER'" ;;
esac
export S3_SERVER
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
  if [[ $S3_SERVER == rgw ]]; then
    rgw_start "$@"
    return
  fi
  local port scheme=http args
  [[ -x $S3RVER ]] || ws_die "s3rver not found at $S3RVER: run scripts/install-deps" \
    "(npm install --prefix /opt/walstore-test-tools s3rver)"
  port=$(ws_free_port)
  S3_DIR=$WS_TMP/s3rver.$port
  mkdir -p "$S3_DIR/data"
  args=(-d "$S3_DIR/data" -a 127.0.0.1 -p "$port" --silent --configure-bucket "$S3_BUCKET")
  if [[ ${1:-} == --tls ]]; then
    scheme=https
    s3_make_certificate "$S3_DIR"
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

# s3_make_certificate DIR: a fresh self-signed certificate for 127.0.0.1/localhost in
# DIR/cert.pem (exported as S3_CA_BUNDLE) and its key in DIR/key.pem.
s3_make_certificate() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$1/key.pem" -out "$1/cert.pem" >/dev/null 2>&1 ||
    ws_die "openssl could not make a certificate"
  chmod 0644 "$1/cert.pem"
  S3_CA_BUNDLE=$1/cert.pem
  export S3_CA_BUNDLE
}

s3_stop() {
  s3_proxy_stop
  if [[ $S3_SERVER == rgw ]]; then
    rgw_stop
  elif [[ -n $S3_PID ]]; then
    kill "$S3_PID" 2>/dev/null
    wait "$S3_PID" 2>/dev/null
  fi
  S3_PID=
}

s3_object_file() {
  [[ $S3_SERVER == s3rver ]] || ws_die "s3_object_file: only s3rver keeps objects in files"
  echo "$S3_DIR/data/$S3_BUCKET/$1._S3rver_object"
}

s3_client() { python3 "$WS_LIB_DIR/s3_client.py" "$@"; }

s3_object_head() { s3_client head "$1"; }

s3_object_count() { s3_client count "$1"; }

s3_object_damage() {
  local orig=$S3_DIR/damaged/$1
  mkdir -p "$(dirname "$orig")"
  s3_client get "$1" "$orig" || ws_die "s3_object_damage: no object $1"
  cp "$orig" "$orig.damaged"
  cp "$orig.meta" "$orig.damaged.meta"
  ws_flip_byte "$orig.damaged" "$2"
  s3_client put "$1" "$orig.damaged" || ws_die "s3_object_damage: could not store $1"
}

s3_object_repair() {
  s3_client put "$1" "$S3_DIR/damaged/$1" || ws_die "s3_object_repair: could not store $1"
}

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
  local port_file=$S3_DIR/latency.port upstream=${AWS_ENDPOINT_URL#*://} scheme=${AWS_ENDPOINT_URL%%://*}
  rm -f "$port_file"
  python3 "$WS_LIB_DIR/latency_proxy.py" --upstream "${upstream%%/*}" --delay-ms "$1" \
    --port-file "$port_file" 2>"$S3_DIR/latency.err" &
  WS_PIDS+=("$!")
  local i
  for ((i = 0; i < 100; i++)); do [[ -s $port_file ]] && break; sleep 0.1; done
  [[ -s $port_file ]] || ws_die "latency proxy did not start: $(cat "$S3_DIR/latency.err")"
  export AWS_ENDPOINT_URL=$scheme://127.0.0.1:$(cat "$port_file")
}

s3_walstore_conf() {
  {
    printf '%s\n' "repository = \"s3://$S3_BUCKET/$2\"" 'compression = "lz4"' "[s3]" \
      "endpoint = \"${3:-$S3_ENDPOINT}\"" 'region = "us-east-1"'
    [[ -z ${S3_CA_BUNDLE:-} ]] || printf 'ca_bundle = "%s"\n' "$S3_CA_BUNDLE"
    printf '%s\n' "access_key_id = \"$AWS_ACCESS_KEY_ID\"" "secret_access_key = \"$AWS_SECRET_ACCESS_KEY\""
  } >"$1"
  chmod 0644 "$1"
}

s3_pgbr_settings() {
  local port=${1:-${S3_ENDPOINT##*:}}
  printf '%s\n' repo1-type=s3 "repo1-s3-bucket=$S3_BUCKET" repo1-s3-endpoint=127.0.0.1 \
    "repo1-storage-port=$port" repo1-s3-region=us-east-1 "repo1-s3-key=$AWS_ACCESS_KEY_ID" \
    "repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY" repo1-s3-uri-style=path repo1-storage-verify-tls=n
}

s3_setup_with_wal() {
  ws_setup
  ws_require_tool walpush walfetch
  ws_make_wal "$WS_TMP/wal" "$1"
  # shellcheck disable=SC2034  # used by the calling script
  # Exactly N: ws_make_wal may make more, and a test's counts (e.g. a push-ahead window of
  # N - 1) must not depend on how many the server happened to write.
  mapfile -t segs < <(ws_segments "$WS_TMP/wal" | head -n "$1")
  export WALSTORE_SYSTEM_ID=$WS_WAL_SYSID
}
