#!/usr/bin/env bash
# walctl restore --delta on a real PostgreSQL 15: a full backup, a pgbench load, the server
# stopped (a failed primary), its data directory damaged (a block of a relation overwritten, a
# relation file deleted, one truncated, an extra file and directory added); restore --delta
# back into it writes a small part of what it checks, leaves no extra file, and the server
# recovers to the backup's table contents.  A second delta restore of the unchanged directory
# writes almost nothing; one killed part-way is repaired by the next; an incr's chain restores
# --delta too; while one runs its own postmaster.pid holds the directory, and a killed one's is
# taken over by the next.  Refused: a running server's directory (postmaster.pid), a directory
# that is not a data directory, another cluster's, a mount point it would delete (as root).
# An empty directory gets a normal restore.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
pg_pgbench "$port" -i -q -s 3 >/dev/null 2>&1
table_sums() {
  local t out=''
  for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
    out+="$t=$(pg_table_checksum "$1" "$t") "
  done
  echo "$out"
}
ws_expect_exit 0 "full backup" "${walctl[@]}" backup -d "$conninfo" --label full1
sums_full=$(table_sums "$port")
accounts=$primary/$(pg_psql "$port" "select pg_relation_filepath('pgbench_accounts')")
branches=$primary/$(pg_psql "$port" "select pg_relation_filepath('pgbench_branches')")
tellers=$primary/$(pg_psql "$port" "select pg_relation_filepath('pgbench_tellers')")
pg_pgbench "$port" -c 2 -t 100 -n >/dev/null 2>&1
ws_expect_exit 0 "incr backup after the load" "${walctl[@]}" backup -d "$conninfo" --type incr --label incr1
sums_incr=$(table_sums "$port")
pg_pgbench "$port" -c 2 -t 100 -n >/dev/null 2>&1
pg_switch_and_wait_archived "$port"

# 1. Refusals: a running server; a directory that is not a data directory.
ws_expect_exit 2 "restore --delta into a running server's directory is refused" \
  "${walctl[@]}" restore --delta full1 "$primary"
ws_contains "the refusal names postmaster.pid" "$WS_ERR" "holds postmaster.pid"
ws_contains "the hint says to stop the server" "$WS_ERR" "pg_ctl -D $primary stop"
ws_same "the running server's pg_control is untouched" yes \
  "$([[ -f $primary/global/pg_control ]] && echo yes || echo no)"
ws_same "the running server still answers" 1 "$(pg_psql "$port" "select 1")"
ws_pg_dir "$WS_TMP/other"
echo keep >"$WS_TMP/other/notes.txt"
ws_expect_exit 2 "restore --delta into a directory without PG_VERSION is refused" \
  "${walctl[@]}" restore --delta full1 "$WS_TMP/other"
ws_contains "the refusal says it is no data directory" "$WS_ERR" "is not a PostgreSQL data directory"
ws_same "its file is left" keep "$(cat "$WS_TMP/other/notes.txt")"

# 2. An empty directory: a normal restore.
ws_pg_dir "$WS_TMP/empty"
ws_expect_exit 0 "restore --delta into an empty directory" \
  "${walctl[@]}" restore --delta --json full1 "$WS_TMP/empty"
ws_same "it is a normal restore (delta false)" False "$(wc_json 'j["delta"]')"
ws_same "it writes every byte" True "$(wc_json 'j["bytes_written"] == j["bytes"] > 0')"
full_bytes=$(wc_json 'j["bytes"]')
rm -rf "$WS_TMP/empty"

# 3. The failed primary: stopped, then damaged.
pg_stop "$primary"
datadir_bytes=$(du -sb "$primary" | cut -f1)
as_pg dd if=/dev/urandom of="$accounts" bs=8192 seek=5 count=1 conv=notrunc status=none
as_pg rm "$branches"
as_pg truncate -s 8192 "$tellers"
as_pg mkdir -p "$primary/base/extra_dir"
echo stray | as_pg tee "$primary/base/extra_dir/file" "$primary/base/1/999999" >/dev/null
ln -s /etc "$primary/link_out"
ws_expect_exit 0 "restore --delta into the stopped, damaged primary" \
  "${walctl[@]}" restore --delta --json full1 "$primary" --target-immediate --archive-mode off
ws_same "delta is reported" True "$(wc_json 'j["delta"]')"
written=$(wc_json 'j["bytes_written"]')
checked=$(wc_json 'j["bytes"]')
ws_log "delta restore: wrote $written of $checked bytes checked (data directory $datadir_bytes bytes)"
ws_same "it writes under 10 % of the data directory ($written of $datadir_bytes bytes)" True \
  "$(python3 -c "print(0 < $written < $datadir_bytes / 10)")"
