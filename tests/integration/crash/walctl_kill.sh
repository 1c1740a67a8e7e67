#!/usr/bin/env bash
# Crash loop for walctl backup and walctl prune, against a real PostgreSQL 15
# archiving with walpush into a file repository (lz4 + key).  Each round: a backup killed with
# SIGKILL at a random point of its measured run time, a backup that runs to the end, then
# `prune --keep-full 1` killed at a random point and run again; until CRASH_WALCTL_KILLS (20)
# backups and as many prunes were killed while they ran.
# After every kill: walctl list shows only complete backups and walctl verify is clean (every
# listed backup has all its objects and its WAL); the retried command succeeds; after the
# retried prune exactly the newest backup is left.  At the end: verify --full, the temp files
# left are counted and aged and one more prune must remove the stale ones, and the last backup
# restores to the primary's data.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$here/../walctl/walctl_lib.sh"
# shellcheck source=tests/integration/crash/crash_lib.sh
. "$here/crash_lib.sh"
kills=${CRASH_WALCTL_KILLS:-20}
crash_seed

# Killed backups leave walsenders that end only when they notice: room for a few.
wc_primary "max_wal_senders = 10"
pg_pgbench "$port" -i -q -s 1 >/dev/null 2>&1
backup=("${walctl[@]}" backup -d "$conninfo" -q --no-progress)
prune=("${walctl[@]}" prune --keep-full 1)

# list_problem: empty when walctl list works and lists only complete backups.
list_problem() {
  ws_run "${walctl[@]}" list --json
  if [[ $WS_RC -ne 0 ]]; then
    echo "walctl list exited $WS_RC: $WS_ERR"
  else
    wc_json '"; ".join(b["label"] + " is " + b["status"] for b in j["backups"] if b["status"] != "complete")'
  fi
}
labels() {
  ws_run "${walctl[@]}" list --json
  wc_json '" ".join(b["label"] for b in j["backups"])'
}
# check_after_kill WHAT: list and verify after a kill.
check_after_kill() {
  local problem
  problem=$(list_problem)
  if [[ -n $problem ]]; then
    bad_list=$((bad_list + 1))
    ws_fail "$1: walctl list: $problem"
  fi
  ws_run "${walctl[@]}" verify
  if [[ $WS_RC -ne 0 ]]; then
    bad_verify=$((bad_verify + 1))
    ws_fail "$1: walctl verify"
    ws_show_last
  fi
}

bad_list=0
bad_verify=0
bad_backup_retry=0
bad_prune_retry=0
bad_kept=0
backup_landed=0 backup_finished=0 backup_spent_us=0
prune_landed=0 prune_finished=0 prune_spent_us=0
newest=
# take_backup LABEL: a backup that must succeed; it becomes the newest.
take_backup() {
  ws_run "${backup[@]}" --label "$1"
  [[ $WS_RC -eq 0 ]] && newest=$1
}
measured=0
# shellcheck disable=SC2317  # called through CRASH_MEASURE_RESET
take_measuring_backup() { measured=$((measured + 1)); take_backup "measure$measured"; }

