#!/usr/bin/env bash
# walctl backup from a hot standby (a real primary + streaming standby, PostgreSQL 15).
# A standby does not archive and cannot switch WAL, so the segment holding the backup's end
# reaches the archive only when the primary finishes it:
# - with --primary, walctl switches the primary's WAL: the backup is complete at once, restores
#   to the standby's state at the backup, and verify is clean;
# - --primary naming the standby itself (in recovery) or another cluster is refused (exit 2);
# - without --primary walctl says why it waits (NOTICE) and completes once the primary switches;
# - the WAL range is still checked in the archive: without the switch it is incomplete.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
pg_pgbench "$port" -i -q -s 2 >/dev/null 2>&1
standby=$WS_TMP/standby
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$standby" -R -X stream \
  -c fast >"$WS_TMP/pg_basebackup.standby.log" 2>&1 ||
  { cat "$WS_TMP/pg_basebackup.standby.log" >&2; ws_die "standby base backup failed"; }
sport=$(ws_free_port)
pg_start "$standby" "$sport" || ws_die "standby did not start"
ws_same "the standby is in recovery" t "$(pg_psql "$sport" 'select pg_is_in_recovery()')"
sconninfo="host=127.0.0.1 port=$sport user=postgres"

# standby_caught_up: the standby has replayed everything the primary wrote so far.
standby_caught_up() {
  local target i
  target=$(pg_psql "$port" "select pg_current_wal_lsn()")
  for ((i = 0; i < 120; i++)); do
    [[ $(pg_psql "$sport" "select pg_last_wal_replay_lsn() >= '$target'::pg_lsn") == t ]] && return 0
    sleep 0.5
  done
  return 1
}

# Load on the primary, then the standby's state is what the backup must hold.
pg_pgbench "$port" -T 3 >/dev/null 2>&1
ws_check "the standby caught up" standby_caught_up
expected=$(pg_table_checksum "$sport" pgbench_accounts)

ws_expect_exit 2 "--primary naming the standby itself is refused" \
  "${walctl[@]}" backup -d "$sconninfo" --primary "$sconninfo" --label refused --wal-timeout 1
ws_contains "... saying why" "$WS_ERR" "--primary reaches a server in recovery"

start=$(date +%s)
ws_expect_exit 0 "walctl backup of the standby with --primary" \
  "${walctl[@]}" backup -d "$sconninfo" --primary "$conninfo" --label from-standby --json
ws_check "complete without waiting for the primary to fill its segment (< 60 s)" \
  test $(($(date +%s) - start)) -lt 60

# More load after the backup: the restore must hold the backup's state, not the primary's now.
pg_pgbench "$port" -T 2 >/dev/null 2>&1
pg_switch_and_wait_archived "$port" || ws_die "archiving stopped"
ws_expect_exit 0 "verify is clean" "${walctl[@]}" verify
ws_check "restore of the standby's backup reaches consistency and ends recovery" \
  wc_restore_and_start "$WS_TMP/restored" from-standby --target-immediate
ws_same "restored data equals the standby's at the backup" "$expected" \
  "$(pg_table_checksum "$rport" pgbench_accounts)"
ws_contains "restore says it left the standby's standby.signal out" "$WS_ERR" \
  "was taken from a standby: its standby.signal is not restored"

# The restored cluster ended recovery inside a segment and went on as timeline 2, archiving into
# the same repository (its postgresql.conf is the backup's).  PostgreSQL starts timeline 2's
# first segment with a copy of timeline 1's pages, so its header names timeline 1: walpush must
# archive it and walfetch restore it, or archiving stalls after every such PITR.
ws_same "the restored cluster is on timeline 2" 00000002 \
  "$(pg_psql "$rport" "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")"
pg_pgbench "$rport" -T 2 >/dev/null 2>&1
ws_check "timeline 2, its first segment included, is archived" pg_switch_and_wait_archived "$rport"
ws_same "no archive failure on timeline 2" 0 \
  "$(pg_psql "$rport" "select failed_count from pg_stat_archiver")"
