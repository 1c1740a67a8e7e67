#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through ws_expect_exit / ws_check
# What an object's content proves, with the real binaries:
# - walpush answers "already archived" only for an object that decodes completely to the local
#   file: a stored object truncated to its header is archived_damaged (21), never 0;
# - every object is bound to its name: segment A's object under segment B's name, a copied
#   .history, in an encrypted and in an unencrypted repository, makes walfetch exit 126 with
#   nothing at %p (directly and after a read-ahead);
# - with a key configured an unencrypted object is refused (126) unless
#   WALSTORE_ALLOW_PLAINTEXT_OBJECTS allows it;
# - a real PostgreSQL recovery with segment N's object in segment M's place stops instead of
#   promoting with part of the data;
# - a real recovery with segment M's object deleted (a hole: later WAL of the timeline is
#   archived) stops with archive_gap instead of promoting at the hole; with the object back it
#   recovers every row.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch

ws_log "making real WAL with pgbench"
wal=$WS_TMP/wal
ws_make_wal "$wal" 5
mapfile -t segs < <(ws_segments "$wal")
ws_log "segments: ${segs[*]} (system id $WS_WAL_SYSID)"

key=$WS_TMP/key
ws_make_key "$key"
mkdir -p "$WS_TMP/out" "$WS_TMP/kinds"
dest=$WS_TMP/out/dest
printf '1\t0/3000000\tno recovery target specified\n' >"$WS_TMP/kinds/00000002.history"

# The stored object of a WAL file name in a repository, ignoring hidden temp files.
object_of() { find "$2" -type f -name "$1" ! -name '.*' | head -n 1; }
expect_no_dest() {
  if [[ -e $dest ]]; then ws_fail "$1: $dest was created"; rm -f "$dest"; else ws_pass "$1: nothing at %p"; fi
  local left
  left=$(find "$WS_TMP/out" -mindepth 1 -maxdepth 1 ! -name '.walstore-prefetch' | wc -l)
  ws_same "$1: no temporary left beside %p" 0 "$left"
}

