#!/usr/bin/env bash
# walctl backup under a pgbench load (with a tablespace), then walctl restore to a named
# restore point and to a time, each compared exactly with checksums taken on the primary;
# list/show JSON; refusal of a non-empty directory; restore that catches a damaged backup;
# pg_verifybackup on a restored directory.  WC_REPO_KIND=s3 runs it all against S3
# (s3rver, or Ceph RGW with WALSTORE_TEST_S3_SERVER=rgw).
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
ws_pg_dir "$WS_TMP/tblspc"
pg_psql "$port" "create tablespace ts1 location '$WS_TMP/tblspc'"
pg_psql "$port" "create table ts_table tablespace ts1 as select g as id, md5(g::text) as v from generate_series(1, 20000) g"
pg_pgbench "$port" -i -q -s 5 >/dev/null 2>&1

# 1. Backup while pgbench writes.
pg_pgbench "$port" -c 2 -T 8 -n >"$WS_TMP/pgbench-bg.log" 2>&1 &
bg=$!
ws_expect_exit 0 "walctl backup under load" "${walctl[@]}" backup -d "$conninfo" --label first --json \
  --progress
wait "$bg"
ws_same "backup progress into a log has no carriage return" no "$([[ $WS_ERR == *$'\r'* ]] && echo yes || echo no)"
ws_contains "backup progress into a log ends with a line at 100 %" "$WS_ERR" "walctl: NOTICE:  backup: done, "
ws_same "backup record says complete" complete "$(wc_json 'j["status"]')"
ws_same "backup has the base and the tablespace archive" 2 "$(wc_json 'len(j["archives"])')"
ws_same "tablespace path recorded" "$WS_TMP/tblspc" "$(wc_json '[a for a in j["archives"] if a.get("tablespace_oid")][0]["tablespace_path"]')"
ws_same "WAL range starts on timeline 1" 00000001 "$(wc_json 'j["wal_start"][:8]')"

