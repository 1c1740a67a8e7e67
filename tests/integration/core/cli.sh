#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through ws_expect_exit / ws_check
# The real walpush / walfetch binaries against bad input, damage and races: every
# refusal must be clear, exit with the documented code, and write nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch

ws_log "making real WAL with pgbench"
wal=$WS_TMP/wal
ws_make_wal "$wal" 6
mapfile -t segs < <(ws_segments "$wal")
ws_log "segments: ${segs[*]} (system id $WS_WAL_SYSID)"

key=$WS_TMP/key
ws_make_key "$key"
repo=$WS_TMP/repo
mkdir -p "$repo" "$WS_TMP/out"
repo_opts=(--repo "file://$repo" --key-file "$key")
push() { "$WS_BIN/walpush" "${repo_opts[@]}" "$@"; }
fetch() { "$WS_BIN/walfetch" "${repo_opts[@]}" --system-id "$WS_WAL_SYSID" "$@"; }
repo_files() { find "$repo" -type f | wc -l; }
# The stored object of a segment (any extension), ignoring hidden temp files.
object_of() { find "${2:-$repo}" -type f -name "$1*" ! -name '.*' | head -n 1; }
dest=$WS_TMP/out/dest
expect_no_dest() {
  if [[ -e $dest ]]; then ws_fail "$1: $dest was created"; rm -f "$dest"; else ws_pass "$1: $dest not created"; fi
}
expect_repo_empty() {
  local n
  n=$(repo_files)
  if [[ $n == 0 ]]; then ws_pass "$1: repository still empty"; else ws_fail "$1: repository holds $n files"; fi
}

# ---- --help / --version -------------------------------------------------------------------
for tool in walpush walfetch; do
  ws_expect_exit 0 "$tool --help" "$WS_BIN/$tool" --help
  ws_contains "$tool --help shows usage" "${WS_OUT,,}" "usage"
  ws_contains "$tool --help names the tool" "$WS_OUT" "$tool"
  ws_expect_exit 0 "$tool --version" "$WS_BIN/$tool" --version
  ws_contains "$tool --version" "$WS_OUT" "walstore"
done
ws_expect_exit 2 "walpush with an unknown option is a usage error" "$WS_BIN/walpush" --no-such-option x
ws_contains "usage error names the option" "$WS_ERR" "--no-such-option"
# walfetch: any failure other than "missing" must stop recovery, so not 1.
ws_expect_exit 2..126 "walfetch with an unknown option fails, not as missing" "$WS_BIN/walfetch" --no-such-option a b
ws_contains "usage error names the option" "$WS_ERR" "--no-such-option"

# ---- bad names ------------------------------------------------------------------------------
lower=${segs[0],,}
lower=${lower:0:23}a
for name in '../../x' "$lower" "${segs[0]}1" "${segs[0]:0:23}" 'a/b' "${segs[0]}.tar"; do
  ws_expect_exit nonzero "walfetch refuses name '$name'" fetch "$name" "$dest"
  if [[ $WS_RC != 1 ]]; then ws_pass "walfetch '$name' is not reported as missing"; else ws_fail "walfetch '$name' reported as missing (exit 1)"; fi
  ws_contains "walfetch '$name' error names it" "$WS_ERR" "$name"
  expect_no_dest "walfetch '$name'"
done
mkdir -p "$WS_TMP/bad/d1/d2" "$WS_TMP/bad/a"
cp "$wal/${segs[0]}" "$WS_TMP/bad/$lower"
cp "$wal/${segs[0]}" "$WS_TMP/bad/${segs[0]:0:23}"
cp "$wal/${segs[0]}" "$WS_TMP/bad/${segs[0]}1"
cp "$wal/${segs[0]}" "$WS_TMP/bad/x"
cp "$wal/${segs[0]}" "$WS_TMP/bad/a/b"
for name in "$lower" "${segs[0]:0:23}" "${segs[0]}1"; do
  ws_expect_exit 1..125 "walpush refuses file name '$name'" push "$WS_TMP/bad/$name"
  ws_contains "walpush '$name' error names it" "$WS_ERR" "$name"
