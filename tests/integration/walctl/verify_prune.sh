#!/usr/bin/env bash
# walctl verify and prune on a real archive: three backups with writes between them;
# prune --keep-full 2 (dry run first) removes the oldest backup and exactly the WAL older
# than the oldest kept backup; the oldest kept backup still restores to the primary's final
# state; verify catches a deleted segment (reported as a name range), a flipped header byte
# and (with --full) a flipped body byte.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
pg_pgbench "$port" -i -q -s 2 >/dev/null 2>&1
for label in b1 b2 b3; do
  ws_expect_exit 0 "backup $label" "${walctl[@]}" backup -d "$conninfo" --label "$label" -q
  pg_pgbench "$port" -c 2 -t 200 -n >/dev/null 2>&1
  pg_switch_and_wait_archived "$port"
done
final_sum=$(pg_table_checksum "$port" pgbench_accounts)
pg_stop "$primary"

wal_names() { find "$repo_dir" -path '*/wal/*' -type f -printf '%f\n' | sort; }
ws_expect_exit 0 "verify of a healthy archive" "${walctl[@]}" verify --json
ws_same "verify JSON ok" True "$(wc_json 'j["ok"]')"
ws_expect_exit 0 "verify --full of a healthy archive" "${walctl[@]}" verify --full

# Dry run: says what would go, removes nothing.
before=$(wal_names)
ws_expect_exit 0 "prune --dry-run" "${walctl[@]}" prune --keep-full 2 --dry-run --json
ws_same "dry run would remove b1" "['b1']" "$(wc_json 'j["remove_backups"]')"
would_remove=$(wc_json '"\n".join(j["remove_wal"])')
ws_same "dry run removed nothing" "$before" "$(wal_names)"
ws_expect_exit 0 "show b2" "${walctl[@]}" show b2 --json
b2_start=$(wc_json 'j["wal_start"]')
expected=$(awk -v s="$b2_start" '($0 "") < s' <<<"$before")
ws_same "dry run lists exactly the WAL before b2's start" "$expected" "$would_remove"

ws_expect_exit 0 "prune --keep-full 2" "${walctl[@]}" prune --keep-full 2
ws_expect_exit 0 "list after prune" "${walctl[@]}" list --json
ws_same "b2 and b3 remain" "['b2', 'b3']" "$(wc_json '[b["label"] for b in j["backups"]]')"
ws_same "b1's objects are gone" 0 "$(find "$repo_dir" -path '*/backup/b1/*' -type f | wc -l)"
ws_same "WAL before b2's start is gone" "" "$(wal_names | awk -v s="$b2_start" '($0 "") < s')"
ws_same "WAL from b2's start on is kept" "$(awk -v s="$b2_start" '($0 "") >= s' <<<"$before")" "$(wal_names)"
ws_expect_exit 0 "verify after prune" "${walctl[@]}" verify

# The oldest kept backup replays all the kept WAL to the primary's final state.  The
# restored cluster keeps archiving (timeline 2), as after a real PITR: verify must follow
# the timeline switch.
if wc_restore_and_start "$WS_TMP/restore-b2" b2; then
  ws_pass "oldest kept backup restores"
  ws_same "restored from b2 to the end of the archive" "$final_sum" "$(pg_table_checksum "$rport" pgbench_accounts)"
  pg_pgbench "$rport" -c 2 -t 100 -n >/dev/null 2>&1
  pg_switch_and_wait_archived "$rport"
  pg_stop "$WS_TMP/restore-b2"
else
  ws_fail "oldest kept backup restores"
fi
ws_same "timeline 2 is archived with its history file" 1 "$(wal_names | grep -c '^00000002.history$')"
ws_expect_exit 0 "verify follows the switch to timeline 2" "${walctl[@]}" verify

# Damage 1: a deleted segment in the middle.
middle=$(wal_names | grep -E '^[0-9A-F]{24}$' | sed -n 2p)
middle_file=$(find "$repo_dir" -path "*/wal/*" -name "$middle")
mv "$middle_file" "$WS_TMP/saved-segment"
ws_expect_exit 1..125 "verify catches a deleted segment" "${walctl[@]}" verify
ws_contains "gap named as a range" "$WS_OUT" "GAP: timeline 1: $middle .. $middle"
ws_expect_exit 1..125 "verify --json reports the gap" "${walctl[@]}" verify --json
ws_same "JSON gap" "$middle" "$(wc_json 'j["gaps"][0]["first"]')"
mv "$WS_TMP/saved-segment" "$middle_file"

