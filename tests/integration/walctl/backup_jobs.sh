#!/usr/bin/env bash
# walctl backup / restore / verify --full with -j/--jobs (parallel encoding and decoding): a
# backup taken with --jobs 3 and one with --jobs 1 restore with --jobs 3 and --jobs 1 to the
# same table checksums, verify --full is clean, a damaged object fails the same way with
# --jobs 3 as with --jobs 1 and nothing is left behind, out-of-range --jobs is refused with a
# clear message and a parallel setting above 64 is lowered with a warning.  WC_REPO_KIND=s3
# runs it against s3rver.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
ws_pg_dir "$WS_TMP/tblspc"
pg_psql "$port" "create tablespace ts1 location '$WS_TMP/tblspc'"
# Random text in the tablespace: records that do not compress, beside pgbench's that do.
pg_psql "$port" "create table ts_table tablespace ts1 as select g as id, md5(random()::text) || md5(random()::text) as v from generate_series(1, 60000) g"
pg_pgbench "$port" -i -q -s 3 >/dev/null 2>&1
sum_accounts=$(pg_table_checksum "$port" pgbench_accounts)
sum_ts=$(pg_table_checksum "$port" ts_table)

# 1. Backups with 3 jobs and with 1 (the number reaches the encoder: -v says it).
ws_expect_exit 0 "walctl backup --jobs 3" "${walctl[@]}" -v backup -d "$conninfo" --label j3 --jobs 3
ws_contains "... encodes with 3 jobs" "$WS_ERR" "encoding with 3 jobs"
ws_expect_exit 0 "walctl backup -j 1" "${walctl[@]}" -v backup -d "$conninfo" --label j1 -j 1
ws_contains "... encodes with 1 job" "$WS_ERR" "encoding with 1 jobs"
ws_expect_exit 0 "walctl backup --parallel 2 (the old name) still works" \
  "${walctl[@]}" -v backup -d "$conninfo" --label p2 --parallel 2
ws_contains "... with 2 jobs" "$WS_ERR" "encoding with 2 jobs"
pg_switch_and_wait_archived "$port"
ws_expect_exit 0 "show j3" "${walctl[@]}" show j3 --json
sysid=$(wc_json 'j["system_id"]')
ws_same "j3's base.tar is many 1 MiB records long (a parallel decode has work to share)" True \
  "$(wc_json '[a for a in j["archives"] if a["name"] == "base.tar"][0]["size"] > 16 * 1048576')"

# 2. verify --full with 3 jobs.
ws_expect_exit 0 "verify --full --jobs 3 is clean" "${walctl[@]}" verify --full --jobs 3

# 3. Restore with 3 jobs, start, compare; every cross combination restores.
ws_pg_dir "$WS_TMP/tblspc-r"
if wc_restore_and_start "$WS_TMP/restore-j3" j3 --jobs 3 -v --target-immediate \
  --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-r"; then
  ws_contains "restore decodes with 3 jobs" "$WS_ERR" "decoding with 3 jobs"
  ws_same "pgbench_accounts identical after restore --jobs 3" "$sum_accounts" \
    "$(pg_table_checksum "$rport" pgbench_accounts)"
  ws_same "tablespace table identical after restore --jobs 3" "$sum_ts" \
    "$(pg_table_checksum "$rport" ts_table)"
  pg_stop "$WS_TMP/restore-j3"
else
  ws_fail "restore --jobs 3 and recovery"
fi
for combo in "j3 1" "j3 4" "j1 3"; do
  read -r label jobs <<<"$combo"
  ws_pg_dir "$WS_TMP/tblspc-$label-$jobs"
  ws_expect_exit 0 "backup $label restores with --jobs $jobs (every file checked against the manifest)" \
    "${walctl[@]}" restore "$label" "$WS_TMP/restore-$label-$jobs" --jobs "$jobs" \
    --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-$label-$jobs"
  ws_check "... base/ restored" test -d "$WS_TMP/restore-$label-$jobs/base"