ws_same "it checks every byte of the backup (as many as a full restore writes)" "$full_bytes" "$checked"
ws_same "the extra file is removed" no "$([[ -e $primary/base/1/999999 ]] && echo yes || echo no)"
ws_same "the extra directory is removed" no "$([[ -e $primary/base/extra_dir ]] && echo yes || echo no)"
ws_same "the symbolic link is removed, not followed" no:yes \
  "$([[ -L $primary/link_out ]] && echo yes || echo no):$([[ -d /etc ]] && echo yes || echo no)"
ws_same "pg_wal is empty but for archive_status" archive_status "$(ls "$primary/pg_wal")"
ws_same "no postmaster.opts is left" no "$([[ -e $primary/postmaster.opts ]] && echo yes || echo no)"
ws_same "the deleted file is back" yes "$([[ -f $branches ]] && echo yes || echo no)"

# 4. A second delta restore of the unchanged directory: only what restore itself appended
#    (postgresql.auto.conf) and global/pg_control (removed first) are written.
ws_expect_exit 0 "a second restore --delta" \
  "${walctl[@]}" restore --delta --json full1 "$primary" --target-immediate --archive-mode off
written2=$(wc_json 'j["bytes_written"]')
ws_log "second delta restore: wrote $written2 bytes"
ws_same "the second one writes at most 64 KiB ($written2 bytes)" True \
  "$(python3 -c "print($written2 <= 65536)")"
ws_expect_exit 0 "text output names what it wrote" \
  "${walctl[@]}" restore --delta full1 "$primary" --target-immediate --archive-mode off
ws_contains "text: written and checked" "$WS_ERR" "checked against the block map and the manifest"

rport=$(ws_free_port)
if pg_start "$primary" "$rport" && pg_wait_recovery_done "$rport"; then
  ws_same "the tables are the backup's" "$sums_full" "$(table_sums "$rport")"
  pg_stop "$primary"
  ws_wait_workers # the read-ahead worker can outlive the server; it writes in pg_wal
else
  ws_fail "the delta-restored primary recovers"
fi

# 5. A delta restore killed part-way (the started server changed the directory; a relation is
#    overwritten whole) leaves a directory that cannot be started; the next one repairs it.
as_pg dd if=/dev/zero of="$accounts" bs=1M count=20 conv=notrunc status=none
"${walctl[@]}" restore --delta full1 "$primary" --target-immediate --archive-mode off \
  >"$WS_TMP/killed.out" 2>&1 &
killed_pid=$!
# Killed as soon as it has started to change the directory (global/pg_control goes first,
# before the old WAL: without it the directory does not start).
for _ in $(seq 3000); do
  [[ -e $primary/global/pg_control ]] || break
  sleep 0.01
done
lock_at_kill=$(head -n 1 "$primary/postmaster.pid" 2>/dev/null || echo none)
kill -9 "$killed_pid" 2>/dev/null || true
wait "$killed_pid" 2>/dev/null || true
ws_same "while it ran, walctl held the directory with a postmaster.pid of its own PID" \
  "$killed_pid" "$lock_at_kill"
ws_same "the killed restore's lock is left behind" "$killed_pid" \
  "$(head -n 1 "$primary/postmaster.pid" 2>/dev/null || echo none)"
cp -p "$primary/postmaster.pid" "$WS_TMP/stale.pid"
ws_same "the killed restore had not completed (no recovery.signal, no pg_control)" no:no \
  "$([[ -e $primary/recovery.signal ]] && echo yes || echo no):$([[ -e $primary/global/pg_control ]] && echo yes || echo no)"
rport=$(ws_free_port)
ws_expect_exit nonzero "the half-updated directory does not start" \
  as_pg "$PG_BIN/pg_ctl" -D "$primary" -o "-p $rport" -w -t 30 -l "$WS_TMP/half.log" start
# PostgreSQL takes over (and, failing, removes) a postmaster.pid whose PID is gone: put the
# killed restore's back, so the next restore --delta has to take it over too.
[[ -e $primary/postmaster.pid ]] || cp -p "$WS_TMP/stale.pid" "$primary/postmaster.pid"
ws_same "the killed restore's postmaster.pid is there for the next run" "$killed_pid" \
  "$(head -n 1 "$primary/postmaster.pid")"
ws_expect_exit 0 "restore --delta after a killed one (its stale postmaster.pid taken over)" \
  "${walctl[@]}" restore --delta --json full1 "$primary" --target-immediate --archive-mode off
rport=$(ws_free_port)
if pg_start "$primary" "$rport" && pg_wait_recovery_done "$rport"; then
  ws_same "after the repair the tables are the backup's" "$sums_full" "$(table_sums "$rport")"
  pg_stop "$primary"
  ws_wait_workers # the read-ahead worker can outlive the server; it writes in pg_wal
else
  ws_fail "the repaired primary recovers"