# Damage 1b: the same segment moved into another directory of the repository, where walfetch
# never looks.  Counting it by name would call the archive complete while a restore stops
# there; verify reports the gap and the misplaced object.
mkdir -p "$repo_dir/$(pg_system_id "$primary")/wal/moved"
mv "$middle_file" "$repo_dir/$(pg_system_id "$primary")/wal/moved/$middle"
ws_expect_exit 1..125 "verify catches a segment moved where walfetch does not look" "${walctl[@]}" verify
ws_contains "... as a gap" "$WS_OUT" "GAP: timeline 1: $middle .. $middle"
ws_contains "... and names the misplaced object" "$WS_OUT" "wal/moved/$middle is not where walfetch looks for $middle"
mv "$repo_dir/$(pg_system_id "$primary")/wal/moved/$middle" "$middle_file"
rmdir "$repo_dir/$(pg_system_id "$primary")/wal/moved"
ws_expect_exit 0 "verify clean again" "${walctl[@]}" verify

# Damage 2: a flipped byte in an object header, then in an object body.
cp -a "$middle_file" "$WS_TMP/saved-segment"
ws_flip_byte "$middle_file" 20
ws_expect_exit 1..125 "verify catches a flipped header byte" "${walctl[@]}" verify
ws_contains "the damaged object is named" "$WS_OUT" "$middle"
cp -a "$WS_TMP/saved-segment" "$middle_file"
ws_flip_byte "$middle_file" -2000
ws_expect_exit 1..125 "verify --full catches a flipped body byte" "${walctl[@]}" verify --full
ws_contains "the damaged object is named" "$WS_OUT" "$middle"
cp -a "$WS_TMP/saved-segment" "$middle_file"
b3_base=$(find "$repo_dir" -path '*/backup/b3/base.tar' -type f)
cp -a "$b3_base" "$WS_TMP/saved-base"
ws_flip_byte "$b3_base" -5000
ws_expect_exit 1..125 "verify --full catches a flipped byte in a backup" "${walctl[@]}" verify --full
ws_contains "the damaged backup object is named" "$WS_OUT" "b3/base.tar"
cp -a "$WS_TMP/saved-base" "$b3_base"
ws_expect_exit 0 "verify --full after repair" "${walctl[@]}" verify --full

# Leftovers of writers that died (temp files of a file repository): verify reports them
# without failing, prune removes them; a live process's recent temp file is left alone.
sleep 0 &
dead=$!
wait "$dead"
wal_dir=$(dirname "$middle_file")
dead_tmp=$wal_dir/.$middle.walstore-tmp.$dead.00000000abcd
old_tmp=$repo_dir/.x.walstore-tmp.$$.00000000abcd
live_tmp=$wal_dir/.$middle.walstore-tmp.$$.0000000000ef
for f in "$dead_tmp" "$old_tmp" "$live_tmp"; do head -c 3000 /dev/urandom >"$f"; done
touch -d '2 minutes ago' "$dead_tmp" "$live_tmp"
touch -d '2 days ago' "$old_tmp"
ws_expect_exit 0 "verify with leftovers still passes" "${walctl[@]}" verify
ws_contains "verify reports the dead writer's temp file" "$WS_OUT" "LEFTOVER: $dead_tmp"
ws_contains "verify reports a temp file untouched for two days" "$WS_OUT" "LEFTOVER: $old_tmp"
ws_not_contains "verify leaves out a live writer's recent temp file" "$WS_OUT" "$live_tmp"
ws_expect_exit 0 "verify --json" "${walctl[@]}" verify --json
ws_same "JSON lists two leftovers" 2 "$(wc_json 'len(j["leftovers"])')"
ws_expect_exit 0 "prune --dry-run lists leftovers" "${walctl[@]}" prune --keep-full 2 --dry-run --json
ws_same "dry run would remove both" True \
  "$(wc_json "sorted(j['remove_leftovers']) == sorted(['$dead_tmp', '$old_tmp'])")"
ws_check "dry run kept them" test -f "$dead_tmp" -a -f "$old_tmp"
ws_expect_exit 0 "prune removes leftovers" "${walctl[@]}" prune --keep-full 2
ws_contains "prune says so" "$WS_OUT" "removed leftover $dead_tmp"
ws_check "both are gone" test ! -e "$dead_tmp" -a ! -e "$old_tmp"
ws_check "the live writer's temp file stays" test -f "$live_tmp"
ws_expect_exit 0 "verify after prune" "${walctl[@]}" verify
ws_not_contains "no leftover reported any more" "$WS_OUT" "LEFTOVER:"
rm -f "$live_tmp"

ws_done
