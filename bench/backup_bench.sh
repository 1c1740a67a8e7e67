#!/usr/bin/env bash
# walctl backup / restore vs pg_basebackup -Ft -z and pgBackRest backup / restore, on one
# pgbench cluster, one run each.  Not a test: run it by hand as root:
#   bash bench/backup_bench.sh            (BENCH_SCALE=100 by default; BENCH_KEEP=1 keeps files)
# Same compression (lz4) and process count for walctl and pgBackRest (1, then 2); walctl also
# with lz4 + AES-256-GCM.  Prints wall time, peak RSS (GNU time %M), stored size and ratios;
# walctl's peak RSS is also measured on a 10x smaller database to show it does not grow.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
WS_SCRIPT=backup_bench
WS_KEEP=${BENCH_KEEP:-0}
scale=${BENCH_SCALE:-100}

command -v pgbackrest >/dev/null || ws_die "pgbackrest not installed (scripts/install-deps)"
[[ -x /usr/bin/time ]] || ws_die "GNU time not installed (apt-get install time)"
ws_setup
ws_require_tool walpush walfetch walctl

ws_make_key "$WS_TMP/key"
ws_pg_dir "$WS_TMP/wsrepo"
repo="file://$WS_TMP/wsrepo"
data=$WS_TMP/data
port=$(ws_free_port)
pg_init "$data"
pg_enable_archiving "$data" "$(ws_tool_cmd walpush --repo "$repo" --compression lz4 %p)"
pg_conf "$data" "max_wal_size = 4GB" "checkpoint_timeout = 30min"
pg_start "$data" "$port"
conninfo="host=127.0.0.1 port=$port user=postgres"

for d in pgbr-repo pgbr-log pgbr-lock pgbr-spool; do ws_pg_dir "$WS_TMP/$d"; done
pgbr_conf=$WS_TMP/pgbackrest.conf
cat >"$pgbr_conf" <<CONF
[global]
repo1-path=$WS_TMP/pgbr-repo
log-path=$WS_TMP/pgbr-log
lock-path=$WS_TMP/pgbr-lock
spool-path=$WS_TMP/pgbr-spool
log-level-console=warn
log-level-file=off
compress-type=lz4
start-fast=y
archive-check=n
repo1-retention-full=10

[bench]
pg1-path=$data
pg1-port=$port
pg1-socket-path=$WS_TMP/sock
pg1-user=postgres
CONF
chmod 0644 "$pgbr_conf"
pgbr=(pgbackrest "--config=$pgbr_conf" --stanza=bench)
as_pg "${pgbr[@]}" stanza-create >/dev/null

# GNU time needs a program, not the as_pg shell function.
as_postgres=()
if ws_is_root; then as_postgres=(runuser -u postgres --); fi
results=()
# measure NAME CMD...: runs CMD under GNU time, records "NAME seconds peak_kib".
measure() {
  local name=$1 out
  shift
  sync
  out=$WS_TMP/time.$name
  /usr/bin/time -f '%e %M' -o "$out" "$@" >"$WS_TMP/out.$name" 2>&1 ||
    { cat "$WS_TMP/out.$name" >&2; ws_die "$name failed"; }
  results+=("$name $(cat "$out")")
  ws_log "$name: $(cat "$out") (seconds, peak KiB)"
}
wsctl=("$WS_BIN/walctl" --repo "$repo")

small=$((scale / 10 > 0 ? scale / 10 : 1))
ws_log "pgbench -i -s $small (small database for the memory comparison)"
pg_pgbench "$port" -i -q -s "$small" >/dev/null 2>&1
measure walctl_small_p1 "${wsctl[@]}" backup -d "$conninfo" --label small --compression lz4 --jobs 1 -q
small_size=$(pg_psql "$port" "select pg_database_size('postgres')")

ws_log "pgbench -i -s $scale"
pg_pgbench "$port" -i -q -s "$scale" >/dev/null 2>&1
pg_psql "$port" "checkpoint"
db_size=$(pg_psql "$port" "select pg_database_size('postgres')")
ws_log "database size $(numfmt --to=iec "$db_size")"

