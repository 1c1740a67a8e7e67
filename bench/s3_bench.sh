#!/usr/bin/env bash
# walpush / walfetch against pgbackrest archive-push / archive-get, to the same
# local S3 server (s3rver over HTTPS: pgbackrest only speaks TLS to S3), on the
# same real WAL segments, in one run.  Both use lz4, no encryption, one process
# per segment (pgbackrest with archive-async=n, as walpush runs).
#
#   bench/s3_bench.sh            (after: meson setup build && ninja -C build)
# Env: BENCH_SEGMENTS (default 8), WALSTORE_BUILD_DIR (default <source>/build).
# Prints per-tool medians (ms per segment) and walstore / pgbackrest ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../tests/lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../tests/lib/s3.sh"
command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (apt-get install pgbackrest)"
count=${BENCH_SEGMENTS:-8}

ws_setup
ws_require_tool walpush walfetch
ws_log "making $count WAL segments"
WS_WAL_TPCB_SECONDS=${WS_WAL_TPCB_SECONDS:-2} ws_make_wal "$WS_TMP/wal" "$count"
mapfile -t segs < <(ws_segments "$WS_TMP/wal" | head -n "$count")
s3_start --tls
chmod 0644 "$S3_CA_BUNDLE"

# walstore
cat >"$WS_TMP/walstore.toml" <<TOML
repository = "s3://$S3_BUCKET/walstore"
compression = "lz4"
[s3]
endpoint = "$S3_ENDPOINT"
region = "us-east-1"
ca_bundle = "$S3_CA_BUNDLE"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
TOML
# pgbackrest
port=${S3_ENDPOINT##*:}
mkdir -p "$WS_TMP/pgbr/log" "$WS_TMP/pgbr/lock" "$WS_TMP/pgbr/spool"
cat >"$WS_TMP/pgbackrest.conf" <<CONF
[global]
repo1-type=s3
repo1-path=/pgbackrest
repo1-s3-bucket=$S3_BUCKET
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$port
repo1-s3-region=us-east-1
repo1-s3-key=S3RVER
repo1-s3-key-secret=S3RVER
repo1-s3-uri-style=path
# pgbackrest 2.45 matches only DNS names of the certificate, not its IP address: no TLS
# verification for it (walstore verifies against ca_bundle, so this favours pgbackrest).
repo1-storage-verify-tls=n
compress-type=lz4
archive-async=n
log-level-console=warn
log-level-file=off
log-path=$WS_TMP/pgbr/log
lock-path=$WS_TMP/pgbr/lock
spool-path=$WS_TMP/pgbr/spool

[bench]
pg1-path=$WS_WAL_DATADIR
pg1-socket-path=$WS_TMP/sock
CONF
chown -R postgres: "$WS_TMP/pgbr" "$WS_TMP/pgbackrest.conf" 2>/dev/null || true
pgbr() { as_pg pgbackrest --config="$WS_TMP/pgbackrest.conf" --stanza=bench "$@"; }
pg_port=$(ws_free_port)
pg_start "$WS_WAL_DATADIR" "$pg_port"
pg_conf "$WS_WAL_DATADIR" "port = $pg_port"
pgbr --pg1-port="$pg_port" stanza-create >/dev/null
pg_stop "$WS_WAL_DATADIR"

# time_ms CMD...: runs CMD, prints its wall time in ms (fails the bench if CMD fails).
time_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>"$WS_TMP/last.err" || { cat "$WS_TMP/last.err" >&2; ws_die "failed: $*"; }
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}

declare -A times=([walpush]="" [pgbackrest-push]="" [walfetch]="" [pgbackrest-get]="" [walfetch-ahead]="")
mkdir -p "$WS_TMP/out" "$WS_TMP/ahead"
chown postgres: "$WS_TMP/out" "$WS_TMP/ahead" 2>/dev/null || true
i=0
for seg in "${segs[@]}"; do
  # Alternate which tool goes first, so neither always meets a warm cache.
  if ((i++ % 2 == 0)); then order=(walstore pgbackrest); else order=(pgbackrest walstore); fi
  for tool in "${order[@]}"; do
    if [[ $tool == walstore ]]; then
      times[walpush]+=" $(time_ms as_pg walpush -c "$WS_TMP/walstore.toml" "$WS_TMP/wal/$seg")"
    else
      times[pgbackrest-push]+=" $(time_ms pgbr archive-push "$WS_TMP/wal/$seg")"
    fi
  done
done
for seg in "${segs[@]}"; do
  for tool in "${order[@]}"; do
    if [[ $tool == walstore ]]; then
      # One shot, like synchronous archive-get: every call fetches its segment itself.
      times[walfetch]+=" $(time_ms as_pg walfetch -c "$WS_TMP/walstore.toml" --system-id "$WS_WAL_SYSID" --prefetch 0 "$seg" "$WS_TMP/out/w-$seg")"
    else
      times[pgbackrest-get]+=" $(time_ms pgbr archive-get "$seg" "$WS_TMP/out/p-$seg")"
    fi
  done
  # walfetch as configured by default (read-ahead), into its own directory; its background
  # worker finishes before anything else is timed (that time stands for PostgreSQL's replay).
  times[walfetch-ahead]+=" $(time_ms as_pg walfetch -c "$WS_TMP/walstore.toml" --system-id "$WS_WAL_SYSID" "$seg" "$WS_TMP/ahead/$seg")"
  ws_wait_workers
  if ! cmp "$WS_TMP/wal/$seg" "$WS_TMP/out/w-$seg" || ! cmp "$WS_TMP/wal/$seg" "$WS_TMP/out/p-$seg" ||
    ! cmp "$WS_TMP/wal/$seg" "$WS_TMP/ahead/$seg"; then
    ws_die "restored $seg differs"
  fi
done

python3 - "${#segs[@]}" "${times[walpush]}" "${times[pgbackrest-push]}" "${times[walfetch]}" \
  "${times[pgbackrest-get]}" "${times[walfetch-ahead]}" <<'PY'
import statistics, sys
n = sys.argv[1]
push, pgb_push, fetch, pgb_get, ahead = ([int(x) for x in a.split()] for a in sys.argv[2:7])
med = statistics.median
print(f"S3 benchmark: {n} segments of 16 MiB, lz4, s3rver over HTTPS on loopback, one process per segment")
print(f"{'tool':<28}{'median ms':>10}{'min':>7}{'max':>7}")
for name, t in [("walpush", push), ("pgbackrest archive-push", pgb_push),
                ("walfetch --prefetch 0", fetch), ("pgbackrest archive-get", pgb_get),
                ("walfetch (read-ahead)", ahead)]:
    print(f"{name:<28}{med(t):>10.0f}{min(t):>7}{max(t):>7}")
print(f"walpush / archive-push = {med(push) / med(pgb_push):.2f}")
print(f"walfetch --prefetch 0 / archive-get = {med(fetch) / med(pgb_get):.2f}")
print(f"walfetch (read-ahead, default) / archive-get = {med(ahead) / med(pgb_get):.2f}")
PY
