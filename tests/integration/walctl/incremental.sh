#!/usr/bin/env bash
# walctl backup --type diff|incr on a real PostgreSQL 15: full -> update of a contiguous 3 % of
# pgbench_accounts (scale 10, next to a static table of similar size) -> incr (stores at most
# 10 % of the full's bytes) -> pgbench load -> diff -> load -> incr.  Every backup restores to its
# own point and the chain ones to a later --target-time, with identical table checksums;
# list/show --json give type, reference, chain and sizes; verify --full is clean; a damaged
# backup of a chain fails the restore of its dependents and verify names them; an incr whose
# chain is removed while it runs is not recorded, and no incr builds on a broken chain.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

# WC_INCR_SCALE: pgbench scale (10; the static table and the 3 % follow it).
scale=${WC_INCR_SCALE:-10}
wc_primary
pg_pgbench "$port" -i -q -s "$scale" >/dev/null 2>&1
pg_psql "$port" "create table static_data as select g as id, md5(g::text) || md5((-g)::text) as v
                 from generate_series(1, $((scale * 120000))) g"
pg_psql "$port" "create table doomed as select g from generate_series(1, 50000) g"
pg_psql "$port" "vacuum (freeze, analyze)"

# Refusals before any full backup exists.
ws_expect_exit 2 "an incr without any full backup is refused" \
  "${walctl[@]}" backup -d "$conninfo" --type incr --label too-early
ws_contains "the refusal says to take a full backup" "$WS_ERR" "take a full backup first"
ws_expect_exit 2 "a diff without any full backup is refused" \
  "${walctl[@]}" backup -d "$conninfo" --type diff --label too-early
ws_expect_exit 2 "an unknown type is refused" "${walctl[@]}" backup -d "$conninfo" --type half

# table_sum PORT TABLE: a checksum of the table's rows (a sum of 64-bit row hashes: no sort,
# so it stays quick at 1 M rows on a loaded machine; equal iff the contents are equal).
table_sum() {
  pg_psql "$1" "select count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) from $2 t"
}

# stored_of LABEL: the stored bytes of a backup in list --json.
stored_of() {
  ws_run "${walctl[@]}" list --json
  wc_json "[b for b in j['backups'] if b['label'] == '$1'][0]['stored_size']"
}
now_utc() { pg_psql "$port" "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"; }

# 1. full, then 3 % of pgbench_accounts (aid 1..30000 of 1000000 at scale 10) updated, then incr.
ws_expect_exit 0 "full backup" "${walctl[@]}" backup -d "$conninfo" --label full1 --json
ws_same "full: type" full "$(wc_json 'j["type"]')"
ws_same "full: record format 1 (readable by older walctl)" 1 "$(wc_json 'j["format"]')"
ws_same "full: has a block map" blockmap "$(wc_json 'j["blockmap"]["name"]')"
sum_full=$(table_sum "$port" pgbench_accounts)
static_sum=$(table_sum "$port" static_data)

pg_psql "$port" "update pgbench_accounts set abalance = abalance + 7 where aid <= $((scale * 3000))"
sum_incr1=$(table_sum "$port" pgbench_accounts)
ws_expect_exit 0 "incr after a 3 % update" "${walctl[@]}" backup -d "$conninfo" --type incr --label incr1 --json
ws_same "incr1: type" incr "$(wc_json 'j["type"]')"
ws_same "incr1: reference" full1 "$(wc_json 'j["reference"]')"
ws_same "incr1: record format 2 (refused by older walctl)" 2 "$(wc_json 'j["format"]')"
ws_same "incr1: stored as delta archives" base.delta "$(wc_json 'j["archives"][0]["name"]')"
incr1_logical=$(wc_json 'j["logical_size"]')
full_stored=$(stored_of full1)
incr1_stored=$(stored_of incr1)
ratio=$(python3 -c "print(f'{$incr1_stored / $full_stored * 100:.2f}')")
ws_log "3 % update: incr1 stored $incr1_stored bytes, full1 $full_stored bytes: $ratio %"
ws_same "incr1 stores at most 10 % of the full's stored bytes ($ratio %)" True \
  "$(python3 -c "print($incr1_stored <= $full_stored / 10)")"
ws_same "incr1's logical size is the whole data directory" True \
  "$(python3 -c "print($incr1_logical > 10 * $incr1_stored)")"
pg_pgbench "$port" -c 2 -t 200 -n >/dev/null 2>&1
sum_after_incr1=$(table_sum "$port" pgbench_accounts)
sleep 1.2
time_after_incr1=$(now_utc)
sleep 1.2