fi

# 6. An incr (a chain) restored --delta over the directory at the full's state (started since).
ws_expect_exit 0 "restore --delta of the incr" \
  "${walctl[@]}" restore --delta --json incr1 "$primary" --target-immediate --archive-mode off
written3=$(wc_json 'j["bytes_written"]')
ws_log "delta restore of incr1 over full1's state: wrote $written3 bytes"
ws_same "the chain's delta restore writes under 10 % of the data directory ($written3 bytes)" True \
  "$(python3 -c "print($written3 < $datadir_bytes / 10)")"
rport=$(ws_free_port)
if pg_start "$primary" "$rport" && pg_wait_recovery_done "$rport"; then
  ws_same "the tables are the incr's" "$sums_incr" "$(table_sums "$rport")"
  pg_stop "$primary"
  ws_wait_workers # the read-ahead worker can outlive the server; it writes in pg_wal
else
  ws_fail "the primary delta-restored to the incr recovers"
fi

ws_same "no postmaster.pid is left after a delta restore" no \
  "$([[ -e $primary/postmaster.pid ]] && echo yes || echo no)"

# 6b. Killed late, once the backup's pg_control has been written (PostgreSQL sends it last):
#     it is held back as global/pg_control.walctl-new until everything else is durable and
#     recovery.signal is there, so the directory still cannot start.
"${walctl[@]}" restore --delta incr1 "$primary" --target-immediate --archive-mode off \
  >"$WS_TMP/killed_late.out" 2>&1 &
killed_pid=$!
for _ in $(seq 3000); do # the old pg_control goes first ...
  [[ -e $primary/global/pg_control ]] || break
  sleep 0.01
done
for _ in $(seq 3000); do # ... the backup's comes at the end of base.tar
  [[ -e $primary/global/pg_control.walctl-new || -e $primary/global/pg_control ]] && break
  sleep 0.01
done
kill -9 "$killed_pid" 2>/dev/null || true
killed_rc=0
wait "$killed_pid" 2>/dev/null || killed_rc=$?
ws_same "the late kill hit a running restore" 137 "$killed_rc"
ws_same "killed after writing it, the restore left the backup's pg_control held back" no:yes \
  "$([[ -e $primary/global/pg_control ]] && echo yes || echo no):$([[ -e $primary/global/pg_control.walctl-new ]] && echo yes || echo no)"
rport=$(ws_free_port)
ws_expect_exit nonzero "the directory killed late does not start" \
  as_pg "$PG_BIN/pg_ctl" -D "$primary" -o "-p $rport" -w -t 30 -l "$WS_TMP/late.log" start
ws_expect_exit 0 "restore --delta after a late kill" \
  "${walctl[@]}" restore --delta incr1 "$primary" --target-immediate --archive-mode off
ws_same "the completed restore published pg_control" yes:no \
  "$([[ -e $primary/global/pg_control ]] && echo yes || echo no):$([[ -e $primary/global/pg_control.walctl-new ]] && echo yes || echo no)"

# 7. Another cluster (another database system identifier) is refused and left as it was.
other=$WS_TMP/other_cluster
pg_init "$other"
other_control=$(md5sum <"$other/global/pg_control")
ws_expect_exit 2 "restore --delta into another cluster's directory is refused" \
  "${walctl[@]}" restore --delta full1 "$other" --target-immediate --archive-mode off
ws_contains "the refusal names the other database system" "$WS_ERR" "belongs to database system"
ws_same "the other cluster's pg_control is untouched, no lock is left" "$other_control:no" \
  "$(md5sum <"$other/global/pg_control"):$([[ -e $other/postmaster.pid ]] && echo yes || echo no)"

# 8. A file system mounted beneath the directory (not in the backup) is never deleted.
mounted=$primary/mounted_after_backup
mkdir -p "$mounted"
if ws_is_root && mount -t tmpfs walstore-test "$mounted" 2>/dev/null; then
  ws_on_exit umount "$mounted"
  echo keep >"$mounted/evidence"
  ws_expect_exit 2 "restore --delta with a mount point it would delete is refused" \
    "${walctl[@]}" restore --delta incr1 "$primary" --target-immediate --archive-mode off
  ws_contains "the refusal names the mount point" "$WS_ERR" "is a mount point"
  ws_same "the mounted file system keeps its file" keep "$(cat "$mounted/evidence")"
  umount "$mounted"
  ws_expect_exit 0 "restore --delta once it is unmounted" \
    "${walctl[@]}" restore --delta incr1 "$primary" --target-immediate --archive-mode off
  ws_same "the unmounted directory is removed" no "$([[ -e $mounted ]] && echo yes || echo no)"
else
  ws_log "not root or no tmpfs mount: mount point refusal not checked"
  rmdir "$mounted"
fi

ws_done
