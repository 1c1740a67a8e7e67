#!/usr/bin/env bash
# A full file system, on a 24 MiB tmpfs filled to leave 0 bytes .. almost a
# whole segment free, so that the writes fail at different points:
#  - the repository: walpush exits 9 (no_space), nothing is listed, walfetch says "missing",
#    no temp file is left; once space is freed the same walpush succeeds and walfetch gives the
#    segment's bytes;
#  - the destination of walfetch: it exits 126 (recovery stops), NEVER 1 (which would end
#    recovery as if the archive ended there), leaves no DEST and no temp file; once space is
#    freed the same walfetch succeeds.
# Needs root (mount -t tmpfs); the harness unmounts on exit.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/integration/crash/crash_lib.sh
. "$here/crash_lib.sh"
if ! ws_is_root; then
  echo "enospc.sh: SKIP: mounting a tmpfs needs root"
  exit 77
fi
ws_setup
ws_require_tool walpush walfetch walctl

WS_WAL_SCALE=1 ws_make_wal "$WS_TMP/wal" 1
seg=$(ws_segments "$WS_TMP/wal" | head -n 1)
export WALSTORE_SYSTEM_ID=$WS_WAL_SYSID
ws_make_key "$WS_TMP/key"
obj_path() { echo "$1/$WALSTORE_SYSTEM_ID/wal/${seg:0:16}/$seg"; }

# fill FS FREE: a filler file leaves FREE bytes available on FS.
fill() {
  local avail
  rm -f "$1/filler"
  avail=$(df --output=avail -B1 "$1" | tail -n 1)
  if ((avail > $2)); then fallocate -l $((avail - $2)) "$1/filler"; fi
}

t0=$(crash_now_us)
# --- the repository on a full file system -------------------------------------------------------
repo_fs=$WS_TMP/repo-fs
ws_mount_tmpfs "$repo_fs" 24m
repo=$repo_fs/repo
# A repository already (format file written) before the file system fills up.
"$WS_BIN/walctl" --repo "file://$repo" init || ws_die "walctl init failed"
obj=$(obj_path "$repo")
# The encrypted lz4 object's size, measured on a repository with room, to leave half of it free.
ws_repo_dir "$WS_TMP/sized"
"$WS_BIN/walpush" --repo "file://$WS_TMP/sized" --compression lz4 --key-file "$WS_TMP/key" \
  "$WS_TMP/wal/$seg" || ws_die "walpush into a repository with room failed"
lz4_size=$(stat -c %s "$(obj_path "$WS_TMP/sized")")
cases=("none 0" "none 65536" "none 1048576" "none 8388608" "none 16000000"
  "lz4+key $((lz4_size / 2))")
for c in "${cases[@]}"; do
  read -r codec free <<<"$c"
  args=(--repo "file://$repo" --push-ahead 0)
  fetch_back=("$WS_BIN/walfetch" --prefetch 0 --repo "file://$repo")
  # Unencrypted objects are read without a key: with one they are refused (unauthenticated).
  if [[ $codec == none ]]; then
    args+=(--compression none)
  else
    args+=(--compression lz4 --key-file "$WS_TMP/key")
    fetch_back+=(--key-file "$WS_TMP/key")
  fi
  what="repository full ($codec, $free bytes free)"
  fill "$repo_fs" "$free"
  ws_expect_exit 9 "$what: walpush fails with no_space" "$WS_BIN/walpush" "${args[@]}" "$WS_TMP/wal/$seg"
  ws_contains "$what: the message says the file system is full" "$WS_ERR" "No space left on device"
  ws_check "$what: nothing listed" test ! -e "$obj"
  ws_expect_exit 1 "$what: walfetch says missing" "${fetch_back[@]}" "$seg" "$WS_TMP/fetched"
  ws_same "$what: no temp file left" "" "$(crash_temps "$repo_fs")"
  rm -f "$repo_fs/filler"
  ws_expect_exit 0 "$what: with space freed the retry succeeds" "$WS_BIN/walpush" "${args[@]}" "$WS_TMP/wal/$seg"
  rm -f "$WS_TMP/fetched"
  ws_expect_exit 0 "$what: walfetch" "${fetch_back[@]}" "$seg" "$WS_TMP/fetched"
  ws_check "$what: identical bytes" cmp "$WS_TMP/wal/$seg" "$WS_TMP/fetched"
  rm -f "$obj"
done

# --- the destination on a full file system -----------------------------------------------------
dest_fs=$WS_TMP/dest-fs
ws_mount_tmpfs "$dest_fs" 24m
mkdir -p "$dest_fs/pg_wal"
dest=$dest_fs/pg_wal/RECOVERYXLOG
fetch=("$WS_BIN/walfetch" --prefetch 0 --repo "file://$WS_TMP/sized" --key-file "$WS_TMP/key")
for free in 0 65536 1048576 8388608 16000000; do
  what="destination full ($free bytes free)"
  fill "$dest_fs" "$free"
  ws_expect_exit 126 "$what: walfetch exits 126, not 1" "${fetch[@]}" "$seg" "$dest"
  ws_contains "$what: the message says the file system is full" "$WS_ERR" "No space left on device"
  ws_check "$what: no DEST" test ! -e "$dest"
  ws_same "$what: no temp file left" "" "$(crash_temps "$dest_fs")"
  rm -f "$dest_fs/filler"
  ws_expect_exit 0 "$what: with space freed the retry succeeds" "${fetch[@]}" "$seg" "$dest"
  ws_check "$what: identical bytes" cmp "$WS_TMP/wal/$seg" "$dest"
  rm -f "$dest"
done
printf 'SUMMARY %-28s %d repository cases, 5 destination cases, %s s\n' "ENOSPC" "${#cases[@]}" \
  "$(crash_seconds $(($(crash_now_us) - t0)))"
ws_done
