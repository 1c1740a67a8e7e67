#!/usr/bin/env bash
# walpush / walfetch against pgbackrest archive-push / archive-get, to the same
# local S3 server (s3rver over HTTPS: pgbackrest only speaks TLS to S3), on the
# same real WAL segments, in one run.  Both use lz4, no encryption.
#
# Two scenarios:
# - one shot: one process per loose segment file, each timed alone (pgbackrest with
#   archive-async=n); walfetch both one shot (--prefetch 0) and as configured by
#   default (read-ahead, its worker quiesced outside the timed region).
# - backlog: PostgreSQL's archiver working off a backlog.  Per tool, a fresh fake data
#   directory (global/pg_control of the WAL's cluster, pg_wal/<segment> copies and
#   pg_wal/archive_status/<segment>.ready); in the data directory, for each segment in
#   name order, the tool runs on pg_wal/<segment> and, only if it exits 0, .ready is
#   renamed to .done.  What counts is the time to drain the backlog (first call start
#   to last call end), so background push-ahead (pgbackrest archive-async=y, walpush's
#   push-ahead) is measured honestly.  Tools: walpush as configured by default, walpush
#   --push-ahead 0 (only when walpush has that option), pgbackrest archive-push with
#   archive-async=n and with --archive-async; each with a repository prefix / stanza of
#   its own, the order of the tools reversed from one round to the next.  Background
#   work ends, and every segment is fetched back and compared, outside the timed region.
#
#   BENCH_SEGMENTS=16 bench/s3_bench.sh      (as root, after: meson setup build && ninja -C build)
# Env: BENCH_SEGMENTS (default 8), BENCH_BACKLOG_ROUNDS (default 2: every tool drains
# one backlog per round), WALSTORE_BUILD_DIR (default <source>/build).
# Prints per-tool medians (ms per segment) and walstore / pgbackrest ratios, then per
# tool the backlog drain time (mean over rounds), ms per segment and per-call figures.
set -euo pipefail
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../tests/lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../tests/lib/s3.sh"
command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (apt-get install pgbackrest)"
count=${BENCH_SEGMENTS:-8}
rounds=${BENCH_BACKLOG_ROUNDS:-2}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || ws_die "BENCH_BACKLOG_ROUNDS must be a positive integer"

ws_setup
ws_require_tool walpush walfetch
ws_log "making $count WAL segments"
WS_WAL_TPCB_SECONDS=${WS_WAL_TPCB_SECONDS:-2} ws_make_wal "$WS_TMP/wal" "$count"
mapfile -t segs < <(ws_segments "$WS_TMP/wal" | head -n "$count")
s3_start --tls
chmod 0644 "$S3_CA_BUNDLE"

s3_walstore_conf "$WS_TMP/walstore.toml" walstore
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
# Backlog scenario: a stanza per pgbackrest mode and round (so each meets an empty archive),
# whose pg1-path is that run's fake data directory (archive-push requires the working
# directory to be pg1-path for a relative %p, and checks the system id of pg1-path's
# global/pg_control, a copy of the WAL cluster's, against the stanza).  Physical path: pgbackrest
# compares it with getcwd().
backlog_root=$(cd "$WS_TMP" && pwd -P)/backlog
for ((r = 1; r <= rounds; r++)); do
  for mode in sync async; do
    printf '\n[backlog-%s-%d]\npg1-path=%s\npg1-socket-path=%s\n' "$mode" "$r" \
      "$backlog_root/pgbackrest-$mode-$r" "$WS_TMP/sock" >>"$WS_TMP/pgbackrest.conf"
  done
done
chown -R postgres: "$WS_TMP/pgbr" "$WS_TMP/pgbackrest.conf" 2>/dev/null || true
pgbr() { as_pg pgbackrest --config="$WS_TMP/pgbackrest.conf" --stanza=bench "$@"; }
pg_port=$(ws_free_port)
pg_start "$WS_WAL_DATADIR" "$pg_port"
pg_conf "$WS_WAL_DATADIR" "port = $pg_port"
pgbr --pg1-port="$pg_port" stanza-create >/dev/null
# The backlog stanzas are created against the running cluster (its pg1-path, given here, must be
# its data_directory); their own pg1-path, the fake data directories, only holds a copy of its
# pg_control.
for ((r = 1; r <= rounds; r++)); do
  for mode in sync async; do
    as_pg pgbackrest --config="$WS_TMP/pgbackrest.conf" --stanza="backlog-$mode-$r" \
      --pg1-path="$WS_WAL_DATADIR" --pg1-port="$pg_port" stanza-create >/dev/null
  done