done
push_in() { (cd "$1" && shift && push "$@"); }
ws_expect_exit 1..125 "walpush refuses ../../x" push_in "$WS_TMP/bad/d1/d2" ../../x
ws_expect_exit 1..125 "walpush refuses a/b" push_in "$WS_TMP/bad" a/b
expect_repo_empty "bad names"

# ---- walpush input validation ---------------------------------------------------------------
mkdir -p "$WS_TMP/junk" "$WS_TMP/short" "$WS_TMP/tli" "$WS_TMP/segno"
head -c 16777216 /dev/urandom >"$WS_TMP/junk/${segs[1]}"
ws_expect_exit 1..125 "walpush refuses a 16 MiB file that is not WAL" push "$WS_TMP/junk/${segs[1]}"
head -c 1048576 "$wal/${segs[1]}" >"$WS_TMP/short/${segs[1]}"
ws_expect_exit 1..125 "walpush refuses a segment of the wrong size" push "$WS_TMP/short/${segs[1]}"
ws_contains "wrong size error names the size" "$WS_ERR" "1048576"
# A header on a newer timeline than the name's is refused.  (An older one is what PostgreSQL
# writes at the start of a timeline that began inside a segment: accepted, as the walctl
# standby_backup test shows with a real promotion.)
newer_tli=$WS_TMP/tli/${segs[1]}
cp "$wal/${segs[1]}" "$newer_tli"
printf '\x02\x00\x00\x00' | dd of="$newer_tli" bs=1 seek=4 conv=notrunc status=none
ws_expect_exit 1..125 "walpush refuses a segment whose header timeline is newer than its name's" \
  push "$newer_tli"