# 2. load, diff (against full1); load, incr (against diff1); a later time.
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
sum_diff1=$(table_sum "$port" pgbench_accounts)
ws_expect_exit 0 "diff" "${walctl[@]}" backup -d "$conninfo" --type diff --label diff1 --json
ws_same "diff1: reference is the full" full1 "$(wc_json 'j["reference"]')"
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
pg_psql "$port" "create table later as select g from generate_series(1, 1000) g; drop table doomed"
sum_incr2=$(table_sum "$port" pgbench_accounts)
ws_expect_exit 0 "incr after the diff" "${walctl[@]}" backup -d "$conninfo" --type incr --label incr2 --json
ws_same "incr2: reference is the diff" diff1 "$(wc_json 'j["reference"]')"
ws_same "incr2: chain" "['full1', 'diff1']" "$(wc_json 'j["chain"]')"
pg_pgbench "$port" -c 2 -t 200 -n >/dev/null 2>&1
sum_after_incr2=$(table_sum "$port" pgbench_accounts)
sleep 1.2
time_after_incr2=$(now_utc)
sleep 1.2
pg_pgbench "$port" -c 2 -t 200 -n >/dev/null 2>&1
pg_switch_and_wait_archived "$port"

ws_expect_exit 0 "walctl list --json" "${walctl[@]}" list --json
ws_same "list: types in order" "['full', 'incr', 'diff', 'incr']" "$(wc_json '[b["type"] for b in j["backups"]]')"
ws_same "list: references" "[None, 'full1', 'full1', 'diff1']" "$(wc_json '[b["reference"] for b in j["backups"]]')"
ws_same "list: stored and logical sizes" True \
  "$(wc_json 'all(b["stored_size"] > 0 and b["logical_size"] > 0 for b in j["backups"])')"
ws_expect_exit 0 "walctl show incr2" "${walctl[@]}" show incr2
ws_contains "show names the chain" "$WS_OUT" "chain full1 -> diff1 -> incr2"
ws_expect_exit 0 "walctl list (text)" "${walctl[@]}" list
ws_contains "list text names the reference" "$WS_OUT" "<- diff1"
ws_expect_exit 0 "verify --full is clean" "${walctl[@]}" verify --full

# 3. Every backup to its own point; the incrs also to a later time.
# restore_check NAME BACKUP EXPECTED_SUM [restore args...]
restore_check() {
  local name=$1 label=$2 expected=$3
  shift 3
  if wc_restore_and_start "$WS_TMP/r-$name" "$label" --archive-mode off "$@"; then
    ws_same "$name: pgbench_accounts" "$expected" "$(table_sum "$rport" pgbench_accounts)"
    if [[ $name == incr2-own ]]; then
      ws_same "$name: static table" "$static_sum" "$(table_sum "$rport" static_data)"
      ws_same "$name: table created before incr2" 1000 "$(pg_psql "$rport" "select count(*) from later")"
      ws_same "$name: table dropped before incr2 is gone" 0 \
        "$(pg_psql "$rport" "select count(*) from pg_class where relname = 'doomed'")"
    fi
    pg_stop "$WS_TMP/r-$name"
    ws_wait_workers # walfetch's read-ahead worker can outlive the server, writing in its pg_wal
    rm -rf "$WS_TMP/r-$name"
  else
    ws_fail "$name: restore and recovery"
  fi
}
restore_check full1-own full1 "$sum_full" --target-immediate
restore_check incr1-own incr1 "$sum_incr1" --target-immediate
restore_check incr1-later incr1 "$sum_after_incr1" --target-time "$time_after_incr1" --target-action promote
restore_check diff1-own diff1 "$sum_diff1" --target-immediate
restore_check incr2-own incr2 "$sum_incr2" --target-immediate
restore_check incr2-later incr2 "$sum_after_incr2" --target-time "$time_after_incr2" --target-action promote

# 4. A damaged full: restoring its dependents fails loudly; verify names every one.
sysid=$(pg_system_id "$primary")
wc_object_damage "$sysid/backup/full1/base.tar" 300000
ws_expect_exit 10 "restore of incr2 with a damaged full in its chain fails" \
  "${walctl[@]}" restore incr2 "$WS_TMP/r-damaged"