done
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

# ---- backlog: PostgreSQL's archiver working off a backlog ----------------------------------------

# make_backlog_dir DIR: a fresh fake data directory with all the bench's segments waiting to be
# archived: DIR/pg_wal/SEGMENT (copies: a tool may look at inodes or mtimes) and an empty
# DIR/pg_wal/archive_status/SEGMENT.ready each, plus DIR/global/pg_control of the WAL's cluster
# (pgbackrest reads the system id there), all owned by postgres.  Its pages are written out before
# the timed region starts.
make_backlog_dir() {
  local dir=$1 seg
  mkdir -p "$dir/global" "$dir/pg_wal/archive_status"
  cp "$WS_WAL_DATADIR/global/pg_control" "$dir/global/pg_control"
  for seg in "${segs[@]}"; do
    cp "$WS_TMP/wal/$seg" "$dir/pg_wal/$seg"
    : >"$dir/pg_wal/archive_status/$seg.ready"
  done
  chmod 0700 "$dir"
  if ws_is_root; then chown -R postgres: "$dir"; fi
  sync
}

# drain_backlog KEY ROUND DIR CMD...: PostgreSQL's archiver on DIR's backlog: in DIR (PostgreSQL
# runs archive_command in the data directory, %p relative to it), for each segment in name order,
# runs CMD pg_wal/SEGMENT, times it and, only if it exited 0, renames archive_status/SEGMENT.ready
# to .done (any failure fails the bench).  Appends "KEY ROUND TOTAL_US CALL_US..." to
# $WS_TMP/backlog.times, TOTAL_US from the first call's start to the last call's end.
drain_backlog() {
  local key=$1 round=$2 dir=$3 seg t0 t1 first='' calls=()
  shift 3
  cd "$dir" || ws_die "cannot enter $dir"
  for seg in "${segs[@]}"; do
    t0=${EPOCHREALTIME/[.,]/}
    if ! "$@" "pg_wal/$seg" >"$WS_TMP/last.out" 2>"$WS_TMP/last.err"; then
      cat "$WS_TMP/last.out" "$WS_TMP/last.err" >&2
      ws_die "backlog $key, round $round: failed in $dir: $* pg_wal/$seg"
    fi
    t1=${EPOCHREALTIME/[.,]/}
    mv "pg_wal/archive_status/$seg.ready" "pg_wal/archive_status/$seg.done"
    first=${first:-$t0}
    calls+=("$((t1 - t0))")
  done
  cd "$WS_TMP" || ws_die "cannot enter $WS_TMP"
  echo "$key $round $((t1 - first)) ${calls[*]}" >>"$WS_TMP/backlog.times"
}


# verify_backlog KEY ROUND: fetches every segment back from KEY's repository of that round and
# compares it with the original.
verify_backlog() {
  local key=$1 round=$2 seg out=$WS_TMP/backlog-out/$1-$2
  ws_pg_dir "$out"
  for seg in "${segs[@]}"; do
    case $key in
      walpush*)
        as_pg walfetch -c "$WS_TMP/$key-$round.toml" --system-id "$WS_WAL_SYSID" --prefetch 0 \
          "$seg" "$out/$seg" >/dev/null 2>"$WS_TMP/last.err" ;;
      pgbackrest-*)
        as_pg pgbackrest --config="$WS_TMP/pgbackrest.conf" --stanza="backlog-${key#pgbackrest-}-$round" \
          archive-get "$seg" "$out/$seg" >/dev/null 2>"$WS_TMP/last.err" ;;
    esac || { cat "$WS_TMP/last.err" >&2; ws_die "backlog $key, round $round: $seg not restored"; }
    cmp "$WS_TMP/wal/$seg" "$out/$seg" || ws_die "backlog $key, round $round: restored $seg differs"
  done
  rm -rf "$out"
}