for kind in aes-lz4 plain-zstd; do
  repo=$WS_TMP/repo-$kind
  mkdir -p "$repo"
  if [[ $kind == aes-lz4 ]]; then
    opts=(--repo "file://$repo" --key-file "$key")
    compression=lz4
  else
    opts=(--repo "file://$repo")
    compression=zstd:3
  fi
  push() { "$WS_BIN/walpush" "${opts[@]}" --compression "$compression" --system-id "$WS_WAL_SYSID" "$@"; }
  fetch() { "$WS_BIN/walfetch" "${opts[@]}" --system-id "$WS_WAL_SYSID" --prefetch 0 "$@"; }
  for s in "${segs[@]}"; do ws_expect_exit 0 "$kind: walpush $s" push "$wal/$s"; done
  ws_expect_exit 0 "$kind: walpush 00000002.history" push "$WS_TMP/kinds/00000002.history"

  # ---- walpush over a damaged stored object ------------------------------------------------
  obj=$(object_of "${segs[1]}" "$repo")
  cp -p "$obj" "$WS_TMP/good"
  ws_expect_exit 0 "$kind: walpush of an identical archived segment" push "$wal/${segs[1]}"
  ws_contains "$kind: ... reported as already archived" "$WS_ERR" "already archived"
  truncate -s 128 "$obj"
  ws_expect_exit 21 "$kind: walpush over an object truncated to its header" push "$wal/${segs[1]}"
  ws_contains "$kind: ... says the archived object cannot be verified" "$WS_ERR" "cannot be verified"
  ws_contains "$kind: ... says what happened" "$WS_ERR" "no end record"
  ws_contains "$kind: ... hint says how to repair" "$WS_ERR" "move the damaged object aside"
  ws_same "$kind: ... the stored object was left alone" 128 "$(stat -c %s "$obj")"
  cp -p "$WS_TMP/good" "$obj"
  ws_flip_byte "$obj" -30
  ws_expect_exit 21 "$kind: walpush over an object with a flipped byte" push "$wal/${segs[1]}"
  # The documented repair: move the damaged object aside, the next retry archives again.
  mv "$obj" "$WS_TMP/damaged"
  ws_expect_exit 0 "$kind: after moving it aside walpush archives the segment again" push "$wal/${segs[1]}"
  ws_expect_exit 0 "$kind: ... and it restores" fetch "${segs[1]}" "$dest"
  ws_check "$kind: ... intact" cmp "$wal/${segs[1]}" "$dest"
  rm -f "$dest"

  # ---- an object under another segment's name ------------------------------------------------
  victim=$(object_of "${segs[2]}" "$repo")
  cp -p "$victim" "$WS_TMP/victim.good"
  cp "$(object_of "${segs[3]}" "$repo")" "$victim"
  ws_expect_exit 126 "$kind: walfetch of ${segs[2]} holding ${segs[3]}'s object" fetch "${segs[2]}" "$dest"
  ws_contains "$kind: ... says why" "$WS_ERR" "stored for another name"
  expect_no_dest "$kind: misplaced segment"
  ws_expect_exit 21 "$kind: walpush of ${segs[2]} over the misplaced object is archived_damaged" \
    push "$wal/${segs[2]}"
  # Read-ahead: the worker fetching after segs[1] must not spool it, and walfetch of it after
  # the read-ahead still refuses (the spool check and the direct check).
  "$WS_BIN/walfetch" "${opts[@]}" --system-id "$WS_WAL_SYSID" --prefetch 3 "${segs[1]}" "$dest"
  ws_wait_workers
  rm -f "$dest"
  ws_expect_exit 126 "$kind: walfetch after a read-ahead still refuses the misplaced object" \
    "$WS_BIN/walfetch" "${opts[@]}" --system-id "$WS_WAL_SYSID" --prefetch 3 "${segs[2]}" "$dest"
  expect_no_dest "$kind: misplaced segment after read-ahead"
  ws_wait_workers
  rm -rf "$WS_TMP/out/.walstore-prefetch"
  cp -p "$WS_TMP/victim.good" "$victim"

  # ---- a copied .history ---------------------------------------------------------------------
  hist=$(object_of 00000002.history "$repo")
  cp "$hist" "$(dirname "$hist")/00000003.history"
  ws_expect_exit 126 "$kind: walfetch of 00000003.history holding 00000002.history's object" \
    fetch 00000003.history "$dest"
  expect_no_dest "$kind: copied history file"
  ws_expect_exit 0 "$kind: 00000002.history itself restores" fetch 00000002.history "$dest"
  rm -f "$dest"
done

# ---- an unencrypted object in an encrypted repository ---------------------------------------
enc=$WS_TMP/repo-aes-lz4
plain=$WS_TMP/repo-plain-zstd
victim=$(object_of "${segs[4]}" "$enc")
cp "$(object_of "${segs[4]}" "$plain")" "$victim"
enc_fetch() { "$WS_BIN/walfetch" --repo "file://$enc" --key-file "$key" --system-id "$WS_WAL_SYSID" --prefetch 0 "$@"; }
ws_expect_exit 126 "walfetch of an unencrypted object while a key is configured" enc_fetch "${segs[4]}" "$dest"
ws_contains "... says why" "$WS_ERR" "is not encrypted, but an encryption key is configured"
ws_contains "... hint names the migration setting" "$WS_ERR" "allow_plaintext_objects"
expect_no_dest "unencrypted object under a key"
ws_expect_exit 0 "WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 allows it (migration)" \
  env WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 "$WS_BIN/walfetch" --repo "file://$enc" --key-file "$key" \
  --system-id "$WS_WAL_SYSID" --prefetch 0 "${segs[4]}" "$dest"
ws_check "... intact" cmp "$wal/${segs[4]}" "$dest"
rm -f "$dest"
ws_expect_exit 21 "walpush over an unencrypted object while a key is configured: archived_damaged" \
  "$WS_BIN/walpush" --repo "file://$enc" --key-file "$key" "$wal/${segs[4]}"

