# shellcheck shell=bash
# Helpers of the crash-loop tests, on top of tests/lib/common.sh: a tool is
# started, killed with SIGKILL at a random point of its run, and the repository, the
# destination and the retried call are checked.
#
#   crash_seed                 seeds $RANDOM from CRASH_SEED (printed, so a failing run can be
#                              repeated with the same kill points) or from the clock
#   crash_measure CMD...       runs CMD 3 times to the end (it must exit 0; "{n}" in an argument
#                              becomes the run number, e.g. for a fresh backup label; the command
#                              in CRASH_MEASURE_RESET runs after each); CRASH_RUN_US is the median
#                              wall time in microseconds
#   crash_in DIR CMD...        runs CMD in DIR
#   crash_kill_at CMD...       runs CMD in the background (in $CRASH_CWD when set), sends it
#                              SIGKILL after a delay drawn uniformly from 0 .. CRASH_RUN_US
#                              (with CRASH_KILL_WORKERS=1 this test's background workers too),
#                              waits; CRASH_RC is its exit status (137: killed), CRASH_DELAY_US
#                              the delay, CRASH_WORKERS_HIT 1 when a worker was killed.  CMD must be a program (it is exec'ed, so the kill hits
#                              the tool itself, not a shell around it)
#   crash_tally                counts the last crash_kill_at: CRASH_LANDED (killed mid-run, or
#                              a worker killed), CRASH_FINISHED (exited 0 before the kill, no
#                              worker hit); any other exit status is a failure (it names the
#                              iteration)
#   crash_temps DIR...         lists the temp files (".NAME.walstore-tmp.PID.HEX") below DIRs
#   crash_uploads              counts s3rver's unfinished multipart uploads (S3 through the
#                              proxy only)
#   crash_expect_stale_temps_removed DESC DIR CMD...
#                              the clean-up check (see there)
#   crash_more TARGET SENT     true while a loop needs more kills: fewer than TARGET landed
#                              mid-run and fewer than 3 x TARGET sent
#   crash_summary LOOP TARGET SENT START TEXT
#                              checks that the loop's kills hit running processes (at least
#                              TARGET / 2 landed mid-run) and prints one "SUMMARY" line;
#                              collected in CRASH_SUMMARIES and printed again by crash_done

CRASH_SUMMARIES=()
CRASH_LANDED=0
CRASH_FINISHED=0

crash_seed() {
  CRASH_SEED=${CRASH_SEED:-$(((${EPOCHREALTIME/./} ^ $$) % 1000000))}
  RANDOM=$CRASH_SEED
  ws_log "random seed $CRASH_SEED (CRASH_SEED=$CRASH_SEED repeats these kill points)"
}

# crash_now_us: the wall clock in microseconds.
crash_now_us() { echo "${EPOCHREALTIME/./}"; }

# crash_seconds US: microseconds as a decimal number of seconds for sleep(1).
crash_seconds() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }

# crash_in DIR CMD...: runs CMD in DIR (as PostgreSQL runs its commands in the data directory).
crash_in() { (cd "$1" && shift && exec "$@"); }

crash_exec() {
  if [[ -n ${CRASH_CWD:-} ]]; then cd "$CRASH_CWD" || exit 125; fi
  exec "$@"
}

crash_measure() {
  local runs=() t0 rc i
  for i in 1 2 3; do
    t0=$(crash_now_us)
    rc=0
    (crash_exec "${@//\{n\}/$i}") >"$WS_TMP/measure.out" 2>"$WS_TMP/measure.err" || rc=$?
    runs+=($(($(crash_now_us) - t0)))
    [[ $rc -eq 0 ]] || ws_die "a full run of $* failed (exit $rc): $(cat "$WS_TMP/measure.err")"
    if [[ -n ${CRASH_MEASURE_RESET:-} ]]; then $CRASH_MEASURE_RESET; fi
  done
  CRASH_RUN_US=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
  ws_log "a full run of ${1##*/} takes $(crash_seconds "$CRASH_RUN_US") s (median of 3)"
}

crash_kill_at() {
  local pid
  # 30 random bits, so that the delay is uniform at microsecond resolution.
  CRASH_DELAY_US=$(((RANDOM * 32768 + RANDOM) * CRASH_RUN_US / 1073741824))
  (crash_exec "$@") >"$WS_TMP/killed.out" 2>"$WS_TMP/killed.err" &
  pid=$!
  sleep "$(crash_seconds "$CRASH_DELAY_US")"
  CRASH_RC=0
  # (bash reports a killed job on its stderr wherever it reaps it: not wanted in the log)
  {
    kill -KILL "$pid"
    CRASH_WORKERS_HIT=0
    if [[ ${CRASH_KILL_WORKERS:-0} == 1 ]]; then
      local workers
      mapfile -t workers < <(ws_worker_pids)
      if ((${#workers[@]} > 0)); then
        kill -KILL "${workers[@]}"
        CRASH_WORKERS_HIT=1
      fi
    fi
    wait "$pid" || CRASH_RC=$?
  } 2>/dev/null
}

# crash_tally ITERATION: see the header.
crash_tally() {
  case $CRASH_RC in
    137) CRASH_LANDED=$((CRASH_LANDED + 1)) ;;
    0)
      if [[ ${CRASH_WORKERS_HIT:-0} == 1 ]]; then
        CRASH_LANDED=$((CRASH_LANDED + 1))
      else
        CRASH_FINISHED=$((CRASH_FINISHED + 1))
      fi
      ;;
    *)
      ws_fail "$1: the killed call exited $CRASH_RC instead of being killed or succeeding"
      sed 's/^/     /' "$WS_TMP/killed.err"
      ;;
  esac
}

