#!/usr/bin/env bash
# End-to-end point-in-time recovery with a real PostgreSQL 15:
#   archive_command = 'walpush %p', pgbench load, pg_basebackup (no WAL in it), a named
#   restore point taken next to checksums of two tables, more writes and a dropped table,
#   then recovery with restore_command = 'walfetch %f %p' to the restore point and an exact
#   comparison of the checksums.
# Env: PITR_REPO_KIND=file|s3 (s3 uses tests/lib/s3.sh: s3rver, or Ceph RGW with
#      WALSTORE_TEST_S3_SERVER=rgw), PITR_COMPRESSION (lz4, zstd:3, ...),
#      PITR_ENCRYPT=1|0, PITR_SCALE (pgbench scale, default 5).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"

kind=${PITR_REPO_KIND:-file}
compression=${PITR_COMPRESSION:-lz4}
encrypt=${PITR_ENCRYPT:-1}
scale=${PITR_SCALE:-5}
export WS_SCRIPT="pitr.sh[$kind,$compression,encrypt=$encrypt]"

ws_setup
ws_require_tool walpush walfetch

case $kind in
  file)
    repo_dir=$WS_TMP/repo
    ws_pg_dir "$repo_dir"
    repo_url=file://$repo_dir
    ;;
  s3)
    # shellcheck source=/dev/null
    . "$here/../../lib/s3.sh"
    s3_start
    ws_on_exit s3_stop
    repo_url=${S3_REPO_URL:-s3://$S3_BUCKET/pitr}
    ;;
  *) ws_die "PITR_REPO_KIND must be file or s3, not '$kind'" ;;
esac

opts=(--repo "$repo_url")
if [[ $encrypt == 1 ]]; then
  ws_make_key "$WS_TMP/key"
  opts+=(--key-file "$WS_TMP/key")
fi
push_cmd=$(ws_tool_cmd walpush "${opts[@]}" --compression "$compression" %p)
fetch_cmd=$(ws_tool_cmd walfetch "${opts[@]}" %f %p)
ws_log "repository $repo_url, compression $compression, encryption $encrypt"

# 1. Primary archiving with walpush, under a pgbench load.
primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pg_enable_archiving "$primary" "$push_cmd"
pg_start "$primary" "$port"
ws_log "pgbench -i -s $scale"
pg_pgbench "$port" -i -q -s "$scale" >/dev/null 2>&1
pg_pgbench "$port" -c 2 -t 500 -n >/dev/null 2>&1

# 2. Base backup while writes go on.
ws_log "base backup"
ws_bg pg_pgbench "$port" -c 2 -T 10 -n >"$WS_TMP/pgbench-bg.log" 2>&1
bench_pid=$!
ws_check "pg_basebackup -X none" pg_base_backup "$port" "$WS_TMP/backup"
wait "$bench_pid"

# 3. More writes, a table that will be dropped later, then the restore point next to checksums.
pg_pgbench "$port" -c 2 -t 500 -n >/dev/null 2>&1
pg_psql "$port" "create table keepme as select g as id, md5(g::text) as v from generate_series(1, 50000) g"
sum_accounts=$(pg_table_checksum "$port" pgbench_accounts)
sum_history=$(pg_table_checksum "$port" pgbench_history)
sum_keepme=$(pg_table_checksum "$port" keepme)
pg_psql "$port" "select pg_create_restore_point('before_drop')" >/dev/null
ws_log "restore point before_drop; pgbench_accounts $sum_accounts"

# 4. Writes after the restore point, and a dropped table.
pg_pgbench "$port" -c 2 -t 1000 -n >/dev/null 2>&1
pg_psql "$port" "update pgbench_accounts set abalance = abalance + 1 where aid % 7 = 0"
pg_psql "$port" "drop table keepme"
after_accounts=$(pg_table_checksum "$port" pgbench_accounts)
ws_check "archiver stored everything up to the last segment" pg_switch_and_wait_archived "$port"
failed=$(pg_psql "$port" "select failed_count from pg_stat_archiver")
if [[ $failed == 0 ]]; then ws_pass "no archive_command failure"; else ws_fail "archive_command failed $failed times"; fi
archived=$(pg_psql "$port" "select archived_count from pg_stat_archiver")
pg_stop "$primary"
# walpush pushes ahead when .ready segments pile up; whether they did depends on the load.
ws_log "push-ahead: $(tail -n 1 "$primary/pg_wal/.walstore-push/push.log" 2>/dev/null || echo "no worker ran")"
if [[ $sum_accounts != "$after_accounts" ]]; then
  ws_pass "writes after the restore point changed pgbench_accounts"
else
  ws_fail "writes after the restore point did not change pgbench_accounts"
fi
if [[ $kind == file ]]; then
  objects=$(find "$repo_dir" -type f ! -name '.*' | wc -l)
else
  objects=$(s3_object_count "")
fi
if ((objects >= archived)); then
  ws_pass "repository holds $objects objects for $archived archived files"
else
  ws_fail "repository holds $objects objects, expected at least $archived"
fi

# 5. Point-in-time recovery into a second data directory with walfetch.
restored=$WS_TMP/restored
port2=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$restored" "$fetch_cmd" \
  "recovery_target_name = 'before_drop'" "recovery_target_action = 'promote'"
if [[ -n $(find "$restored/pg_wal" -maxdepth 1 -type f) ]]; then
  ws_fail "restored pg_wal is not empty before recovery"
fi
ws_log "recovery to before_drop"
ws_check "restored server starts" pg_start "$restored" "$port2"
ws_check "recovery finishes" pg_wait_recovery_done "$port2"

log=$(cat "$(pg_log "$restored")")
restored_count=$(grep -c 'restored log file "[0-9A-F]\{24\}" from archive' <<<"$log" || true)
if ((restored_count >= 2)); then
  ws_pass "server restored $restored_count segments through walfetch"
else
  ws_fail "server restored $restored_count segments from the archive"
fi
ws_contains "recovery stopped at the restore point" "$log" 'recovery stopping at restore point "before_drop"'
ws_not_contains "no walfetch error during recovery" "$log" "walfetch: ERROR"
# walfetch prefetches by default: the recovery above read ahead through the spool.
ws_wait_workers
if [[ -f $restored/pg_wal/.walstore-prefetch/prefetch.log ]]; then
  ws_contains "recovery read ahead (prefetch worker ran)" \
    "$(cat "$restored/pg_wal/.walstore-prefetch/prefetch.log")" "prefetched"
else
  ws_fail "no prefetch spool in the restored pg_wal"
fi

ws_same "pgbench_accounts identical at the restore point" "$sum_accounts" \
  "$(pg_table_checksum "$port2" pgbench_accounts)"
ws_same "pgbench_history identical at the restore point" "$sum_history" \
  "$(pg_table_checksum "$port2" pgbench_history)"
ws_same "dropped table keepme is back, identical" "$sum_keepme" \
  "$(pg_table_checksum "$port2" keepme 2>&1 || true)"
tli=$(pg_psql "$port2" "select timeline_id from pg_control_checkpoint()")
ws_check "restored cluster accepts writes" pg_psql "$port2" "insert into keepme values (0, 'new')"
ws_log "restored cluster is on timeline $tli"
ws_done
