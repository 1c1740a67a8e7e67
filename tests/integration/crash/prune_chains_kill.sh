#!/usr/bin/env bash
# walctl prune --keep-full 1 over backup chains (full <- incr, full <- diff <- incr), killed
# with SIGKILL at random points of its run, against a real PostgreSQL 15.  Each round adds a
# new chain, so the prune has a whole older chain to remove.  After every kill: every listed
# backup has its whole chain listed, and walctl verify --full is clean (every listed backup's
# objects decode and its deltas cover its manifest).  The retried prune leaves exactly the
# newest chain; at the end its last incr restores to the primary's data.
#
# A prune takes a few tens of milliseconds, and its first, measured run can be slower than the
# later ones on a loaded machine: a kill that arrives after the end shrinks the delay range by a
# third, and rounds go on until CRASH_PRUNE_CHAIN_KILLS kills landed mid-run (at most 3 x that
# many rounds).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$here/../walctl/walctl_lib.sh"
# shellcheck source=tests/integration/crash/crash_lib.sh
. "$here/crash_lib.sh"
kills=${CRASH_PRUNE_CHAIN_KILLS:-4}
crash_seed

wc_primary
pg_pgbench "$port" -i -q -s 1 >/dev/null 2>&1
backup=("${walctl[@]}" backup -d "$conninfo" -q --no-progress)
prune=("${walctl[@]}" prune --keep-full 1)

# make_chain N: c<N>-full <- c<N>-i1, c<N>-full <- c<N>-d <- c<N>-i2, with load in between.
make_chain() {
  local type label
  for type in full:full incr:i1 diff:d incr:i2; do
    pg_pgbench "$port" -c 1 -t 50 -n >/dev/null 2>&1
    label=c$1-${type#*:}
    ws_run "${backup[@]}" --type "${type%%:*}" --label "$label"
    [[ $WS_RC -eq 0 ]] || ws_die "backup $label failed: $WS_ERR"
  done
}
labels() {
  ws_run "${walctl[@]}" list --json
  wc_json '" ".join(b["label"] for b in j["backups"])'
}
# chain_problem: empty when every listed backup's chain is listed too.
chain_problem() {
  ws_run "${walctl[@]}" list --json
  wc_json '"; ".join(b["label"] + " lacks " + c for b in j["backups"] for c in b["chain"] if c not in [x["label"] for x in j["backups"]])'
}

make_chain 0
make_chain 1
ws_expect_exit 0 "prune --dry-run" "${prune[@]}" --dry-run
ws_contains "the dry run shows the chain it removes" "$WS_OUT" \
  "would remove backup c0-i2 (incr, chain c0-full <- c0-d <- c0-i2)"
ws_contains "the dry run shows the chain it keeps" "$WS_OUT" \
  "would keep backup c1-i2 (incr, chain c1-full <- c1-d <- c1-i2)"
t0=$(crash_now_us)
ws_expect_exit 0 "a prune that is not killed" "${prune[@]}"
CRASH_RUN_US=$(($(crash_now_us) - t0))
ws_same "it left the newest chain" "c1-full c1-i1 c1-d c1-i2" "$(labels)"
ws_log "a full run of walctl prune takes $(crash_seconds "$CRASH_RUN_US") s"

crash_reset_tally
bad_chain=0 bad_verify=0 bad_retry=0 bad_kept=0
for ((i = 2; ; i++)); do
  crash_more "$kills" $((i - 2)) || break
  make_chain "$i"
  crash_kill_at "${prune[@]}"
  what="kill $((i - 1)) of walctl prune after $(crash_seconds "$CRASH_DELAY_US") s"
  crash_tally "$what"
  if [[ $CRASH_RC -eq 0 ]]; then CRASH_RUN_US=$((CRASH_RUN_US * 2 / 3)); fi
  problem=$(chain_problem)
  if [[ -n $problem ]]; then
    bad_chain=$((bad_chain + 1))
    ws_fail "$what: $problem"
  fi
  ws_run "${walctl[@]}" verify --full
  if [[ $WS_RC -ne 0 ]]; then
    bad_verify=$((bad_verify + 1))
    ws_fail "$what: walctl verify --full"
    ws_show_last
  fi
  ws_run "${prune[@]}"
  if [[ $WS_RC -ne 0 ]]; then
    bad_retry=$((bad_retry + 1))
    ws_fail "$what: the retried prune exited $WS_RC"
    ws_show_last
  fi
  kept=$(labels)
  if [[ $kept != "c$i-full c$i-i1 c$i-d c$i-i2" ]]; then
    bad_kept=$((bad_kept + 1))
    ws_fail "$what: after the retried prune the backups are '$kept'"
  fi
done
sent=$((i - 2))
ws_same "every listed backup had its whole chain after every kill ($sent kills)" 0 "$bad_chain"
ws_same "verify --full was clean after every kill" 0 "$bad_verify"
ws_same "every retried prune exited 0" 0 "$bad_retry"
ws_same "every retried prune left exactly the newest chain" 0 "$bad_kept"
ws_log "$CRASH_LANDED of $sent kills landed while prune ran, $CRASH_FINISHED after it ended"
if ((CRASH_LANDED >= kills)); then
  ws_pass "$CRASH_LANDED of $sent kills landed while prune ran"
else
  ws_fail "only $CRASH_LANDED of $sent kills landed while prune ran (target $kills; delay range at the end $(crash_seconds "$CRASH_RUN_US") s)"
fi

last=c$((sent + 1))-i2
sum=$(pg_table_checksum "$port" pgbench_accounts)
pg_switch_and_wait_archived "$port"
if wc_restore_and_start "$WS_TMP/restored" "$last" --archive-mode off; then
  ws_same "the newest chain's last incr restores to the primary's data" "$sum" \
    "$(pg_table_checksum "$rport" pgbench_accounts)"
  pg_stop "$WS_TMP/restored"
else
  ws_fail "restore of $last"
fi
ws_done