crash_reset_tally() {
  CRASH_LANDED=0
  CRASH_FINISHED=0
}

crash_temps() { find "$@" -name '.*.walstore-tmp.*' 2>/dev/null | sort; }

crash_uploads() {
  local id abandoned=0 aborted=0
  # s3rver answers AbortMultipartUpload with 405 and keeps the upload: one that walstore
  # aborted (the proxy logged a DELETE for it) was not left by a killed process.
  while read -r id; do
    if grep -q "DELETE .*uploadId=$id" "$S3_PROXY_LOG"; then aborted=$((aborted + 1)); else abandoned=$((abandoned + 1)); fi
  done < <(find "$S3_DIR/data/$S3_BUCKET/._S3rver_uploads" -mindepth 1 -maxdepth 1 -type d \
    -printf '%f\n' 2>/dev/null)
  echo "$abandoned unfinished multipart uploads (+$aborted aborted, which s3rver keeps)"
}

# crash_pid_of_temp PATH: the writer's pid in a temp file name (".NAME.walstore-tmp.PID.HEX").
crash_pid_of_temp() {
  local rest=${1##*.walstore-tmp.}
  echo "${rest%%.*}"
}

# crash_expect_stale_temps_removed DESC DIR CMD...: the clean-up check.  Every temp file left
# below DIR by a killed writer is aged to two minutes; CMD (one more call that writes into DIR)
# must then remove exactly the stale ones: those whose owner pid is dead.  Temp files of a pid
# that is alive (a reused pid) must stay.  Sets CRASH_TEMPS_BEFORE / CRASH_TEMPS_AFTER.
# Depends on the stale temp clean-up of walpush / walfetch / walctl prune (docs/testing.md, "Crash loops"): on a tree
# without it this check fails, and only this one.
crash_expect_stale_temps_removed() {
  local desc=$1 dir=$2 temp pid stale=() live=() left=()
  shift 2
  mapfile -t CRASH_TEMP_LIST < <(crash_temps "$dir")
  CRASH_TEMPS_BEFORE=${#CRASH_TEMP_LIST[@]}
  for temp in "${CRASH_TEMP_LIST[@]}"; do
    touch -d '2 minutes ago' "$temp"
    pid=$(crash_pid_of_temp "$temp")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then live+=("$temp"); else stale+=("$temp"); fi
  done
  ws_run "$@"
  if [[ $WS_RC -ne 0 ]]; then
    ws_fail "$desc: the clean-up call failed"
    ws_show_last
  fi
  mapfile -t left < <(crash_temps "$dir")
  CRASH_TEMPS_AFTER=${#left[@]}
  local kept_stale=0
  for temp in "${stale[@]}"; do [[ -e $temp ]] && kept_stale=$((kept_stale + 1)); done
  local lost_live=0
  for temp in "${live[@]}"; do [[ -e $temp ]] || lost_live=$((lost_live + 1)); done
  ws_log "$desc: $CRASH_TEMPS_BEFORE temp files: ${#stale[@]} stale (dead pid, aged 2 min), ${#live[@]} of live pids;" \
    "after one more call: $CRASH_TEMPS_AFTER left"
  ws_same "$desc: one more call removes every stale temp file (of ${#stale[@]})" 0 "$kept_stale"
  ws_same "$desc: temp files of live pids are kept" 0 "$lost_live"
}

crash_more() { ((CRASH_LANDED < $1 && $2 < 3 * $1)); }

crash_summary() {
  local line
  if ((2 * CRASH_LANDED >= $2)); then
    ws_pass "$1: $CRASH_LANDED of $3 kills landed while the tool ran (target $2)"
  else
    ws_fail "$1: only $CRASH_LANDED of $3 kills landed while the tool ran (target $2): is the full run time ($(crash_seconds "$CRASH_RUN_US") s) right?"
  fi
  line=$(printf 'SUMMARY %-24s %4d kills (%d mid-run, %d after the end; full run %s s), %s, %s s' \
    "$1" "$3" "$CRASH_LANDED" "$CRASH_FINISHED" "$(crash_seconds "$CRASH_RUN_US")" "$5" \
    "$(crash_seconds $(($(crash_now_us) - $4)))")
  CRASH_SUMMARIES+=("$line")
  printf '%s\n' "$line"
}

crash_done() {
  printf '%s\n' "${CRASH_SUMMARIES[@]}"
  ws_done
}
