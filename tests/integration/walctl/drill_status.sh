#!/usr/bin/env bash
# walctl drill (one that passes, one whose SQL fails, one over its RPO limit) and
# walctl status (JSON, Prometheus, thresholds, pg_stat_archiver failures), and a backup
# that is not complete because its WAL never reaches the archive.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
pg_pgbench "$port" -i -q -s 2 >/dev/null 2>&1
ws_expect_exit 0 "backup" "${walctl[@]}" backup -d "$conninfo" --label d1 -q
pg_psql "$port" "create table marker as select 42 as answer"
pg_switch_and_wait_archived "$port"

# Drill that passes, with the user's SQL.
work=$WS_TMP/drills
mkdir -p "$work"
echo "select answer from marker; select count(*) from pgbench_accounts" >"$WS_TMP/check.sql"
ws_expect_exit 0 "drill passes" "${walctl[@]}" drill latest --sql "$WS_TMP/check.sql" --work-dir "$work" --json
ws_same "drill ok" True "$(wc_json 'j["ok"]')"
ws_same "drill ran the SQL on recovered data" 200000 "$(wc_json 'j["sql_output"]')"
ws_same "drill measured RTO" True "$(wc_json 'j["rto_seconds"] > 0 and j["rto_seconds"] >= j["restore_seconds"]')"
ws_same "drill measured RPO" True "$(wc_json 'j["rpo_seconds"] is not None and 0 <= j["rpo_seconds"] < 600')"
ws_same "drill saw the databases" True "$(wc_json '"postgres" in j["databases"]')"
ws_same "drill cleaned up" "" "$(ls -A "$work")"
ws_expect_exit 0 "drill (text)" "${walctl[@]}" drill --work-dir "$work"
ws_contains "text report" "$WS_OUT" "PASSED"

# Drills that fail.
echo "select * from no_such_table" >"$WS_TMP/bad.sql"
ws_expect_exit 1..125 "drill with failing SQL fails" "${walctl[@]}" drill latest --sql "$WS_TMP/bad.sql" --work-dir "$work" --json
ws_same "drill reports not ok" False "$(wc_json 'j["ok"]')"
ws_contains "failure names the error" "$(wc_json 'j["failure"]')" "no_such_table"
ws_same "failed drill cleaned up" "" "$(ls -A "$work")"
sleep 2
ws_expect_exit 1..125 "drill over its RPO limit fails" "${walctl[@]}" drill --max-rpo 1 --work-dir "$work"
ws_contains "RPO failure explained" "$WS_OUT" "RPO"
# Only this test's drills: tests of other runs may drill at the same time.
ws_same "no server left running" "" "$(pgrep -f "$work/walctl-drill" || true)"

# status.
ws_expect_exit 0 "status --json" "${walctl[@]}" status --json
ws_same "status: one complete backup" 1 "$(wc_json 'j["complete_backups"]')"
ws_same "status: newest segment named" True "$(wc_json 'len(j["newest_segment"]) == 24')"
ws_same "status: PITR window" True "$(wc_json 'j["pitr_earliest"] <= j["pitr_latest"]')"
ws_expect_exit 0 "status within thresholds" "${walctl[@]}" status --max-archive-age 3600 --max-backup-age 3600
ws_expect_exit 1..125 "status over --max-backup-age fails" "${walctl[@]}" status --max-backup-age 1
ws_contains "threshold problem explained" "$WS_OUT" "newest backup d1"
ws_expect_exit 0 "status --prometheus" "${walctl[@]}" status --prometheus
ws_contains "prometheus backups metric" "$WS_OUT" "walstore_backups{system_id="
ws_expect_exit 0 "status with a connection" "${walctl[@]}" status -d "$conninfo" --json
ws_same "pg_stat_archiver read" True "$(wc_json 'j["archiver"]["archived_count"] > 0')"

# Archiving breaks: the next backup is not complete, and status -d says why.
pg_psql "$port" "alter system set archive_command = 'false'"
pg_psql "$port" "select pg_reload_conf()" >/dev/null
ws_expect_exit 1..125 "backup without its WAL in the archive is not complete" \
  "${walctl[@]}" backup -d "$conninfo" --label d2 --wal-timeout 3
ws_contains "incomplete backup explained" "$WS_ERR" "incomplete"
# The waiting backup reads pg_stat_archiver: PostgreSQL's failing archiver is named, as a
# WARNING while it waits and in the hint of the final error, not left to the operator to find.
ws_contains "archiver failure named while waiting" "$WS_ERR" \
  "WARNING:  PostgreSQL archiving is failing: last failure 0000"
ws_contains "archiver failure named in the error's hint" "$WS_ERR" \
  "HINT:  PostgreSQL archiving is failing: last failure"
ws_expect_exit 0 "list" "${walctl[@]}" list --json
ws_same "d2 listed as incomplete" incomplete "$(wc_json '[b["status"] for b in j["backups"] if b["label"] == "d2"][0]')"
ws_expect_exit 1..125 "verify flags d2's missing WAL" "${walctl[@]}" verify
ws_expect_exit 1..125 "status -d reports archiver failures" "${walctl[@]}" status -d "$conninfo"
ws_contains "archiver failure explained" "$WS_OUT" "archiving is failing"

ws_done