measure walctl_backup_p1 "${wsctl[@]}" backup -d "$conninfo" --label p1 --compression lz4 --jobs 1 -q
measure pgbackrest_backup_p1 "${as_postgres[@]}" "${pgbr[@]}" --type=full --process-max=1 backup
measure walctl_backup_p2 "${wsctl[@]}" backup -d "$conninfo" --label p2 --compression lz4 --jobs 2 -q
measure walctl_backup_p2_aes "${wsctl[@]}" --key-file "$WS_TMP/key" backup -d "$conninfo" --label p2aes --compression lz4 --jobs 2 -q
measure pgbackrest_backup_p2 "${as_postgres[@]}" "${pgbr[@]}" --type=full --process-max=2 backup
ws_pg_dir "$WS_TMP/pgbb"
measure pg_basebackup_tar_gzip "${as_postgres[@]}" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres \
  -D "$WS_TMP/pgbb/out" -Ft -z -X none -c fast --no-sync
pg_stop "$data"

ws_pg_dir "$WS_TMP/restores"
measure walctl_restore "${wsctl[@]}" restore p1 "$WS_TMP/restores/walctl" --no-progress -q
measure walctl_restore_aes "${wsctl[@]}" --key-file "$WS_TMP/key" restore p2aes "$WS_TMP/restores/walctl-aes" --no-progress -q
as_pg mkdir -m 0700 "$WS_TMP/restores/pgbr"
measure pgbackrest_restore_p1 "${as_postgres[@]}" "${pgbr[@]}" --process-max=1 --pg1-path="$WS_TMP/restores/pgbr" \
  --set="$(as_pg "${pgbr[@]}" info --output=json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][0]["label"])')" restore
as_pg mkdir -m 0700 "$WS_TMP/restores/pgbb"
measure pg_basebackup_untar "${as_postgres[@]}" tar -xzf "$WS_TMP/pgbb/out/base.tar.gz" -C "$WS_TMP/restores/pgbb"

stored_walctl=$(du -sbc "$WS_TMP"/wsrepo/*/backup/p1 | tail -1 | cut -f1)
stored_pgbr=$(du -sbc "$WS_TMP"/pgbr-repo/backup/bench/*F | tail -1 | cut -f1)
stored_pgbr=$((stored_pgbr / 2))  # two full backups (process-max 1 and 2)
stored_pgbb=$(du -sbc "$WS_TMP/pgbb/out" | tail -1 | cut -f1)

echo
echo "walctl backup benchmark: pgbench scale $scale, database $(numfmt --to=iec "$db_size"), $(nproc) cores"
printf '%-26s %10s %12s\n' "run" "seconds" "peak RSS"
for r in "${results[@]}"; do
  read -r name secs kib <<<"$r"
  printf '%-26s %10s %9s MiB\n' "$name" "$secs" "$((kib / 1024))"
done
get() { for r in "${results[@]}"; do read -r n s k <<<"$r"; [[ $n == "$1" ]] && echo "$s"; done; }
getmem() { for r in "${results[@]}"; do read -r n s k <<<"$r"; [[ $n == "$1" ]] && echo "$k"; done; }
ratio() { python3 -c "print(f'{float($1)/float($2):.2f}')"; }
echo
echo "ratio walctl/pgbackrest backup, 1 process:  $(ratio "$(get walctl_backup_p1)" "$(get pgbackrest_backup_p1)")"
echo "ratio walctl/pgbackrest backup, 2 processes: $(ratio "$(get walctl_backup_p2)" "$(get pgbackrest_backup_p2)")"
echo "ratio walctl/pg_basebackup -Ft -z backup:    $(ratio "$(get walctl_backup_p1)" "$(get pg_basebackup_tar_gzip)")"
echo "ratio walctl/pgbackrest restore, 1 process:  $(ratio "$(get walctl_restore)" "$(get pgbackrest_restore_p1)")"
echo "walctl peak RSS: $(( $(getmem walctl_small_p1) / 1024 )) MiB on $(numfmt --to=iec "$small_size"), $(( $(getmem walctl_backup_p1) / 1024 )) MiB on $(numfmt --to=iec "$db_size")"
echo "stored: walctl lz4 $(numfmt --to=iec "$stored_walctl"), pgbackrest lz4 $(numfmt --to=iec "$stored_pgbr"), pg_basebackup gzip $(numfmt --to=iec "$stored_pgbb")"