ws_contains "... naming the header's timeline" "$WS_ERR" "(timeline 2)"
other_seg=${segs[1]:0:16}$(printf '%08X' $((16#${segs[1]:16} + 40)))
cp "$wal/${segs[1]}" "$WS_TMP/segno/$other_seg"
ws_expect_exit 1..125 "walpush refuses a segment whose header segment disagrees with its name" \
  push "$WS_TMP/segno/$other_seg"
ws_expect_exit 1..125 "walpush of a missing file" push "$WS_TMP/junk/${segs[2]}"
mkdir -p "$WS_TMP/dir/${segs[2]}"
ws_expect_exit 1..125 "walpush of a directory" push "$WS_TMP/dir/${segs[2]}"
expect_repo_empty "invalid inputs"

# ---- test before overwrite ------------------------------------------------------------------
s0=${segs[0]}
ws_expect_exit 0 "walpush $s0" push "$wal/$s0"
obj=$(object_of "$s0")
if [[ -n $obj ]]; then ws_pass "object stored ($obj)"; else ws_die "no object stored for $s0"; fi
obj_sum=$(sha256sum <"$obj")
ws_expect_exit 0 "walpush of the same segment again" push "$wal/$s0"
ws_same "second push prints exactly one notice line" 1 "$(ws_line_count "$WS_OUT$WS_ERR")"
mkdir -p "$WS_TMP/changed"
cp "$wal/$s0" "$WS_TMP/changed/$s0"
# Change a few bytes well past the long page header: still a valid-looking segment.
printf 'walstore-changed!' | dd of="$WS_TMP/changed/$s0" bs=1 seek=200000 conv=notrunc status=none
sum_orig=$(sha256sum <"$wal/$s0" | cut -d' ' -f1)
sum_new=$(sha256sum <"$WS_TMP/changed/$s0" | cut -d' ' -f1)
ws_expect_exit 1..125 "walpush of different content under an archived name" push "$WS_TMP/changed/$s0"
ws_contains "conflict error names the stored checksum" "$WS_ERR" "$sum_orig"
ws_contains "conflict error names the new checksum" "$WS_ERR" "$sum_new"
ws_same "stored object unchanged after the conflict" "$obj_sum" "$(sha256sum <"$obj")"
ws_expect_exit 0 "walfetch after the conflict" fetch "$s0" "$dest"
ws_check "fetched segment is the original" cmp "$wal/$s0" "$dest"
rm -f "$dest"

# ---- --json and -q -------------------------------------------------------------------------
json_field() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
json_repo=(--repo "file://$WS_TMP/jsonrepo" --key-file "$key")
ws_repo_dir "$WS_TMP/jsonrepo"
ws_expect_exit 0 "walpush --json" "$WS_BIN/walpush" "${json_repo[@]}" --json "$wal/$s0"
ws_same "walpush --json outcome" stored "$(json_field outcome <<<"$WS_OUT")"
ws_same "walpush --json sha256" "$sum_orig" "$(json_field sha256 <<<"$WS_OUT")"
ws_expect_exit 0 "walpush --json again" "$WS_BIN/walpush" "${json_repo[@]}" --json "$wal/$s0"
ws_same "walpush --json outcome for an identical copy" already_archived "$(json_field outcome <<<"$WS_OUT")"
ws_expect_exit 0 "walpush -q of an identical copy" "$WS_BIN/walpush" "${json_repo[@]}" -q "$wal/$s0"
ws_same "walpush -q prints nothing" "" "$WS_OUT$WS_ERR"
# -v is log level info, -vv debug, in all three tools (AddCommonOptions, src/lib/common/cli.cc).
fetch_v=("$WS_BIN/walfetch" "${json_repo[@]}" --system-id "$WS_WAL_SYSID" --prefetch 0)
ws_expect_exit 0 "walfetch -v" "${fetch_v[@]}" -v "$s0" "$dest"
ws_contains "walfetch -v says what it restored (info)" "$WS_ERR" "walfetch: INFO:  restored $s0"
ws_same "walfetch -v prints no debug lines" no "$([[ $WS_ERR == *DEBUG* ]] && echo yes || echo no)"
rm -f "$dest"
ws_expect_exit 0 "walfetch -vv" "${fetch_v[@]}" -vv "$s0" "$dest"
ws_contains "walfetch -vv prints the configuration (debug)" "$WS_ERR" "walfetch: DEBUG:  repository="
rm -f "$dest"
for args in "2 walpush pg_wal/x" "126 walfetch x y" "2 walctl list"; do  # walfetch: 126 stops recovery
  read -r -a argv <<<"$args"
  ws_expect_exit "${argv[0]}" "${argv[1]} -q -v is a usage error" "$WS_BIN/${argv[1]}" -q -v "${argv[@]:2}"
  ws_contains "${argv[1]} says -q and -v exclude each other" "$WS_OUT$WS_ERR" "excludes"
done
ws_expect_exit 1 "walfetch --json of a missing segment" \
  "$WS_BIN/walfetch" "${json_repo[@]}" --system-id "$WS_WAL_SYSID" --json "${segs[5]}" "$dest"
ws_same "walfetch --json outcome" missing "$(json_field outcome <<<"$WS_OUT")"

# ---- walfetch: missing ----------------------------------------------------------------------
ws_expect_exit 1 "walfetch of a segment not in the repository" fetch "${segs[5]}" "$dest"
if (($(ws_line_count "$WS_OUT$WS_ERR") <= 1)); then ws_pass "missing segment: at most one line"; else ws_fail "missing segment printed: $WS_OUT$WS_ERR"; fi
expect_no_dest "missing segment"
ws_expect_exit 1 "walfetch of a missing .history file" fetch 00000007.history "$dest"
if (($(ws_line_count "$WS_OUT$WS_ERR") <= 1)); then ws_pass "missing history: at most one line"; else ws_fail "missing history printed: $WS_OUT$WS_ERR"; fi
expect_no_dest "missing history"

# ---- walfetch: damage, wrong key, no key -> 126 ---------------------------------------------
s1=${segs[1]}
ws_expect_exit 0 "walpush $s1" push "$wal/$s1"
obj1=$(object_of "$s1")
cp "$obj1" "$WS_TMP/obj1.good"
damage_case() { # DESC COMMAND...: damage obj1 with COMMAND, expect 126, then repair
  local desc=$1
  shift
  "$@"
  ws_expect_exit 126 "walfetch of $desc" fetch "$s1" "$dest"
  ws_contains "$desc: error message" "$WS_ERR" "ERROR"
  expect_no_dest "$desc"
  cp "$WS_TMP/obj1.good" "$obj1"
}
size1=$(stat -c %s "$obj1")
damage_case "an object truncated by 1000 bytes" truncate -s $((size1 - 1000)) "$obj1"
damage_case "an object truncated by 1 byte" truncate -s $((size1 - 1)) "$obj1"
damage_case "an object truncated to 100 bytes" truncate -s 100 "$obj1"
damage_case "an empty object" truncate -s 0 "$obj1"
damage_case "an object with a flipped byte in the header" ws_flip_byte "$obj1" 6
damage_case "an object with a flipped byte in the middle" ws_flip_byte "$obj1" $((size1 / 2))
damage_case "an object with a flipped last byte" ws_flip_byte "$obj1" -1
ws_make_key "$WS_TMP/other.key"
ws_expect_exit 126 "walfetch with a wrong key" \
  "$WS_BIN/walfetch" --repo "file://$repo" --key-file "$WS_TMP/other.key" --system-id "$WS_WAL_SYSID" "$s1" "$dest"
ws_contains "wrong key is named as such" "${WS_ERR,,}" "wrong key"
expect_no_dest "wrong key"
ws_expect_exit 126 "walfetch without a key of an encrypted object" \
  "$WS_BIN/walfetch" --repo "file://$repo" --system-id "$WS_WAL_SYSID" "$s1" "$dest"
ws_contains "missing key is explained" "${WS_ERR,,}" "key"
expect_no_dest "no key"
ws_expect_exit 0 "walfetch of the repaired object" fetch "$s1" "$dest"
ws_check "restored bytes identical" cmp "$wal/$s1" "$dest"
rm -f "$dest"

# ---- %p forms, system id from pg_control -----------------------------------------------------
pgdata=$WS_TMP/pgdata
mkdir -p "$pgdata/global" "$pgdata/pg_wal"
cp "$WS_WAL_DATADIR/global/pg_control" "$pgdata/global/"
fetch_in_datadir() { (cd "$pgdata" && "$WS_BIN/walfetch" --repo "file://$repo" --key-file "$key" "$@"); }
ws_expect_exit 0 "walfetch %f pg_wal/RECOVERYXLOG (system id from pg_control)" fetch_in_datadir "$s1" pg_wal/RECOVERYXLOG
ws_check "pg_wal/RECOVERYXLOG is the segment" cmp "$wal/$s1" "$pgdata/pg_wal/RECOVERYXLOG"
ws_expect_exit 0 "walfetch onto an existing pg_wal/RECOVERYXLOG" fetch_in_datadir "$s0" pg_wal/RECOVERYXLOG
ws_check "pg_wal/RECOVERYXLOG replaced by the new segment" cmp "$wal/$s0" "$pgdata/pg_wal/RECOVERYXLOG"
ws_expect_exit 0 "walfetch %f pg_wal/%f (pg_rewind form)" fetch_in_datadir "$s1" "pg_wal/$s1"
ws_check "pg_wal/$s1 is the segment" cmp "$wal/$s1" "$pgdata/pg_wal/$s1"
ws_wait_workers
ws_same "pg_wal holds the two files (besides the read-ahead spool)" 2 \
  "$(find "$pgdata/pg_wal" -mindepth 1 -maxdepth 1 ! -name .walstore-prefetch | wc -l)"
ws_same "no temp files left in pg_wal or the spool" 0 \
  "$(find "$pgdata/pg_wal" -name '*.walstore-tmp.*' | wc -l)"

# ---- system_id of another cluster than the data directory's: refused, nothing restored -------
# (before: exit 0 with this repository's cluster's segment restored into the other cluster)
other=$WS_TMP/other-cluster
mkdir -p "$other/global" "$other/pg_wal"
python3 -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("<Q", 4242) + bytes(8184))' \
  "$other/global/pg_control"
ws_expect_exit 126 "walfetch with system_id of another cluster than the data directory's" \
  bash -c "cd '$other' && '$WS_BIN/walfetch' --repo 'file://$repo' --key-file '$key' --system-id '$WS_WAL_SYSID' --prefetch 0 '$s1' pg_wal/RECOVERYXLOG"
ws_contains "the error names both clusters" "$WS_ERR" \
  "belongs to cluster 4242 (global/pg_control), but system_id is set to $WS_WAL_SYSID"
ws_check "nothing restored" test ! -e "$other/pg_wal/RECOVERYXLOG"

# ---- other file kinds: .history, .partial, .backup --------------------------------------------
mkdir -p "$WS_TMP/kinds"
printf '1\t0/3000000\tno recovery target specified\n' >"$WS_TMP/kinds/00000002.history"
cp "$wal/${segs[2]}" "$WS_TMP/kinds/${segs[2]}.partial"
printf 'START WAL LOCATION: 0/3000028 (file %s)\n' "${segs[2]}" >"$WS_TMP/kinds/${segs[2]}.00000028.backup"
for f in 00000002.history "${segs[2]}.partial" "${segs[2]}.00000028.backup"; do
  ws_expect_exit 0 "walpush $f" push --system-id "$WS_WAL_SYSID" "$WS_TMP/kinds/$f"
  ws_expect_exit 0 "walfetch $f" fetch "$f" "$dest"
  ws_check "$f restored intact" cmp "$WS_TMP/kinds/$f" "$dest"
  rm -f "$dest"
done
ws_expect_exit 1..125 "walpush of a .history file without a system id refuses" \
  "$WS_BIN/walpush" --repo "file://$repo" --key-file "$key" "$WS_TMP/kinds/00000002.history"
ws_contains "missing system id error says what to set" "${WS_ERR,,}" "system"

# ---- key file readable by others ------------------------------------------------------------
cp "$key" "$WS_TMP/open.key"
chmod 0644 "$WS_TMP/open.key"
ws_expect_exit 1..125 "walpush refuses a key file readable by others" \
  "$WS_BIN/walpush" --repo "file://$repo" --key-file "$WS_TMP/open.key" "$wal/${segs[2]}"
ws_contains "key file error names the file" "$WS_ERR" "$WS_TMP/open.key"
ws_expect_exit 126 "walfetch refuses a key file readable by others (stops recovery)" \
  "$WS_BIN/walfetch" --repo "file://$repo" --key-file "$WS_TMP/open.key" --system-id "$WS_WAL_SYSID" "$s1" "$dest"
expect_no_dest "open key file"
ws_expect_exit 1 "nothing stored with the refused key file" fetch "${segs[2]}" "$dest"

# ---- two walpush racing on the same segment --------------------------------------------------
race_repo=$WS_TMP/race
mkdir -p "$race_repo"
for s in "${segs[2]}" "${segs[3]}" "${segs[4]}"; do
  "$WS_BIN/walpush" --repo "file://$race_repo" --key-file "$key" "$wal/$s" >"$WS_TMP/race1.out" 2>&1 &
  p1=$!
  "$WS_BIN/walpush" --repo "file://$race_repo" --key-file "$key" "$wal/$s" >"$WS_TMP/race2.out" 2>&1 &
  p2=$!
  rc1=0 rc2=0
  wait "$p1" || rc1=$?
  wait "$p2" || rc2=$?
  ws_same "racing walpush on $s both succeed" "0 0" "$rc1 $rc2"
  [[ "$rc1 $rc2" == "0 0" ]] || cat "$WS_TMP/race1.out" "$WS_TMP/race2.out"
  ws_expect_exit 0 "walfetch after the race" \
    "$WS_BIN/walfetch" --repo "file://$race_repo" --key-file "$key" --system-id "$WS_WAL_SYSID" "$s" "$dest"
  ws_check "raced object intact" cmp "$wal/$s" "$dest"
  rm -f "$dest"
done
ws_same "one object per raced segment" 3 \
  "$(find "$race_repo" -type f ! -name '.*' ! -name walstore-repository.json | wc -l)"

# ---- full disk --------------------------------------------------------------------------------
if ws_is_root; then
  full=$WS_TMP/full
  ws_mount_tmpfs "$full" 8m
  ws_repo_dir "$full/repo"
  ws_expect_exit 1..125 "walpush onto a full file system" \
    "$WS_BIN/walpush" --repo "file://$full/repo" --compression none --key-file "$key" "$wal/${segs[3]}"
  ws_contains "full disk error says so" "${WS_ERR,,}" "space"
  ws_expect_exit 1 "nothing published on the full file system" \
    "$WS_BIN/walfetch" --repo "file://$full/repo" --key-file "$key" --system-id "$WS_WAL_SYSID" "${segs[3]}" "$dest"
  ws_same "no partial file left on the full file system" 0 \
    "$(find "$full" -type f ! -name walstore-repository.json | wc -l)"
else
  ws_log "not root: full-disk checks skipped"
fi

# ---- walpush killed mid-way -------------------------------------------------------------------
# A cluster with 1 GiB segments: its first segment is real WAL that takes long enough to push.
big=$WS_TMP/big
ws_pg_dir "$big"
as_pg "$PG_BIN/initdb" -D "$big/data" -U postgres --auth=trust --wal-segsize=1024 -N >/dev/null 2>&1
bigseg=$(ws_segments "$big/data/pg_wal" | head -n 1)
kill_repo=$WS_TMP/killrepo
mkdir -p "$kill_repo"
"$WS_BIN/walpush" --repo "file://$kill_repo" --compression none --key-file "$key" \
  "$big/data/pg_wal/$bigseg" >/dev/null 2>&1 &
kpid=$!
killed=0
for ((i = 0; i < 2000; i++)); do
  if [[ -n $(find "$kill_repo" -type f -size +1M 2>/dev/null) ]]; then
    kill -KILL "$kpid" 2>/dev/null && killed=1
    break
  fi
  kill -0 "$kpid" 2>/dev/null || break
  sleep 0.01
done
wait "$kpid" 2>/dev/null || true
if [[ $killed == 1 ]]; then ws_pass "walpush of a 1 GiB segment killed while writing"; else ws_fail "could not kill walpush while it was writing"; fi
big_fetch=$WS_TMP/big/fetched
big_fetch_cmd=("$WS_BIN/walfetch" --repo "file://$kill_repo" --key-file "$key" --system-id "$(pg_system_id "$big/data")")
ws_expect_exit 1 "no visible object after the kill" "${big_fetch_cmd[@]}" "$bigseg" "$big_fetch"
ws_expect_exit 0 "walpush rerun after the kill" \
  "$WS_BIN/walpush" --repo "file://$kill_repo" --compression none --key-file "$key" "$big/data/pg_wal/$bigseg"
ws_expect_exit 0 "walfetch of the 1 GiB segment" "${big_fetch_cmd[@]}" "$bigseg" "$big_fetch"
ws_check "1 GiB segment restored intact" cmp "$big/data/pg_wal/$bigseg" "$big_fetch"
rm -rf "$big" "$kill_repo"

ws_not_contains "the key never appears in any output" "$(cat "$WS_TMP/transcript")" "$(cat "$key")"
ws_done