done
# (postgresql.auto.conf names the restore's own directory.)
ws_same "restores of j3 with 1 and 4 jobs hold the same files" "" \
  "$(diff -r -x postgresql.auto.conf "$WS_TMP/restore-j3-1" "$WS_TMP/restore-j3-4" 2>&1 | head -3)"
ws_same "... and the same tablespace files" "" \
  "$(diff -r "$WS_TMP/tblspc-j3-1" "$WS_TMP/tblspc-j3-4" 2>&1 | head -3)"

# 4. A damaged record: --jobs 3 fails as --jobs 1 does (kCorrupt, exit 10), writes nothing.
base_obj=$sysid/backup/j3/base.tar
wc_object_damage "$base_obj" 3000000
for jobs in 1 3; do
  ws_pg_dir "$WS_TMP/tblspc-d$jobs"
  ws_expect_exit 10 "restore --jobs $jobs of a damaged backup fails as corrupt" \
    "${walctl[@]}" restore j3 "$WS_TMP/restore-d$jobs" --jobs "$jobs" \
    --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-d$jobs"
  ws_contains "... naming the record that failed authentication" "$WS_ERR" "failed authentication"
  eval "err_$jobs=\$(grep -o 'record [0-9]* failed authentication' <<<\"\$WS_ERR\")"
  ws_same "... and removed what it wrote" yes \
    "$(test -z "$(ls -A "$WS_TMP/restore-d$jobs" 2>/dev/null)" && echo yes)"
done
# shellcheck disable=SC2154
ws_same "the same record is named with 1 and 3 jobs" "$err_1" "$err_3"
ws_expect_exit 1..125 "verify --full --jobs 3 reports the damage" "${walctl[@]}" verify --full --jobs 3
ws_contains "... in base.tar" "$WS_OUT$WS_ERR" "j3/base.tar"
wc_object_repair "$base_obj"
ws_expect_exit 0 "verify --full --jobs 2 is clean again" "${walctl[@]}" verify --full --jobs 2

# 5. Out of range.
for bad in 0 65 -1 x; do
  ws_expect_exit 2 "restore --jobs $bad is a usage error" "${walctl[@]}" restore j3 "$WS_TMP/never" --jobs "$bad"
  ws_contains "... naming --jobs" "$WS_ERR" "--jobs"
done
ws_expect_exit 2 "backup --jobs 65 is a usage error" "${walctl[@]}" backup -d "$conninfo" --jobs 65
ws_check "nothing was restored" test ! -e "$WS_TMP/never"
# parallel (and WALSTORE_PARALLEL) keep their earlier range, any count: walpush and walfetch
# read it too; walctl lowers it to 64 with a warning.
ws_expect_exit 0 "WALSTORE_PARALLEL=65 is lowered, not refused" env WALSTORE_PARALLEL=65 "${walctl[@]}" verify --full
ws_contains "... with a warning" "$WS_ERR" "parallel = 65 is more than 64 threads: using 64"
# Once per run: walctl backup and restore read the configuration once for the command (restore
# reads the file again only for the restored server's restore_command, silently).
ws_expect_exit 0 "walctl backup with WALSTORE_PARALLEL=65" \
  env WALSTORE_PARALLEL=65 "${walctl[@]}" backup -d "$conninfo" --label p65
ws_same "... warns once" 1 "$(grep -c 'parallel = 65 is more than 64' <<<"$WS_ERR")"
ws_pg_dir "$WS_TMP/tblspc-p65"
ws_expect_exit 0 "walctl restore with WALSTORE_PARALLEL=65" \
  env WALSTORE_PARALLEL=65 "${walctl[@]}" restore p65 "$WS_TMP/p65" \
  --tablespace-map "$WS_TMP/tblspc=$WS_TMP/tblspc-p65"
ws_same "... warns once" 1 "$(grep -c 'parallel = 65 is more than 64' <<<"$WS_ERR")"
ws_expect_exit 0 "WALSTORE_PARALLEL=2 is used by verify --full" env WALSTORE_PARALLEL=2 "${walctl[@]}" -v verify --full
ws_contains "... -v says so" "$WS_ERR" "decoding every object with 2 jobs"

pg_stop "$primary"
ws_done