# walpush --push-ahead 0 only when this walpush has that option.
tools=(walpush pgbackrest-sync walpush-pa0 pgbackrest-async)
backlog_note=""
if ! "$WS_BIN/walpush" --help 2>&1 | grep -qE -- '--push-ahead([^-]|$)'; then
  tools=(walpush pgbackrest-sync pgbackrest-async)
  backlog_note="walpush --push-ahead 0: skipped, this walpush has no --push-ahead option"
fi
: >"$WS_TMP/backlog.times"
for ((r = 1; r <= rounds; r++)); do
  # Odd rounds in one order, even rounds in the reverse one.
  order=("${tools[@]}")
  if ((r % 2 == 0)); then
    order=()
    for ((i = ${#tools[@]} - 1; i >= 0; i--)); do order+=("${tools[i]}"); done
  fi
  for tool in "${order[@]}"; do
    ws_quiesce
    dir=$backlog_root/$tool-$r
    ws_log "backlog round $r: $tool"
    make_backlog_dir "$dir"
    case $tool in
      walpush)
        s3_walstore_conf "$WS_TMP/$tool-$r.toml" "walstore-backlog-$r"
        drain_backlog "$tool" "$r" "$dir" as_pg walpush -c "$WS_TMP/$tool-$r.toml" ;;
      walpush-pa0)
        s3_walstore_conf "$WS_TMP/$tool-$r.toml" "walstore-backlog-pa0-$r"
        drain_backlog "$tool" "$r" "$dir" as_pg walpush -c "$WS_TMP/$tool-$r.toml" --push-ahead 0 ;;
      pgbackrest-sync)
        drain_backlog "$tool" "$r" "$dir" as_pg pgbackrest --config="$WS_TMP/pgbackrest.conf" \
          --stanza="backlog-sync-$r" archive-push ;;
      pgbackrest-async)
        drain_backlog "$tool" "$r" "$dir" as_pg pgbackrest --config="$WS_TMP/pgbackrest.conf" \
          --stanza="backlog-async-$r" --archive-async archive-push ;;
    esac
    ws_quiesce
    verify_backlog "$tool" "$r"
  done
done

python3 - "${#segs[@]}" "${times[walpush]}" "${times[pgbackrest-push]}" "${times[walfetch]}" \
  "${times[pgbackrest-get]}" "${times[walfetch-ahead]}" "$WS_TMP/backlog.times" "$rounds" \
  "$backlog_note" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
n = sys.argv[1]
push, pgb_push, fetch, pgb_get, ahead = ([int(x) for x in a.split()] for a in sys.argv[2:7])
times_file, rounds, note, load_start, load_end = sys.argv[7:12]
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

# Backlog: per tool, drain times (first call start to last call end) per round and every call's time.
rows = {}
with open(times_file) as f:
    for line in f:
        key, _, total, *calls = line.split()
        row = rows.setdefault(key, {"totals": [], "calls": []})
        row["totals"].append(int(total) / 1000)
        row["calls"] += [int(c) / 1000 for c in calls]
drain = {key: statistics.mean(row["totals"]) for key, row in rows.items()}
labels = {"walpush": "walpush (default)", "walpush-pa0": "walpush --push-ahead 0",
          "pgbackrest-sync": "archive-push", "pgbackrest-async": "archive-push --archive-async"}
print()
print(f"backlog: {n} segments .ready at once, drained by an archiver loop like PostgreSQL's, "
      f"{rounds} round(s), tool order reversed every round")
print(f"{'tool':<30}{'drain ms':>9}{'ms/seg':>8}{'call median':>12}{'call max':>9}  drain ms per round")
for key, label in labels.items():
    if key in rows:
        calls = rows[key]["calls"]
        per_round = " ".join(f"{t:.0f}" for t in rows[key]["totals"])
        print(f"{label:<30}{drain[key]:>9.0f}{drain[key] / int(n):>8.1f}{med(calls):>12.1f}"
              f"{max(calls):>9.1f}  {per_round}")
if note:
    print(note)
for a, b in [("walpush", "pgbackrest-sync"), ("walpush-pa0", "pgbackrest-sync"),
             ("walpush", "pgbackrest-async")]:
    ratio = f"{drain[a] / drain[b]:.2f}" if a in drain and b in drain else "n/a"
    print(f"{labels[a]} backlog / {labels[b]} backlog = {ratio}")
print(f"load average at the start: {load_start}, at the end: {load_end}")
PY