t0=$(crash_now_us)
crash_measure "${backup[@]}" --label "m{n}"
backup_run_us=$CRASH_RUN_US
backup_spent_us=$(($(crash_now_us) - t0))
t0=$(crash_now_us)
# Each measured prune removes a backup: the reset takes the next one.
CRASH_MEASURE_RESET=take_measuring_backup crash_measure "${prune[@]}"
prune_run_us=$CRASH_RUN_US
prune_spent_us=$(($(crash_now_us) - t0))
# Until KILLS backups and KILLS prunes were killed while they ran (at most 3 x KILLS rounds).
for ((i = 0; (backup_landed < kills || prune_landed < kills) && i < 3 * kills; i++)); do
  pg_pgbench "$port" -c 1 -t 100 -n >/dev/null 2>&1
  # backup: killed at a random point, then one that runs to the end.
  t0=$(crash_now_us)
  CRASH_RUN_US=$backup_run_us CRASH_LANDED=$backup_landed CRASH_FINISHED=$backup_finished
  crash_kill_at "${backup[@]}" --label "killed$i"
  what="kill $i of walctl backup after $(crash_seconds "$CRASH_DELAY_US") s"
  crash_tally "$what"
  backup_landed=$CRASH_LANDED backup_finished=$CRASH_FINISHED
  check_after_kill "$what"
  if ! take_backup "retried$i"; then
    bad_backup_retry=$((bad_backup_retry + 1))
    ws_fail "$what: the retried backup exited $WS_RC"
    ws_show_last
  fi
  backup_spent_us=$((backup_spent_us + $(crash_now_us) - t0))

  # prune: at least two complete backups now, so there is always one to remove.
  t0=$(crash_now_us)
  CRASH_RUN_US=$prune_run_us CRASH_LANDED=$prune_landed CRASH_FINISHED=$prune_finished
  crash_kill_at "${prune[@]}"
  what="kill $i of walctl prune after $(crash_seconds "$CRASH_DELAY_US") s"
  crash_tally "$what"
  prune_landed=$CRASH_LANDED prune_finished=$CRASH_FINISHED
  check_after_kill "$what"
  ws_run "${prune[@]}"
  if [[ $WS_RC -ne 0 ]]; then
    bad_prune_retry=$((bad_prune_retry + 1))
    ws_fail "$what: the retried prune exited $WS_RC"
    ws_show_last
  fi
  kept=$(labels)
  if [[ $kept != "$newest" ]]; then
    bad_kept=$((bad_kept + 1))
    ws_fail "$what: after the retried prune the backups are '$kept', expected '$newest'"
  fi
  prune_spent_us=$((prune_spent_us + $(crash_now_us) - t0))
done
ws_same "every list after a kill showed only complete backups ($((2 * i)) kills)" 0 "$bad_list"
ws_same "walctl verify was clean after every kill ($((2 * i)))" 0 "$bad_verify"
ws_same "every retried backup exited 0 ($i)" 0 "$bad_backup_retry"
ws_same "every retried prune exited 0 ($i)" 0 "$bad_prune_retry"
ws_same "after every retried prune only the newest backup was left" 0 "$bad_kept"

CRASH_LANDED=$backup_landed CRASH_FINISHED=$backup_finished CRASH_RUN_US=$backup_run_us
crash_summary "walctl backup" "$kills" "$i" $(($(crash_now_us) - backup_spent_us)) \
  "leftovers: see walctl prune"
temps=$(crash_temps "$repo_dir" | wc -l)
# Backups without a record (backup.json) that still hold objects: interrupted ones.
orphans=0
for dir in "$repo_dir"/*/backup/*/; do
  [[ -e $dir/backup.json || -z $(find "$dir" -maxdepth 1 -type f ! -name '.*') ]] || orphans=$((orphans + 1))
done
ws_log "the killed walctl calls left $temps temp files and $orphans interrupted backups holding objects"

# The clean-up check: one more prune removes every stale temp file in the repository.
t0=$(crash_now_us)
crash_expect_stale_temps_removed "walctl prune" "$repo_dir" "${prune[@]}"
prune_spent_us=$((prune_spent_us + $(crash_now_us) - t0))
CRASH_LANDED=$prune_landed CRASH_FINISHED=$prune_finished CRASH_RUN_US=$prune_run_us
crash_summary "walctl prune" "$kills" "$i" $(($(crash_now_us) - prune_spent_us)) \
  "left $temps temp files and $orphans interrupted backups, after clean-up $CRASH_TEMPS_AFTER temp files"

ws_expect_exit 0 "walctl verify --full after the loops" "${walctl[@]}" verify --full
final_sum=$(pg_table_checksum "$port" pgbench_accounts)
pg_stop "$primary"
if wc_restore_and_start "$WS_TMP/restored" latest --archive-mode off; then
  ws_pass "the last backup restores and recovers"
  ws_same "restored data equals the primary's" "$final_sum" "$(pg_table_checksum "$rport" pgbench_accounts)"
else
  ws_fail "the last backup restores and recovers"
fi
crash_done