# ---- a real recovery with segment N's object in segment M's place ----------------------------
repo=$WS_TMP/repo-pitr
ws_pg_dir "$repo"
popts=(--repo "file://$repo" --key-file "$key")
primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pg_enable_archiving "$primary" "$(ws_tool_cmd walpush "${popts[@]}" %p)"
pg_start "$primary" "$port"
pg_psql "$port" "create table t (i int)" >/dev/null
pg_base_backup "$port" "$WS_TMP/backup"
ws_log "writing WAL after the base backup"
for _ in 1 2 3 4 5 6; do
  pg_psql "$port" "insert into t select g from generate_series(1, 1000) g" >/dev/null
  pg_psql "$port" "select pg_switch_wal()" >/dev/null
done
ws_check "everything archived" pg_switch_and_wait_archived "$port"
pg_stop "$primary"
start_seg=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p' "$WS_TMP/backup/backup_label")
m=${start_seg:0:16}$(printf '%08X' $((16#${start_seg:16} + 2)))
n=${start_seg:0:16}$(printf '%08X' $((16#${start_seg:16} + 4)))
mobj=$(object_of "$m" "$repo")
nobj=$(object_of "$n" "$repo")
[[ -n $mobj && -n $nobj ]] || ws_die "no objects for $m / $n in $repo"
ws_log "putting $n's object in $m's place"
cp -p "$mobj" "$WS_TMP/m-object"
cp "$nobj" "$mobj"
# recovery_must_stop DIR WHAT: recovers the base backup into DIR through walfetch; the server
# must stop at segment $m instead of ending recovery early.  STOPPED_LOG: the server's log.
recovery_must_stop() {
  local dir=$1 what=$2 port
  port=$(ws_free_port)
  pg_prepare_recovery "$WS_TMP/backup" "$dir" "$(ws_tool_cmd walfetch "${popts[@]}" %f %p)" \
    "hot_standby = off"
  pg_start "$dir" "$port" || true
  ws_expect_exit 1 "recovery with $what stops instead of ending early" pg_wait_recovery_done "$port"
  STOPPED_LOG=$(cat "$(pg_log "$dir")")
  ws_contains "recovery aborted at $m ($what)" "$STOPPED_LOG" \
    "FATAL:  could not restore file \"$m\" from archive"
  ws_not_contains "no promotion ($what)" "$STOPPED_LOG" "selected new timeline ID"
  ws_not_contains "never opened read-write ($what)" "$STOPPED_LOG" \
    "database system is ready to accept connections"
  if [[ -f $dir/postmaster.pid ]]; then ws_fail "postmaster still running ($what)"; else ws_pass "no postmaster left running ($what)"; fi
}
recovery_must_stop "$WS_TMP/restore" "a misplaced segment"
ws_contains "log shows walfetch's error" "$STOPPED_LOG" "stored for another name"

# ---- a real recovery with a hole: segment M's object deleted ---------------------------------
ws_log "deleting $m's object: a hole before $n"
rm -f "$mobj"
# Later WAL proves a hole once it is older than push-ahead's window (10 minutes).
find "$repo" -type f -exec touch -d '20 minutes ago' {} +
recovery_must_stop "$WS_TMP/restore-hole" "a hole in the archive"
ws_contains "log names the hole and the later segment" "$STOPPED_LOG" \
  "$m is in no repository, but file://$repo holds"
ws_contains "log gives the way out" "$STOPPED_LOG" "HINT:  put $m back into the repository"

ws_log "putting $m's object back"
cp -p "$WS_TMP/m-object" "$mobj"
r3=$WS_TMP/restore-whole
p3=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$r3" "$(ws_tool_cmd walfetch "${popts[@]}" %f %p)" \
  "hot_standby = off"
pg_start "$r3" "$p3"
ws_check "with the object back, recovery ends at the end of the archive" pg_wait_recovery_done "$p3"
ws_same "every row is there" 6000 "$(pg_psql "$p3" "select count(*) from t")"
pg_stop "$r3"
ws_done
