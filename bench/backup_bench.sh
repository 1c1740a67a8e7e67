#!/usr/bin/env bash
# walctl backup / restore vs pg_basebackup -Ft -z and pgBackRest backup / restore, on one
# pgbench cluster, one run each.  Not a test: run it by hand as root:
#   bash bench/backup_bench.sh            (BENCH_SCALE=100 by default; BENCH_KEEP=1 keeps files)
# Same compression (lz4) and process count for walctl and pgBackRest (1, then 2); walctl also
# with lz4 + AES-256-GCM.  Prints wall time, peak RSS (GNU time %M), stored size and ratios;
# walctl's peak RSS is also measured on a 10x smaller database to show it does not grow.
# Then BENCH_CHANGE_PERCENT (default 5) % of pgbench_accounts is updated: an incr on each side
# (stored size and time), a restore of it, and a delta restore of a copy of the changed data
# directory back to the first full (time and bytes written) against a full restore.
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

bench_backup_cluster

pgbr_setup "$data" "$port" start-fast=y archive-check=n repo1-retention-full=10
pgbr=("${PGBR[@]}")
as_pg "${pgbr[@]}" stanza-create >/dev/null

# GNU time needs a program, not the as_pg shell function.
as_postgres=()
if ws_is_root; then as_postgres=(runuser -u postgres --); fi
results=()
# measure NAME CMD...: runs CMD under GNU time, records "NAME seconds peak_kib written_kib"
# (written: GNU time's %O, file system output in 512-byte units, i.e. the bytes the process
# dirtied, counted when written to the page cache).
measure() {
  local name=$1 out
  shift
  sync
  out=$WS_TMP/time.$name
  /usr/bin/time -f '%e %M %O' -o "$out" "$@" >"$WS_TMP/out.$name" 2>&1 ||
    { cat "$WS_TMP/out.$name" >&2; ws_die "$name failed"; }
  local secs kib blocks
  read -r secs kib blocks <"$out"
  results+=("$name $secs $kib $((blocks / 2))")
  ws_log "$name: $secs s, peak $kib KiB, wrote $((blocks / 2)) KiB"
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
measure walctl_backup_p2_aes "${wsctl[@]}" --key-file "$WS_TMP/key" backup -d "$conninfo" --label p2aes --compression lz4 --jobs 2 -q
ws_pg_dir "$WS_TMP/restores"
# The repository now holds plaintext and encrypted backups, as during a switch to encryption
# (allow_plaintext_objects, docs/configuration.md).
measure walctl_restore_aes env WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 "${wsctl[@]}" --key-file "$WS_TMP/key" restore p2aes "$WS_TMP/restores/walctl-aes" --no-progress -q
# One repository's backups share one key: the encrypted one leaves so that the key-less
# commands below (the incr looks at every backup's record) can read the repository.
rm -rf "$WS_TMP/restores/walctl-aes" "$WS_TMP"/wsrepo/*/backup/p2aes
measure walctl_backup_p2 "${wsctl[@]}" backup -d "$conninfo" --label p2 --compression lz4 --jobs 2 -q
measure pgbackrest_backup_p2 "${as_postgres[@]}" "${pgbr[@]}" --type=full --process-max=2 backup
ws_pg_dir "$WS_TMP/pgbb"
measure pg_basebackup_tar_gzip "${as_postgres[@]}" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres \
  -D "$WS_TMP/pgbb/out" -Ft -z -X none -c fast --no-sync

# Incremental: update a contiguous BENCH_CHANGE_PERCENT (default 5) % of pgbench_accounts'
# rows (HOT updates where the page has room, so about that share of its pages changes, plus
# the pages the new row versions go to), then an incr on each side: walctl's refers to p2
# (the newest backup, same settings), pgBackRest's to its newest full.
change=${BENCH_CHANGE_PERCENT:-5}
changed_rows=$((scale * 100000 * change / 100))
ws_log "updating rows 1..$changed_rows of pgbench_accounts ($change %)"
pg_psql "$port" "update pgbench_accounts set abalance = abalance + 1 where aid <= $changed_rows" >/dev/null
pg_psql "$port" "checkpoint" >/dev/null
measure walctl_incr "${wsctl[@]}" backup -d "$conninfo" --label incr --type incr --compression lz4 --jobs 2 -q
measure pgbackrest_incr "${as_postgres[@]}" "${pgbr[@]}" --type=incr --process-max=2 backup
pg_stop "$data"
pgbr_labels=$(as_pg "${pgbr[@]}" info --output=json |
  python3 -c 'import json,sys; print(" ".join(b["label"] for b in json.load(sys.stdin)[0]["backup"]))')
read -r pgbr_full1 _ pgbr_incr <<<"$pgbr_labels"

measure walctl_restore "${wsctl[@]}" restore p1 "$WS_TMP/restores/walctl" --no-progress -q
as_pg mkdir -m 0700 "$WS_TMP/restores/pgbr"
measure pgbackrest_restore_p1 "${as_postgres[@]}" "${pgbr[@]}" --process-max=1 --pg1-path="$WS_TMP/restores/pgbr" \
  --set="$pgbr_full1" restore
rm -rf "$WS_TMP/restores/walctl" "$WS_TMP/restores/pgbr"
measure walctl_restore_incr "${wsctl[@]}" restore incr "$WS_TMP/restores/walctl-incr" --no-progress -q
as_pg mkdir -m 0700 "$WS_TMP/restores/pgbr-incr"
measure pgbackrest_restore_incr "${as_postgres[@]}" "${pgbr[@]}" --process-max=1 --pg1-path="$WS_TMP/restores/pgbr-incr" \
  --set="$pgbr_incr" restore
rm -rf "$WS_TMP/restores/walctl-incr" "$WS_TMP/restores/pgbr-incr"

# Delta restore: the stopped cluster (now $change % changed since the first full backups) is
# copied twice, as a failed primary would be, and each tool brings its copy back to its first
# full backup in place.
ws_log "copying the data directory for the delta restores"
cp -a "$data" "$WS_TMP/restores/delta-walctl"
cp -a "$data" "$WS_TMP/restores/delta-pgbr"
sync
measure walctl_restore_delta "${wsctl[@]}" restore --delta p1 "$WS_TMP/restores/delta-walctl" --no-progress -q
measure pgbackrest_restore_delta "${as_postgres[@]}" "${pgbr[@]}" --process-max=1 --delta \
  --pg1-path="$WS_TMP/restores/delta-pgbr" --set="$pgbr_full1" restore
as_pg mkdir -m 0700 "$WS_TMP/restores/pgbb"
measure pg_basebackup_untar "${as_postgres[@]}" tar -xzf "$WS_TMP/pgbb/out/base.tar.gz" -C "$WS_TMP/restores/pgbb"

stored_walctl=$(du -sbc "$WS_TMP"/wsrepo/*/backup/p1 | tail -1 | cut -f1)
stored_pgbr=$(du -sbc "$WS_TMP"/pgbr-repo/backup/bench/*F | tail -1 | cut -f1)
stored_pgbr=$((stored_pgbr / 2))  # two full backups (process-max 1 and 2)
stored_pgbb=$(du -sbc "$WS_TMP/pgbb/out" | tail -1 | cut -f1)
stored_walctl_p2=$(du -sbc "$WS_TMP"/wsrepo/*/backup/p2 | tail -1 | cut -f1)
stored_walctl_incr=$(du -sbc "$WS_TMP"/wsrepo/*/backup/incr | tail -1 | cut -f1)
stored_pgbr_incr=$(du -sbc "$WS_TMP/pgbr-repo/backup/bench/$pgbr_incr" | tail -1 | cut -f1)

echo
echo "walctl backup benchmark: pgbench scale $scale, database $(numfmt --to=iec "$db_size"), $(nproc) cores"
printf '%-26s %10s %12s %12s\n' "run" "seconds" "peak RSS" "written"
for r in "${results[@]}"; do
  read -r name secs kib written <<<"$r"
  printf '%-26s %10s %8s MiB %8s MiB\n' "$name" "$secs" "$((kib / 1024))" "$((written / 1024))"
done
get() { for r in "${results[@]}"; do read -r n s k w <<<"$r"; [[ $n == "$1" ]] && echo "$s"; done; }
getmem() { for r in "${results[@]}"; do read -r n s k w <<<"$r"; [[ $n == "$1" ]] && echo "$k"; done; }
getwritten() { for r in "${results[@]}"; do read -r n s k w <<<"$r"; [[ $n == "$1" ]] && echo "$((w * 1024))"; done; }
ratio() { python3 -c "print(f'{float($1)/float($2):.2f}')"; }
echo
echo "ratio walctl/pgbackrest backup, 1 process:  $(ratio "$(get walctl_backup_p1)" "$(get pgbackrest_backup_p1)")"
echo "ratio walctl/pgbackrest backup, 2 processes: $(ratio "$(get walctl_backup_p2)" "$(get pgbackrest_backup_p2)")"
echo "ratio walctl/pg_basebackup -Ft -z backup:    $(ratio "$(get walctl_backup_p1)" "$(get pg_basebackup_tar_gzip)")"
echo "ratio walctl/pgbackrest restore, 1 process:  $(ratio "$(get walctl_restore)" "$(get pgbackrest_restore_p1)")"
echo "walctl peak RSS: $(( $(getmem walctl_small_p1) / 1024 )) MiB on $(numfmt --to=iec "$small_size"), $(( $(getmem walctl_backup_p1) / 1024 )) MiB on $(numfmt --to=iec "$db_size")"
echo "stored: walctl lz4 $(numfmt --to=iec "$stored_walctl"), pgbackrest lz4 $(numfmt --to=iec "$stored_pgbr"), pg_basebackup gzip $(numfmt --to=iec "$stored_pgbb")"
echo "incr after updating $change % of pgbench_accounts: walctl $(numfmt --to=iec "$stored_walctl_incr") stored" \
  "($(ratio "$stored_walctl_incr" "$stored_walctl_p2") of its full) in $(get walctl_incr) s;" \
  "pgbackrest $(numfmt --to=iec "$stored_pgbr_incr") ($(ratio "$stored_pgbr_incr" "$stored_pgbr") of its full) in $(get pgbackrest_incr) s"
echo "ratio walctl/pgbackrest incr: time $(ratio "$(get walctl_incr)" "$(get pgbackrest_incr)"), stored $(ratio "$stored_walctl_incr" "$stored_pgbr_incr")"
echo "restore of the incr: walctl $(get walctl_restore_incr) s, pgbackrest $(get pgbackrest_restore_incr) s," \
  "ratio $(ratio "$(get walctl_restore_incr)" "$(get pgbackrest_restore_incr)")"
echo "delta restore: walctl $(get walctl_restore_delta) s, wrote $(numfmt --to=iec "$(getwritten walctl_restore_delta)");" \
  "pgbackrest --delta $(get pgbackrest_restore_delta) s, wrote $(numfmt --to=iec "$(getwritten pgbackrest_restore_delta)");" \
  "full restore walctl $(get walctl_restore) s, wrote $(numfmt --to=iec "$(getwritten walctl_restore)")"
echo "ratio walctl/pgbackrest delta restore: $(ratio "$(get walctl_restore_delta)" "$(get pgbackrest_restore_delta)");" \
  "walctl delta/full restore: $(ratio "$(get walctl_restore_delta)" "$(get walctl_restore)")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