ws_same "nothing is left of the failed restore" 0 "$(find "$WS_TMP/r-damaged" -mindepth 1 2>/dev/null | wc -l)"
ws_expect_exit 1..125 "verify --full with a damaged full fails" "${walctl[@]}" verify --full
ws_contains "verify names incr2 as unrestorable" "$WS_OUT$WS_ERR" "backup incr2 (incr) cannot be restored: backup full1 of its chain is damaged"
ws_contains "verify names diff1 as unrestorable" "$WS_OUT$WS_ERR" "backup diff1 (diff) cannot be restored"
wc_object_repair "$sysid/backup/full1/base.tar"
# A damaged delta: its own restore fails, the full still restores.
wc_object_damage "$sysid/backup/diff1/base.delta" 5000
ws_expect_exit 10 "restore of a damaged diff fails" "${walctl[@]}" restore diff1 "$WS_TMP/r-damaged"
ws_expect_exit 10 "restore of an incr on a damaged diff fails" "${walctl[@]}" restore incr2 "$WS_TMP/r-damaged"
ws_expect_exit 1..125 "verify --full with a damaged diff fails" "${walctl[@]}" verify --full
ws_contains "verify names incr2 (on the damaged diff)" "$WS_OUT$WS_ERR" "backup incr2 (incr) cannot be restored: backup diff1 of its chain is damaged"
ws_not_contains "verify does not blame incr1 (not on the diff)" "$WS_OUT$WS_ERR" "backup incr1 (incr) cannot"
wc_object_repair "$sysid/backup/diff1/base.delta"
ws_expect_exit 0 "verify --full is clean again" "${walctl[@]}" verify --full

# 5. Retention over the chain: one full keeps all its diffs and incrs; --dry-run shows chains.
ws_expect_exit 0 "prune --keep-full 1 --dry-run --json" "${walctl[@]}" prune --keep-full 1 --dry-run --json
ws_same "keep-full 1 keeps the full with its diffs and incrs" "['full1', 'incr1', 'diff1', 'incr2']" \
  "$(wc_json 'j["keep_backups"]')"
ws_same "the dry run gives incr2's chain" "['full1', 'diff1', 'incr2']" "$(wc_json 'j["chains"]["incr2"]')"
ws_expect_exit 0 "prune --keep-full 1 --dry-run" "${walctl[@]}" prune --keep-full 1 --dry-run
ws_contains "the dry run prints incr2 with its chain" "$WS_OUT" "would keep backup incr2 (incr, chain full1 <- diff1 <- incr2)"

# 6. A chain removed while an incr runs (what a prune that cannot see the running backup does):
#    the incr is not recorded and exits non-zero; the next incr refuses a reference whose
#    chain is broken instead of building on it.  Archiving is held so that incr3 waits for its
#    WAL after streaming, with its chain already fixed.
pg_psql "$port" "alter system set archive_command = 'false'" >/dev/null
pg_psql "$port" "select pg_reload_conf()" >/dev/null
pg_psql "$port" "update pgbench_accounts set abalance = abalance + 1 where aid <= 100" >/dev/null
"${walctl[@]}" backup -d "$conninfo" --type incr --label incr3 --wal-timeout 120 \
  >"$WS_TMP/incr3.out" 2>"$WS_TMP/incr3.err" &
incr3_pid=$!
incr3_manifest=$repo_dir/$sysid/backup/incr3/backup_manifest
for _ in $(seq 1200); do
  [[ -e $incr3_manifest ]] && break
  sleep 0.1
done
ws_same "incr3 streamed and waits for its WAL" yes "$([[ -e $incr3_manifest ]] && echo yes || echo no)"
rm -rf "${repo_dir:?}/$sysid/backup/diff1"
pg_psql "$port" "alter system reset archive_command" >/dev/null
pg_psql "$port" "select pg_reload_conf()" >/dev/null
incr3_rc=0
wait "$incr3_pid" || incr3_rc=$?
ws_same "an incr whose chain was removed meanwhile exits verify_failed" 18 "$incr3_rc"
ws_contains "it says it is not recorded" "$(cat "$WS_TMP/incr3.err")" "is not recorded"
ws_same "nothing of it is left" 0 "$(find "$repo_dir/$sysid/backup/incr3" -type f 2>/dev/null | wc -l)"
ws_expect_exit 0 "list after the removed chain" "${walctl[@]}" list --json
ws_same "incr3 is not listed" "['full1', 'incr1', 'incr2']" "$(wc_json '[b["label"] for b in j["backups"]]')"
ws_expect_exit 10 "an incr on incr2 (its chain broken) is refused" \
  "${walctl[@]}" backup -d "$conninfo" --type incr --label incr4
ws_contains "the refusal says to take a full backup" "$WS_ERR" "take a full backup"
ws_same "nothing of the refused incr is stored" 0 "$(find "$repo_dir/$sysid/backup/incr4" -type f 2>/dev/null | wc -l)"

ws_done
