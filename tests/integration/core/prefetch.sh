#!/usr/bin/env bash
# walfetch read-ahead (include/walstore/prefetch.h) on real WAL from pgbench: after each restored
# segment a detached worker spools the next ones, verified, beside %p; the next call moves the
# spooled file into place.  Every way a spool can go wrong must end in the right bytes or the
# usual error, never in wrong WAL: an empty or truncated file, another segment's content, a stale
# file, another repository's spool, a damaged object in the window, the end of the archive.
# (The PITR tests run a real recovery with prefetch on, the default.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch

ws_log "making WAL with pgbench"
WS_WAL_SCALE=2 ws_make_wal "$WS_TMP/wal" 12
mapfile -t segs < <(ws_segments "$WS_TMP/wal" | head -n 12)
ws_log "${#segs[@]} segments ${segs[0]}..${segs[-1]}"

repo=$WS_TMP/repo
ws_repo_dir "$repo"
ws_make_key "$WS_TMP/key"
opts=(--repo "file://$repo" --key-file "$WS_TMP/key" --system-id "$WS_WAL_SYSID")
for s in "${segs[@]}"; do "$WS_BIN/walpush" "${opts[@]}" --compression lz4 "$WS_TMP/wal/$s"; done
last=${#segs[@]}

data=$WS_TMP/data
mkdir -p "$data/pg_wal"
spool=$data/pg_wal/.walstore-prefetch
dest=pg_wal/RECOVERYXLOG

# fetch I [ARGS...]: walfetch of segment I into $dest, run from the data directory like PostgreSQL.
fetch() {
  local i=$1
  shift
  rm -f "$data/$dest"
  (cd "$data" && "$WS_BIN/walfetch" "${opts[@]}" --prefetch 3 --json "$@" "${segs[$i]}" "$dest")
}
# spooled [DIR]: the segment names in a spool, space-separated (each followed by a space).
spooled() { find "${1:-$spool}" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' -printf '%f\n' | sort | tr '\n' ' '; }
same_as() { cmp -s "$WS_TMP/wal/${segs[$1]}" "$2"; }

# 1. The first fetch comes from the repository and starts a worker for the next 3.
ws_run fetch 0
ws_same "segment 0 restored (exit 0)" 0 "$WS_RC"
ws_contains "segment 0 came from the repository" "$WS_OUT" '"prefetched":false'
ws_check "segment 0 has the right bytes" same_as 0 "$data/$dest"
ws_wait_workers
ws_same "the worker spooled the next three segments" "${segs[1]} ${segs[2]} ${segs[3]} " "$(spooled)"
for i in 1 2 3; do ws_check "spooled segment $i is byte-identical" same_as "$i" "$spool/${segs[$i]}"; done
ws_contains "the spool records its repository and cluster" "$(cat "$spool/origin")" \
  "repository=file://$repo"
ws_same "spooled files are private to the server's user" "600" "$(stat -c %a "$spool/${segs[1]}")"

# 2. The next fetch is served from the spool and moves the window on.
ws_run fetch 1
ws_contains "segment 1 served from the spool" "$WS_OUT" '"prefetched":true'
ws_check "segment 1 has the right bytes" same_as 1 "$data/$dest"
ws_wait_workers
ws_same "window moved: segments 2..4 spooled" "${segs[2]} ${segs[3]} ${segs[4]} " "$(spooled)"

# 3. Damage in the spool is never served: each case falls back to the repository.
: >"$spool/${segs[2]}"
ws_run fetch 2 -q
ws_same "empty spooled file: fetched again (exit 0)" 0 "$WS_RC"
ws_contains "empty spooled file: not served" "$WS_OUT" '"prefetched":false'
ws_contains "empty spooled file: a warning says why" "$WS_ERR" "discarding prefetched"
ws_check "empty spooled file: the right bytes" same_as 2 "$data/$dest"
ws_wait_workers

cp "$WS_TMP/wal/${segs[5]}" "$spool/${segs[3]}"
ws_run fetch 3 -q
ws_contains "another segment's content: not served" "$WS_OUT" '"prefetched":false'
ws_contains "another segment's content: the header mismatch is named" "$WS_ERR" "WAL header describes segment"
ws_check "another segment's content: the right bytes" same_as 3 "$data/$dest"
ws_wait_workers

truncate -s 8192 "$spool/${segs[4]}"
ws_run fetch 4 -q
ws_contains "truncated spooled file: not served" "$WS_OUT" '"prefetched":false'
ws_check "truncated spooled file: the right bytes" same_as 4 "$data/$dest"
ws_wait_workers

touch -d '-20 minutes' "$spool/${segs[5]}"
ws_run fetch 5 -q
ws_contains "stale spooled file: not served" "$WS_OUT" '"prefetched":false'
ws_contains "stale spooled file: its age is the reason" "$WS_ERR" "older than 600 seconds"
ws_check "stale spooled file: the right bytes" same_as 5 "$data/$dest"
ws_wait_workers

printf 'repository=file:///elsewhere\nsystem_id=1\n' >"$spool/origin"
ws_run fetch 6 -q
ws_contains "spool of another repository: not served" "$WS_OUT" '"prefetched":false'
ws_check "spool of another repository: the right bytes" same_as 6 "$data/$dest"
ws_wait_workers
ws_contains "the worker took the spool over for this repository" "$(cat "$spool/origin")" \
  "repository=file://$repo"
ws_same "and refilled the window" "${segs[7]} ${segs[8]} ${segs[9]} " "$(spooled)"

# 4. A damaged object inside the window: the worker stops there and logs why; walfetch of that
#    segment reports the damage (126), it is never served or reported missing.
obj=$(find "$repo" -type f -name "${segs[10]}" | head -n 1)
ws_flip_byte "$obj" 300
ws_run fetch 7
ws_contains "segment 7 served" "$WS_OUT" '"prefetched":true'
ws_wait_workers
ws_same "the worker spooled up to the damaged segment only" "${segs[8]} ${segs[9]} " "$(spooled)"
ws_contains "the worker logged the damage" "$(cat "$spool/prefetch.log")" "is damaged"
ws_run fetch 8
ws_run fetch 9
ws_wait_workers
ws_expect_exit 126 "walfetch of the damaged segment stops recovery" fetch 10
ws_contains "and says it is damaged" "$WS_ERR" "is damaged"
ws_flip_byte "$obj" 300

# 5. The end of the archive: the worker stops at the first missing segment; the missing one
#    is reported missing (exit 1), not taken from anywhere else.
ws_run fetch 10
ws_check "repaired segment 10 restored" same_as 10 "$data/$dest"
ws_wait_workers
ws_same "nothing past the end of the archive is spooled" "${segs[11]} " "$(spooled)"
next=$(printf '%s%08X' "${segs[11]:0:16}" $((16#${segs[11]:16} + 1)))
rm -f "$data/$dest"
ws_expect_exit 1 "a segment past the end is missing" \
  bash -c "cd '$data' && '$WS_BIN/walfetch' ${opts[*]} $next $dest"
[[ ! -e $data/$dest ]] && ws_pass "nothing written for the missing segment" ||
  ws_fail "a file was written for a missing segment"

# 6. prefetch = 0: no worker and no spool.
mkdir -p "$WS_TMP/data0/pg_wal"
ws_check "WALSTORE_PREFETCH=0 fetch" bash -c \
  "cd '$WS_TMP/data0' && WALSTORE_PREFETCH=0 '$WS_BIN/walfetch' ${opts[*]} ${segs[0]} pg_wal/RECOVERYXLOG"
[[ ! -e $WS_TMP/data0/pg_wal/.walstore-prefetch ]] && ws_pass "no spool without prefetch" ||
  ws_fail "a spool was made with prefetch = 0"
ws_expect_exit 126 "a prefetch depth out of range is refused (walfetch: 126)" bash -c \
  "cd '$WS_TMP/data0' && '$WS_BIN/walfetch' ${opts[*]} --prefetch 65 ${segs[0]} pg_wal/RECOVERYXLOG"
ws_contains "and the message gives the range" "$WS_ERR" "prefetch must be between 0 (off) and 64"

# 7. Little free space: the worker stops rather than take the room a fetch needs (a 48 MiB
#    pg_wal holds the restored segment, but not 3 more plus the reserve).
if ws_is_root; then
  ws_mount_tmpfs "$WS_TMP/data1/pg_wal" 48m
  ws_check "fetch into a small pg_wal" bash -c \
    "cd '$WS_TMP/data1' && '$WS_BIN/walfetch' ${opts[*]} --prefetch 3 ${segs[0]} pg_wal/RECOVERYXLOG"
  ws_wait_workers
  ws_same "nothing spooled on a nearly full file system" "" \
    "$(spooled "$WS_TMP/data1/pg_wal/.walstore-prefetch")"
  ws_contains "the worker says why it stopped" \
    "$(cat "$WS_TMP/data1/pg_wal/.walstore-prefetch/prefetch.log")" "read-ahead stops at"
fi

# 8. walpush on a primary removes what a finished recovery left behind (stale files only).
cp "$WS_TMP/wal/${segs[0]}" "$data/pg_wal/${segs[0]}"
touch -d '-20 minutes' "$spool/${segs[11]}"
cp "$WS_TMP/wal/${segs[1]}" "$spool/fresh-file"
ws_check "walpush of an archived segment succeeds" \
  "$WS_BIN/walpush" "${opts[@]}" --compression lz4 "$data/pg_wal/${segs[0]}"
[[ ! -e $spool/${segs[11]} ]] && ws_pass "walpush removed a stale spooled segment" ||
  ws_fail "stale spooled segment left behind"
[[ -e $spool/fresh-file ]] && ws_pass "walpush kept a fresh file" || ws_fail "walpush removed a fresh file"

ws_done
