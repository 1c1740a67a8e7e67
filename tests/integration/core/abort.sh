#!/usr/bin/env bash
# A damaged object must stop recovery, not end it early, proven with a real
# PostgreSQL 15: walfetch exits 126 for a bit-flipped segment, so the server refuses to start
# and its log shows walfetch's error.  A segment deleted from the middle of the archive (a
# hole) stops recovery the same way; only a recovery_target_lsn before the hole ends recovery
# early, with the later data lost as chosen.  Once the object is repaired the refused recovery
# completes with every row.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch

repo=$WS_TMP/repo
ws_pg_dir "$repo"
ws_make_key "$WS_TMP/key"
opts=(--repo "file://$repo" --key-file "$WS_TMP/key")

primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pg_enable_archiving "$primary" "$(ws_tool_cmd walpush "${opts[@]}" --compression lz4 %p)"
pg_start "$primary" "$port"
pg_pgbench "$port" -i -q -s 2 >/dev/null 2>&1
pg_base_backup "$port" "$WS_TMP/backup"
ws_log "writing WAL after the base backup"
for _ in 1 2 3 4; do
  pg_pgbench "$port" -c 2 -t 1500 -n >/dev/null 2>&1
  pg_psql "$port" "select pg_switch_wal()" >/dev/null
done
final_sum=$(pg_table_checksum "$port" pgbench_accounts)
ws_check "everything archived" pg_switch_and_wait_archived "$port"
pg_stop "$primary"

start_seg=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p' "$WS_TMP/backup/backup_label")
# The segment two after the backup's start: recovery needs it, and needs more after it.
victim=${start_seg:0:16}$(printf '%08X' $((16#${start_seg:16} + 2)))
obj=$(find "$repo" -type f -name "$victim*" ! -name '.*' | head -n 1)
[[ -n $obj ]] || ws_die "no object for $victim in $repo"
ws_log "backup starts in $start_seg; damaging $victim ($obj)"
cp -p "$obj" "$WS_TMP/victim.good"
ws_flip_byte "$obj" $(($(stat -c %s "$obj") / 2))

fetch_cmd=$(ws_tool_cmd walfetch "${opts[@]}" %f %p)

# A. Damaged object: recovery aborts, the server does not start.  (pg_ctl -w returns when
# archive recovery starts, so pg_wait_recovery_done tells how recovery ended.)
r1=$WS_TMP/restore-damaged
p1=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$r1" "$fetch_cmd" "hot_standby = off"
pg_start "$r1" "$p1" || true
ws_expect_exit 1 "server with a damaged segment in the archive stops during recovery" \
  pg_wait_recovery_done "$p1"
log1=$(cat "$(pg_log "$r1")")
ws_contains "log shows walfetch's error" "$log1" "walfetch: ERROR"
# PostgreSQL reports an exit status above 125 as "command not executable" and stops.
ws_contains "recovery aborted (FATAL) at the damaged segment" "$log1" \
  "FATAL:  could not restore file \"$victim\" from archive"
ws_contains "log shows the startup process failure" "$log1" "shutting down due to startup process failure"
ws_not_contains "server never became ready" "$log1" "database system is ready to accept connections"
if [[ -f $r1/postmaster.pid ]]; then ws_fail "postmaster still running"; else ws_pass "no postmaster left running"; fi

# B. A deleted object is a hole (later segments are archived): recovery stops there too
#    (archive_gap).  Before that guard walfetch answered "missing" and PostgreSQL ended recovery
#    at the hole, losing every later transaction in silence.  Ending before the hole is the
#    operator's choice, made with recovery_target_lsn as walfetch's HINT says: then the data
#    after it is lost, knowingly.
mv "$obj" "$WS_TMP/victim.damaged"
# Later WAL proves a hole once it is older than push-ahead's window (10 minutes).
find "$repo" -type f -exec touch -d '20 minutes ago' {} +
r2=$WS_TMP/restore-hole
p2=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$r2" "$fetch_cmd" "hot_standby = off"
pg_start "$r2" "$p2" || true
ws_expect_exit 1 "server with a segment deleted from the archive stops during recovery" \
  pg_wait_recovery_done "$p2"
log2=$(cat "$(pg_log "$r2")")
ws_contains "log names the hole" "$log2" "$victim is in no repository, but file://$repo holds"
ws_contains "recovery aborted (FATAL) at the hole" "$log2" \
  "FATAL:  could not restore file \"$victim\" from archive"
ws_not_contains "no promotion at the hole" "$log2" "selected new timeline ID"
# 2 MiB before the hole: PostgreSQL 15's WAL prefetcher reads up to 512 kB ahead.
target=$(printf '%X/%X' $((16#${victim:8:8})) $((16#${victim:16:8} * 16777216 - 2097152)))
r3=$WS_TMP/restore-before-hole
p3=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$r3" "$fetch_cmd" "hot_standby = off" \
  "recovery_target_lsn = '$target'" "recovery_target_inclusive = off" \
  "recovery_target_action = 'promote'"
pg_start "$r3" "$p3"
ws_check "with recovery_target_lsn before the hole ($target), recovery ends there" \
  pg_wait_recovery_done "$p3"
ws_contains "it stopped at the target" "$(cat "$(pg_log "$r3")")" "recovery stopping before WAL location"
if [[ $(pg_table_checksum "$p3" pgbench_accounts) != "$final_sum" ]]; then
  ws_pass "ended before the hole: the later data is lost, as the operator chose"
else
  ws_fail "ended before the hole, yet the data is complete"
fi
pg_stop "$r3"

# C. Repaired object: the recovery that was refused now completes with every row.
cp -p "$WS_TMP/victim.good" "$obj"
ws_check "server starts once the object is repaired" pg_start "$r1" "$p1"
ws_check "recovery completes" pg_wait_recovery_done "$p1"
ws_same "every row recovered" "$final_sum" "$(pg_table_checksum "$p1" pgbench_accounts)"
ws_done