tli2_final=$(pg_table_checksum "$rport" pgbench_accounts)
pg_stop "$WS_TMP/restored"
ws_expect_exit 0 "verify follows the switch to timeline 2" "${walctl[@]}" verify
# A second PITR from the same backup follows the latest timeline through that segment.
ws_check "restore to the end of the archive follows timeline 2" \
  wc_restore_and_start "$WS_TMP/restored-tli2" from-standby
ws_same "... to timeline 2's last archived state" "$tli2_final" \
  "$(pg_table_checksum "$rport" pgbench_accounts)"
pg_stop "$WS_TMP/restored-tli2"

# Without --primary: walctl says why it waits, and the backup completes once the primary
# switches (here a helper does what archive_timeout would do).
pg_pgbench "$port" -T 2 >/dev/null 2>&1
ws_check "the standby caught up again" standby_caught_up
(sleep 4 && pg_psql "$port" "select pg_switch_wal()" >/dev/null) &
switcher=$!
ws_expect_exit 0 "walctl backup of the standby without --primary completes after the switch" \
  "${walctl[@]}" backup -d "$sconninfo" --label waited --wal-timeout 120
wait "$switcher"
ws_contains "... after saying why it waits" "$WS_ERR" \
  "backing up a standby: the backup is complete once the primary has archived"

# Without a switch, the missing end segment keeps the backup incomplete (exit 18): the WAL
# range is checked in the archive, never assumed.
pg_pgbench "$port" -T 2 >/dev/null 2>&1
ws_check "the standby caught up a third time" standby_caught_up
ws_expect_exit 18 "without the primary's switch the backup stays incomplete" \
  "${walctl[@]}" backup -d "$sconninfo" --label unswitched --wal-timeout 3
ws_contains "... naming the missing WAL" "$WS_ERR" "backup unswitched is incomplete: WAL"

# Failover: the standby is promoted (its postgresql.conf archives with walpush like the
# primary's).  The restores above already made timelines 2 and 3 in this archive, so the
# standby gets a restore_command (as a standby that may be promoted should): PostgreSQL then
# finds their history files through walfetch and takes the next timeline.  It archives that
# timeline's history file, the old timeline's last segment as .partial and the new timeline's
# first segment (timeline 1's pages at its start): all must be accepted.
newest_history=$(find "$repo_dir" -path '*/wal/*' -type f -name '*.history' -printf '%f\n' | sort | tail -1)
next_tli=$(printf '%08X' $((16#${newest_history:0:8} + 1)))
pg_conf "$standby" "restore_command = '$(ws_tool_cmd walfetch --repo "$repo_url" \
  --key-file "$WS_TMP/key" %f %p)'"
pg_psql "$sport" "select pg_reload_conf()" >/dev/null
pg_stop "$primary"
as_pg "$PG_BIN/pg_ctl" -D "$standby" -w promote >/dev/null
ws_same "the promoted standby took the next timeline" "$next_tli" \
  "$(pg_psql "$sport" "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")"
pg_pgbench "$sport" -T 2 >/dev/null 2>&1
ws_check "the promoted standby archives its new timeline" pg_switch_and_wait_archived "$sport"
ws_same "no archive failure after the promotion" 0 \
  "$(pg_psql "$sport" "select failed_count from pg_stat_archiver")"
wal_objects=$(find "$repo_dir" -path '*/wal/*' -type f -printf '%f\n')
ws_contains "its history file is archived" "$wal_objects" "$next_tli.history"
ws_check "the old timeline's last segment is archived as .partial" \
  grep -q '^00000001[0-9A-F]\{16\}\.partial$' <<<"$wal_objects"
ws_expect_exit 0 "verify after the failover" "${walctl[@]}" verify
ws_done
