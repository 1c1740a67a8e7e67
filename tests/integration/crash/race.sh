#!/usr/bin/env bash
# Two walpush processes archiving the same name at the same moment, on a file
# repository with lz4 + key, CRASH_RACE_ROUNDS (30) times each way:
#  - the same content: both exit 0 and the stored object is the segment;
#  - different content (a copy of the segment with one byte changed in a page body, which still
#    passes walpush's header checks): exactly one exits 0, the other exits 7 (conflict), and the
#    stored object is intact and is the winner's bytes.
# No temp file is left behind (nobody was killed).  S3 is not raced here: s3rver ignores
# If-None-Match and writes a PUT's body straight into the object's file (docs/s3.md).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/integration/crash/crash_lib.sh
. "$here/crash_lib.sh"
ws_setup
ws_require_tool walpush walfetch
rounds=${CRASH_RACE_ROUNDS:-30}

WS_WAL_SCALE=1 ws_make_wal "$WS_TMP/wal" 1
seg=$(ws_segments "$WS_TMP/wal" | head -n 1)
export WALSTORE_SYSTEM_ID=$WS_WAL_SYSID
mine=$WS_TMP/wal/$seg
# The other server's segment: same name, one byte changed in the body of a page in the middle.
mkdir -p "$WS_TMP/other"
theirs=$WS_TMP/other/$seg
cp "$mine" "$theirs"
ws_flip_byte "$theirs" $((8 * 1024 * 1024 + 4000))
repo=$WS_TMP/repo
ws_repo_dir "$repo" "$WS_TMP/scratch"
ws_make_key "$WS_TMP/key"
export WALSTORE_REPO=file://$repo WALSTORE_COMPRESSION=lz4 WALSTORE_ENCRYPTION_KEY_FILE=$WS_TMP/key
push=("$WS_BIN/walpush" --push-ahead 0)
obj=$repo/$WALSTORE_SYSTEM_ID/wal/${seg:0:16}/$seg
ws_expect_exit 0 "the changed copy is a valid segment for walpush" \
  "$WS_BIN/walpush" --repo "file://$WS_TMP/scratch" "$theirs"

# race A B: both pushes at once into an empty slot; RC_A, RC_B their exit codes.
race() {
  local pa pb
  rm -f "$obj"
  "${push[@]}" "$1" >"$WS_TMP/a.out" 2>"$WS_TMP/a.err" &
  pa=$!
  "${push[@]}" "$2" >"$WS_TMP/b.out" 2>"$WS_TMP/b.err" &
  pb=$!
  RC_A=0 RC_B=0
  wait "$pa" || RC_A=$?
  wait "$pb" || RC_B=$?
}
# stored_is FILE: the stored object decodes to FILE's bytes.
stored_is() {
  rm -f "$WS_TMP/fetched"
  "$WS_BIN/walfetch" --prefetch 0 "$seg" "$WS_TMP/fetched" 2>/dev/null && cmp -s "$1" "$WS_TMP/fetched"
}

t0=$(crash_now_us)
bad=0
for ((r = 0; r < rounds; r++)); do
  race "$mine" "$mine"
  if [[ $RC_A -ne 0 || $RC_B -ne 0 ]] || ! stored_is "$mine"; then
    bad=$((bad + 1))
    ws_fail "same content, round $r: exits $RC_A and $RC_B, stored intact: $(stored_is "$mine" && echo yes || echo no)"
    sed 's/^/     /' "$WS_TMP/a.err" "$WS_TMP/b.err"
  fi
done
ws_same "same content at once: both exit 0 and the object is the segment ($rounds rounds)" 0 "$bad"
same_us=$(($(crash_now_us) - t0))

t0=$(crash_now_us)
bad=0
wins_first=0
for ((r = 0; r < rounds; r++)); do
  # Alternate which one starts first.
  if ((r % 2 == 0)); then a=$mine b=$theirs; else a=$theirs b=$mine; fi
  race "$a" "$b"
  winner=
  if [[ $RC_A -eq 0 && $RC_B -eq 7 ]]; then
    winner=$a
    wins_first=$((wins_first + 1))
  elif [[ $RC_A -eq 7 && $RC_B -eq 0 ]]; then
    winner=$b
  fi
  if [[ -z $winner ]] || ! stored_is "$winner"; then
    bad=$((bad + 1))
    ws_fail "different content, round $r: exits $RC_A and $RC_B (expected 0 and 7 in some order), stored object is the winner's: $([[ -n $winner ]] && stored_is "$winner" && echo yes || echo no)"
    sed 's/^/     /' "$WS_TMP/a.err" "$WS_TMP/b.err"
  fi
done
ws_same "different content at once: one exits 0, the other 7, the object is the winner's ($rounds rounds)" 0 "$bad"
ws_contains "the loser says why" "$(cat "$WS_TMP/a.err" "$WS_TMP/b.err")" "already archived with different content"
diff_us=$(($(crash_now_us) - t0))
ws_same "no temp file left in the repository" "" "$(crash_temps "$repo")"
printf 'SUMMARY %-28s %4d rounds, %s s\n' "race same content" "$rounds" "$(crash_seconds "$same_us")"
printf 'SUMMARY %-28s %4d rounds (first started won %d), %s s\n' "race different content" "$rounds" \
  "$wins_first" "$(crash_seconds "$diff_us")"
ws_done
