#!/usr/bin/env bash
# walfetch answers 1 ("missing", which ends PostgreSQL's recovery) only when the repository is
# positively there and positively lacks the file, and memory:// is no repository of
# the production programs:
#   - an unmounted repository (directory gone), an empty mount point, a regular file, and an
#     "S3" endpoint that answers an HTML 404 for everything: walfetch exits 126;
#   - a wrong system id with nothing of that cluster in the repository: exit 1 (a new standby
#     of a new primary must start) but a WARNING naming both system ids;
#   - walpush/walfetch/walctl --repo memory://x: configuration error;
#   - walpush and walctl backup never create the repository directory: into a missing one (an
#     unmounted file system) walpush exits 24 and creates nothing, into a non-empty directory
#     that is no repository too; walctl init creates it, then walpush archives;
#   - what root writes into a repository of postgres' belongs to postgres (walpush keeps working);
#   - a real PostgreSQL 15 recovery whose repository was moved away after the base backup stops
#     instead of promoting, and completes with every row once the repository is back.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch walctl

ws_log "making real WAL with pgbench"
wal=$WS_TMP/wal
ws_make_wal "$wal" 3
mapfile -t segs < <(ws_segments "$wal")
repo=$WS_TMP/repo
dest=$WS_TMP/out/dest
mkdir -p "$WS_TMP/out"

# ---- walpush never creates the repository: 24, nothing made ----------------------------------
mnt=$WS_TMP/mnt/nfs  # the mount point, with nothing mounted on it
mkdir -p "$mnt"
ws_expect_exit 24 "walpush into a missing repository (file system not mounted)" \
  "$WS_BIN/walpush" --repo "file://$mnt/walstore" "$wal/${segs[0]}"
ws_contains "the error names the path" "$WS_ERR" "repository \"$mnt/walstore\" does not exist"
ws_contains "the hint says to mount it" "$WS_ERR" "mount it"
ws_contains "the hint names walctl init" "$WS_ERR" "walctl init --repo file://$mnt/walstore"
ws_expect_exit 24 "walctl backup into the missing repository, before connecting" \
  "$WS_BIN/walctl" --repo "file://$mnt/walstore" backup -d "host=$WS_TMP/no-such-socket-dir"
ws_same "nothing was created on the mount point" "" "$(ls -A "$mnt")"
mkdir -p "$WS_TMP/home"
echo "notes" >"$WS_TMP/home/notes.txt"
ws_expect_exit 24 "walpush into a non-empty directory that is no repository" \
  "$WS_BIN/walpush" --repo "file://$WS_TMP/home" "$wal/${segs[0]}"
ws_contains "the error says it is not empty" "$WS_ERR" "is not a walstore repository: it is not empty"
ws_same "it was not adopted" "notes.txt" "$(ls -A "$WS_TMP/home")"
ws_expect_exit 24 "walctl init refuses it too" "$WS_BIN/walctl" --repo "file://$WS_TMP/home" init
ws_expect_exit 8 "walctl init without --parents needs the parent" \
  "$WS_BIN/walctl" --repo "file://$WS_TMP/mnt/other/walstore" init
ws_contains "the hint names --parents" "$WS_ERR" "--parents"
ws_check "nothing created without --parents" test ! -e "$WS_TMP/mnt/other"
ws_expect_exit 0 "walctl init creates the repository" "$WS_BIN/walctl" --repo "file://$mnt/walstore" init
ws_contains "it says so" "$WS_ERR" "created the repository file://$mnt/walstore"
ws_same "mode 0750" "750" "$(stat -c %a "$mnt/walstore")"
ws_check "with its format file" test -f "$mnt/walstore/walstore-repository.json"
ws_expect_exit 0 "walctl init again is a no-op" "$WS_BIN/walctl" --repo "file://$mnt/walstore" init
ws_contains "it says it already is one" "$WS_ERR" "already is a walstore repository"
ws_expect_exit 0 "walpush into the repository walctl init made" \
  "$WS_BIN/walpush" --repo "file://$mnt/walstore" "$wal/${segs[0]}"
ws_expect_exit 0 "walctl init --parents" "$WS_BIN/walctl" --repo "file://$WS_TMP/mnt/other/walstore" init --parents

# ---- an existing empty directory becomes a repository on the first walpush ------------------
mkdir "$repo"
ws_expect_exit 0 "walpush into a new, empty repository directory" "$WS_BIN/walpush" --repo "file://$repo" "$wal/${segs[0]}"
ws_check "the repository got its format file" test -f "$repo/walstore-repository.json"
fetch() { "$WS_BIN/walfetch" --system-id "$WS_WAL_SYSID" "$@" "${segs[1]}" "$dest"; }