# 2. Restore point A, more writes, time B, more writes and damage.
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
pg_psql "$port" "update ts_table set v = 'A' where id <= 10"
sum_a=$(pg_table_checksum "$port" pgbench_accounts)
ts_a=$(pg_table_checksum "$port" ts_table)
pg_psql "$port" "select pg_create_restore_point('point_a')" >/dev/null
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
sum_b=$(pg_table_checksum "$port" pgbench_accounts)
sleep 1.2
time_b=$(pg_psql "$port" "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.2
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
pg_psql "$port" "drop table pgbench_history; delete from ts_table"
pg_switch_and_wait_archived "$port"

# 3. list / show.
ws_expect_exit 0 "walctl list --json" "${walctl[@]}" list --json
ws_same "list shows one backup" 1 "$(wc_json 'len(j["backups"])')"
ws_same "list has a PITR window" True "$(wc_json 'j["pitr_earliest"] is not None and j["pitr_latest"] is not None')"
ws_expect_exit 0 "walctl show latest --json" "${walctl[@]}" show latest --json
ws_same "show: label" first "$(wc_json 'j["label"]')"
ws_same "show: stop LSN after start LSN" True \
  "$(wc_json 'int(j["stop_lsn"].split("/")[0],16)<<32|int(j["stop_lsn"].split("/")[1],16) > (int(j["start_lsn"].split("/")[0],16)<<32|int(j["start_lsn"].split("/")[1],16))')"
ws_expect_exit 0 "walctl show (text)" "${walctl[@]}" show first
ws_contains "show text names the WAL range" "$WS_OUT" "WAL needed:"
ws_expect_exit 2..125 "show of an unknown label fails" "${walctl[@]}" show nosuch
ws_expect_exit 0 "walctl backup --help" "$WS_BIN/walctl" backup --help
ws_contains "backup --help lists --dbname" "$WS_OUT" "--dbname"

# 4. Restore to the named point, tablespace moved elsewhere.
ws_pg_dir "$WS_TMP/tblspc-a"
if wc_restore_and_start "$WS_TMP/restore-a" first --target-name point_a --archive-mode off \
  --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-a"; then
  ws_pass "restore to point_a recovered"
  ws_same "pgbench_accounts at point_a" "$sum_a" "$(pg_table_checksum "$rport" pgbench_accounts)"
  ws_same "tablespace table at point_a" "$ts_a" "$(pg_table_checksum "$rport" ts_table)"
  ws_same "tablespace link points to the mapped dir" "$WS_TMP/tblspc-a" \
    "$(readlink "$WS_TMP/restore-a/pg_tblspc/$(pg_psql "$rport" "select oid from pg_tablespace where spcname='ts1'")")"
  ws_same "data dir mode 0700" 700 "$(stat -c %a "$WS_TMP/restore-a")"
  ws_same "owned by postgres" postgres "$(stat -c %U "$WS_TMP/restore-a/PG_VERSION")"
  pg_stop "$WS_TMP/restore-a"
else
  ws_fail "restore to point_a recovered"
fi

# 5. Restore 'latest' to a time; the tablespace must go back to its original path, which
#    is not empty: refused.  Then restore with a map.
ws_pg_dir "$WS_TMP/not-empty"
touch "$WS_TMP/not-empty/x"
ws_expect_exit 2..125 "restore into a non-empty directory is refused" "${walctl[@]}" restore latest "$WS_TMP/not-empty"
ws_contains "refusal says why" "$WS_ERR" "not empty"
ws_expect_exit 2..125 "restore onto a non-empty tablespace directory is refused" \
  "${walctl[@]}" restore latest "$WS_TMP/restore-x"
ws_same "refused restore left nothing behind" no "$([[ -e $WS_TMP/restore-x ]] && echo yes || echo no)"
ws_pg_dir "$WS_TMP/tblspc-b"
if wc_restore_and_start "$WS_TMP/restore-b" latest --target-time "$time_b" --archive-mode off \
  --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-b"; then
  ws_pass "restore to a time recovered"
  ws_same "pgbench_accounts at time B" "$sum_b" "$(pg_table_checksum "$rport" pgbench_accounts)"
  ws_same "history table still there at time B" 1 "$(pg_psql "$rport" "select count(*) from pg_class where relname = 'pgbench_history'")"
  pg_stop "$WS_TMP/restore-b"
else
  ws_fail "restore to a time recovered"
fi
ws_expect_exit 2..125 "a target time before every backup is refused" \
  "${walctl[@]}" restore latest "$WS_TMP/restore-c" --target-time "2000-01-01 00:00:00+00"

# 6. A damaged backup object: restore fails and cleans up.
ws_expect_exit 0 "show first" "${walctl[@]}" show first --json
base_obj=$(wc_json 'j["system_id"]')/backup/first/base.tar
wc_object_damage "$base_obj" 4000
ws_pg_dir "$WS_TMP/tblspc-d"
ws_expect_exit 2..125 "restore of a damaged backup fails" "${walctl[@]}" restore first "$WS_TMP/restore-d" \
  --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-d"
ws_same "failed restore removed what it wrote" yes "$(test -z "$(ls -A "$WS_TMP/restore-d" 2>/dev/null)" && echo yes)"
wc_object_repair "$base_obj"

# 7. PostgreSQL's own pg_verifybackup agrees with the restored files (checked before start).
ws_pg_dir "$WS_TMP/tblspc-v"
#    With --progress and stderr not a terminal: log lines only, never a carriage return.
ws_expect_exit 0 "restore for pg_verifybackup" "${walctl[@]}" restore first "$WS_TMP/restore-v" \
  --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-v" --progress
ws_same "progress into a log has no carriage return" no "$([[ $WS_ERR == *$'\r'* ]] && echo yes || echo no)"
ws_contains "progress into a log ends with a line at 100 %" "$WS_ERR" "walctl: NOTICE:  restore: done, "
ws_contains "the last progress line says 100 %" "$(grep 'restore: done' <<<"$WS_ERR")" "(100%)"
ws_check "pg_verifybackup accepts the restored directory" as_pg "$PG_BIN/pg_verifybackup" -n "$WS_TMP/restore-v"

ws_done