# ---- root writing first into postgres' empty repository (walctl backup from root's crontab) --
# What root creates belongs to the repository's owner, so that walpush, which PostgreSQL runs as
# postgres, can still read the format file and add WAL beside it.
if ws_is_root; then
  pgowned=$WS_TMP/pgowned
  ws_repo_dir "$pgowned"
  ws_expect_exit 0 "root writes first into postgres' empty repository" \
    "$WS_BIN/walpush" --repo "file://$pgowned" "$wal/${segs[0]}"
  ws_same "everything root created belongs to postgres" "" \
    "$(find "$pgowned" ! -user postgres -printf '%p ')"
  ws_expect_exit 0 "walpush as postgres afterwards" \
    as_pg "$WS_BIN/walpush" --repo "file://$pgowned" "$wal/${segs[1]}"
fi

# ---- positively missing: 1, quietly --------------------------------------------------------
ws_expect_exit 1 "a segment not in the repository is missing" fetch --repo "file://$repo"
ws_not_contains "no warning when the cluster is in the repository" "$WS_ERR" "WARNING"

# ---- not a repository: 126 -----------------------------------------------------------------
ws_expect_exit 126 "repository directory does not exist (unmounted)" fetch --repo "file://$WS_TMP/nfs/walstore"
ws_contains "the error names the path" "$WS_ERR" "$WS_TMP/nfs/walstore\" does not exist"
ws_contains "the hint says to check the mount" "$WS_ERR" "mounted"
mkdir -p "$WS_TMP/mountpoint"
ws_expect_exit 126 "empty mount point (not a repository)" fetch --repo "file://$WS_TMP/mountpoint"
ws_contains "the error names the path" "$WS_ERR" "$WS_TMP/mountpoint\" is not a walstore repository"
echo "not a directory" >"$WS_TMP/plainfile"
ws_expect_exit 126 "repository path is a regular file" fetch --repo "file://$WS_TMP/plainfile"
ws_contains "the error names the path" "$WS_ERR" "$WS_TMP/plainfile\" is not a directory"
obj_dir=$(dirname "$(find "$repo" -type f -name "${segs[0]}*" | head -n 1)")
mv "$obj_dir" "$WS_TMP/moved-timeline-dir"
echo "in the way" >"$obj_dir"
ws_expect_exit 126 "a file where the timeline directory belongs" fetch --repo "file://$repo"
ws_contains "the error says so" "$WS_ERR" "Not a directory"
rm "$obj_dir"
mv "$WS_TMP/moved-timeline-dir" "$obj_dir"
mv "$obj_dir" "$WS_TMP/bigdisk-timeline-dir"
ln -s "$WS_TMP/unmounted-disk/timeline" "$obj_dir"
ws_expect_exit 126 "a timeline directory linked to a disk that is not mounted" fetch --repo "file://$repo"
ws_contains "the error names the link's target" "$WS_ERR" \
  "is a symbolic link to \"$WS_TMP/unmounted-disk/timeline\", which does not exist"
rm "$obj_dir"
mv "$WS_TMP/bigdisk-timeline-dir" "$obj_dir"
ws_expect_exit 0 "the same repository, repaired" \
  "$WS_BIN/walfetch" --repo "file://$repo" --system-id "$WS_WAL_SYSID" "${segs[0]}" "$dest"

# ---- wrong system id: 1, but visible at the default log level ------------------------------
ws_expect_exit 1 "a cluster with nothing in the repository is missing" \
  "$WS_BIN/walfetch" --repo "file://$repo" --system-id 4242 "${segs[1]}" "$dest"
ws_contains "WARNING names the system id looked for" "$WS_ERR" "WARNING:  file://$repo holds no WAL and no backup of cluster 4242"
ws_contains "WARNING names the system id the repository holds" "$WS_ERR" "it holds clusters $WS_WAL_SYSID"

# ---- an HTTP endpoint that answers 404 with an HTML page for everything --------------------
html_port=$(ws_free_port)
ws_bg python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def do_GET(self): self.reply(b"<html><body><h1>404 Not Found</h1></body></html>")
    do_HEAD = do_GET
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$html_port"
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$html_port") 2>/dev/null && break; sleep 0.1; done
s3_env=(env AWS_ENDPOINT_URL="http://127.0.0.1:$html_port" AWS_ACCESS_KEY_ID=test
        AWS_SECRET_ACCESS_KEY=test WALSTORE_S3_PATH_STYLE=true)
ws_expect_exit 126 "an HTML 404 endpoint is an error, not missing" \
  "${s3_env[@]}" "$WS_BIN/walfetch" --repo s3://bucket/prefix --system-id "$WS_WAL_SYSID" "${segs[1]}" "$dest"
ws_contains "the error says there was no S3 error document" "$WS_ERR" "without an S3 error document"

# ---- memory:// is not a repository of the production programs -------------------------------
ws_expect_exit 3 "walpush --repo memory://x is a configuration error" \
  "$WS_BIN/walpush" --repo memory://x "$wal/${segs[1]}"
ws_contains "unknown scheme" "$WS_ERR" "unknown scheme"
ws_expect_exit 126 "walfetch --repo memory://x stops recovery" \
  "$WS_BIN/walfetch" --repo memory://x --system-id "$WS_WAL_SYSID" "${segs[1]}" "$dest"
ws_expect_exit 3 "walctl --repo memory://x is a configuration error" \
  "$WS_BIN/walctl" --repo memory://x --system-id "$WS_WAL_SYSID" status

# ---- --help shows the exit codes of the table -----------------------------------------------
ws_expect_exit 0 "walpush --help" "$WS_BIN/walpush" --help
ws_contains "walpush --help lists not_a_repository" "$WS_OUT" "24 not_a_repository"
ws_not_contains "walpush --help has no stale range" "$WS_OUT" "2..19"
ws_expect_exit 0 "walfetch --help" "$WS_BIN/walfetch" --help
ws_contains "walfetch --help: 126 for every error" "$WS_OUT" "126 any error"

# ---- a real recovery with the repository moved away: the server stops, never promotes ------
pgrepo=$WS_TMP/pgrepo
ws_pg_dir "$pgrepo"
primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pg_enable_archiving "$primary" "$(ws_tool_cmd walpush --repo "file://$pgrepo" %p)"
pg_start "$primary" "$port"
pg_pgbench "$port" -i -q -s 1 >/dev/null 2>&1
pg_base_backup "$port" "$WS_TMP/backup"
for _ in 1 2 3; do
  pg_pgbench "$port" -c 2 -t 500 -n >/dev/null 2>&1
  pg_psql "$port" "select pg_switch_wal()" >/dev/null
done
final_sum=$(pg_table_checksum "$port" pgbench_accounts)
ws_check "everything archived" pg_switch_and_wait_archived "$port"
pg_stop "$primary"

restore=$WS_TMP/restore
rport=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$restore" \
  "$(ws_tool_cmd walfetch --repo "file://$pgrepo" %f %p)" "hot_standby = off"
# The segments that make the backup consistent go into pg_wal, as a standby or a pg_wal kept
# from before would have them: a walfetch that said "missing" for everything would then let
# PostgreSQL reach consistency from pg_wal, end recovery there and promote, losing the rest.
start_seg=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p' "$WS_TMP/backup/backup_label")
next_seg=${start_seg:0:16}$(printf '%08X' $((16#${start_seg:16} + 1)))
for seg in "$start_seg" "$next_seg"; do
  ws_expect_exit 0 "copy $seg into the restored pg_wal" as_pg "$WS_BIN/walfetch" --prefetch 0 \
    --repo "file://$pgrepo" --system-id "$(pg_system_id "$primary")" "$seg" "$restore/pg_wal/$seg"
done
mv "$pgrepo" "$pgrepo.unmounted"
pg_start "$restore" "$rport" || true
ws_expect_exit 1 "recovery from an unmounted repository stops the server" pg_wait_recovery_done "$rport"
log=$(cat "$(pg_log "$restore")")
ws_contains "log shows walfetch's error naming the repository" "$log" "walfetch: ERROR:  repository \"$pgrepo\" does not exist"
ws_contains "recovery aborted (FATAL)" "$log" "FATAL:  could not restore file"
ws_not_contains "no new timeline (no promotion)" "$log" "selected new timeline ID"
ws_not_contains "never read-write" "$log" "database system is ready to accept connections"
if [[ -f $restore/postmaster.pid ]]; then ws_fail "postmaster still running"; else ws_pass "no postmaster left running"; fi

mv "$pgrepo.unmounted" "$pgrepo"
ws_check "the server starts once the repository is back" pg_start "$restore" "$rport"
ws_check "recovery completes" pg_wait_recovery_done "$rport"
ws_same "every row recovered" "$final_sum" "$(pg_table_checksum "$rport" pgbench_accounts)"
ws_done
