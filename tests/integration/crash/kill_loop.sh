#!/usr/bin/env bash
# Crash loops for walpush and walfetch: each tool is killed with SIGKILL at
# random points spread uniformly over its measured run time, until CRASH_KILLS (100) kills have
# landed while it ran, on real WAL from pgbench.  After every kill: the object is either not listed or listed and complete (walfetch
# gives the segment's bytes), the destination is either absent or complete (never a partial
# %p), the retried call exits 0 and walfetch then gives identical bytes.  After each loop:
# walctl verify is clean, and the temp files / multipart uploads the killed calls left are
# counted, printed and (temp files) aged and cleaned by one more call.
#
# Variables: CRASH_REPO_KIND file|s3 (s3: s3rver through tests/lib/fault_proxy.py, which hands
# s3rver only whole request bodies as S3 does; half of the walpush kills with multipart uploads
# of several parts), CRASH_COMPRESSION, CRASH_ENCRYPT (1: with a key), CRASH_AHEAD (1: also the smaller
# loops with read-ahead and push-ahead on, CRASH_AHEAD_KILLS kills each), CRASH_SEED.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
# shellcheck source=tests/integration/crash/crash_lib.sh
. "$here/crash_lib.sh"
ws_setup
ws_require_tool walpush walfetch walctl
kind=${CRASH_REPO_KIND:-file}
kills=${CRASH_KILLS:-100}
ahead_kills=${CRASH_AHEAD_KILLS:-20}
crash_seed

ws_log "making WAL with pgbench"
WS_WAL_SCALE=2 ws_make_wal "$WS_TMP/wal" 5
mapfile -t segs < <(ws_segments "$WS_TMP/wal" | head -n 5)
n=${#segs[@]}
wal=$WS_TMP/wal
out=$WS_TMP/out
mkdir -p "$out"
export WALSTORE_SYSTEM_ID=$WS_WAL_SYSID
ws_log "$n segments ${segs[0]}..${segs[-1]}"

# The repository, through a config file (WALSTORE_CONFIG) that walctl reads as well.
config_common=("compression = \"${CRASH_COMPRESSION:-lz4}\"")
if [[ ${CRASH_ENCRYPT:-0} == 1 ]]; then
  ws_make_key "$WS_TMP/key"
  config_common+=("encryption_key_file = \"$WS_TMP/key\"")
fi
if [[ $kind == s3 ]]; then
  # shellcheck disable=SC2119
  s3_start
  s3_proxy_start
  prefix=crash
  # s3_config EXTRA...: a config with the repository, the common settings and [s3] EXTRA.
  s3_config() {
    printf '%s\n' "repository = \"s3://$S3_BUCKET/$prefix\"" "${config_common[@]}" "[s3]" \
      "retry_total_seconds = 30" "$@"
  }
  s3_config >"$WS_TMP/single.toml"
  # Small parts (s3rver takes parts below AWS's 5 MiB), so that a segment is several parts:
  # 2.. are sent first, part 1 last.
  s3_config "multipart_threshold = 262144" "part_size = 524288" >"$WS_TMP/multipart.toml"
  export WALSTORE_CONFIG=$WS_TMP/single.toml
else
  repo_dir=$WS_TMP/repo
  mkdir -p "$repo_dir"
  printf '%s\n' "repository = \"file://$repo_dir\"" "${config_common[@]}" >"$WS_TMP/file.toml"
  export WALSTORE_CONFIG=$WS_TMP/file.toml
fi
push=("$WS_BIN/walpush" --push-ahead 0)
fetch=("$WS_BIN/walfetch" --prefetch 0)

obj_key() { echo "$WALSTORE_SYSTEM_ID/wal/${1:0:16}/$1"; }
# obj_file SEG: where the repository keeps SEG's object (s3rver: its data file).
obj_file() {
  if [[ $kind == s3 ]]; then s3_object_file "$prefix/$(obj_key "$1")"; else echo "$repo_dir/$(obj_key "$1")"; fi
}
# obj_listed SEG: the repository lists SEG (a file repository hides ".*" names, s3rver lists
# every object it has a data file for).
obj_listed() { [[ -f $(obj_file "$1") ]]; }
# obj_remove SEG: takes SEG's object out of the repository, so the next walpush stores it anew.
obj_remove() {
  local f
  f=$(obj_file "$1")
  rm -f "$f" "${f%._S3rver_object}._S3rver_metadata.json" "$f.md5"
}
# settle: after a kill on S3, waits (up to 10 s) until the proxy and s3rver have finished every
# request the killed process made (no connection to either is open but in TIME-WAIT).  A
# request whose whole body reached the proxy is still forwarded to s3rver, and s3rver writes a
# PUT's body straight into the object's file: looking before it has answered would see a
# half-written file, which real S3 never shows.
settle() {
  [[ $kind == s3 ]] || return 0
  local i filter="( sport = :${AWS_ENDPOINT_URL##*:} or sport = :${S3_ENDPOINT##*:} )"
  for ((i = 0; i < 200; i++)); do
    [[ -z $(ss -Htn exclude listening exclude time-wait "$filter") ]] && return 0
    sleep 0.05
  done
  ws_log "requests of a killed process still open after 10 s: $(ss -Htn exclude listening "$filter")"
}
# leftovers: what killed writers left in the repository.
leftovers() {
  if [[ $kind == s3 ]]; then
    crash_uploads
  else
    echo "$(crash_temps "$repo_dir" | wc -l) temp files"
  fi
}

# fetched_intact SEG [WALFETCH OPTION...]: walfetch of SEG gives the segment's bytes (it leaves
# $WS_RC and the output as ws_run does).
fetched_intact() {
  local seg=$1
  shift
  rm -f "$out/seg"
  ws_run "${fetch[@]}" "$@" "$seg" "$out/seg"
  [[ $WS_RC -eq 0 ]] && cmp -s "$wal/$seg" "$out/seg"
}
# miss COUNTER MESSAGE: counts a failed check in the variable COUNTER and reports it with the
# last command's exit code and output.
miss() {
  local -n misses=$1
  misses=$((misses + 1))
  ws_fail "$2"
  ws_show_last
}

# push_loop LABEL KILLS: kills of walpush, cycling over the segments, until KILLS landed mid-run
# (crash_more).
push_loop() {
  local label=$1 kills=$2 t0 i seg what listed=0 bad_listed=0 bad_unlisted=0 bad_retry=0 bad_fetch=0
  t0=$(crash_now_us)
  crash_reset_tally
  obj_remove "${segs[0]}"
  CRASH_MEASURE_RESET="obj_remove ${segs[0]}" crash_measure "${push[@]}" "$wal/${segs[0]}"
  for ((i = 0; ; i++)); do
    crash_more "$kills" "$i" || break
    seg=${segs[i % n]}
    obj_remove "$seg"
    crash_kill_at "${push[@]}" "$wal/$seg"
    settle
    what="$label: kill $i of walpush $seg after $(crash_seconds "$CRASH_DELAY_US") s"
    crash_tally "$what"
    if obj_listed "$seg"; then
      listed=$((listed + 1))
      fetched_intact "$seg" ||
        miss bad_listed "$what: the listed object does not give the segment's bytes (walfetch exit $WS_RC)"
    else
      rm -f "$out/seg"
      ws_run "${fetch[@]}" "$seg" "$out/seg"
      [[ $WS_RC -eq 1 && ! -e $out/seg ]] ||
        miss bad_unlisted "$what: nothing listed, but walfetch did not say 'missing' (exit $WS_RC, expected 1)"
    fi
    ws_run "${push[@]}" "$wal/$seg"
    [[ $WS_RC -eq 0 ]] || miss bad_retry "$what: the retried walpush exited $WS_RC"
    fetched_intact "$seg" ||
      miss bad_fetch "$what: after the retry walfetch did not give identical bytes (exit $WS_RC)"
  done
  ws_same "$label: every object listed after a kill gave the segment's bytes ($listed listed)" 0 "$bad_listed"
  ws_same "$label: every object not listed was 'missing' to walfetch ($((i - listed)))" 0 "$bad_unlisted"
  ws_same "$label: every retried walpush exited 0 ($i)" 0 "$bad_retry"
  ws_same "$label: after every retry walfetch gave identical bytes ($i)" 0 "$bad_fetch"
  local left after=n/a
  left=$(leftovers)
  ws_log "$label: the killed walpush calls left $left"
  if [[ $kind == file ]]; then
    # One more call that writes into the same directory: a segment stored anew.
    obj_remove "${segs[0]}"
    crash_expect_stale_temps_removed "$label" "$(dirname "$(obj_file "${segs[0]}")")" \
      "${push[@]}" "$wal/${segs[0]}"
    after="$CRASH_TEMPS_AFTER temp files"
  fi
  ws_expect_exit 0 "$label: walctl verify is clean after the loop" "$WS_BIN/walctl" verify
  crash_summary "$label" "$kills" "$i" "$t0" "left $left, after clean-up $after"
}

# push_all: every segment in the repository (walfetch loops need them all).
push_all() {
  local seg
  for seg in "${segs[@]}"; do "${push[@]}" -q "$wal/$seg" || ws_die "walpush $seg failed"; done
}

# fetch_loop LABEL: kills (until CRASH_KILLS landed) of walfetch into $dest_dir/RECOVERYXLOG, the
# name PostgreSQL gives %p during recovery.
fetch_loop() {
  local label=$1 t0 i seg what dest_dir=$WS_TMP/dest complete=0 bad_partial=0 bad_retry=0
  local dest=$WS_TMP/dest/RECOVERYXLOG
  t0=$(crash_now_us)
  crash_reset_tally
  mkdir -p "$dest_dir"
  push_all
  CRASH_MEASURE_RESET="rm -f $dest" crash_measure "${fetch[@]}" "${segs[0]}" "$dest"
  for ((i = 0; ; i++)); do
    crash_more "$kills" "$i" || break
    seg=${segs[i % n]}
    rm -f "$dest"
    crash_kill_at "${fetch[@]}" "$seg" "$dest"
    what="$label: kill $i of walfetch $seg after $(crash_seconds "$CRASH_DELAY_US") s"
    crash_tally "$what"
    if [[ -e $dest ]]; then
      complete=$((complete + 1))
      if ! cmp -s "$wal/$seg" "$dest"; then
        bad_partial=$((bad_partial + 1))
        ws_fail "$what: DEST exists but is not the segment ($(stat -c %s "$dest") bytes)"
      fi
    fi
    ws_run "${fetch[@]}" "$seg" "$dest"
    { [[ $WS_RC -eq 0 ]] && cmp -s "$wal/$seg" "$dest"; } ||
      miss bad_retry "$what: the retried walfetch did not give identical bytes (exit $WS_RC)"
  done
  ws_same "$label: DEST was absent or complete after every kill ($complete complete)" 0 "$bad_partial"
  ws_same "$label: every retried walfetch gave identical bytes ($i)" 0 "$bad_retry"
  local left
  left=$(crash_temps "$dest_dir" | wc -l)
  ws_log "$label: the killed walfetch calls left $left temp files beside DEST"
  rm -f "$dest"
  crash_expect_stale_temps_removed "$label" "$dest_dir" "${fetch[@]}" "${segs[0]}" "$dest"
  ws_expect_exit 0 "$label: walctl verify is clean after the loop" "$WS_BIN/walctl" verify
  crash_summary "$label" "$kills" "$i" "$t0" \
    "left $left temp files, after clean-up $CRASH_TEMPS_AFTER temp files"
}

# push_ahead_loop: kills (until CRASH_AHEAD_KILLS landed) of walpush with push-ahead on (and of
# its worker, at the same moment), run like PostgreSQL's archiver from a data directory with a
# backlog of .ready segments.  One fresh repository per pass over the segments: a marker is trusted only
# for its repository, and the loop never takes an object away behind a marker's back.
push_ahead_loop() {
  local label=walpush/push-ahead t0 i j pass=0 what repo listed=0 bad_listed=0 bad_retry=0 bad_fetch=0
  local pa=$WS_TMP/pa temps=0
  local -A checked=()
  t0=$(crash_now_us)
  crash_reset_tally
  mkdir -p "$pa/pg_wal/archive_status"
  for j in "${!segs[@]}"; do cp "$wal/${segs[$j]}" "$pa/pg_wal/"; done
  ready() {
    local s
    rm -f "$pa"/pg_wal/archive_status/*.done
    for s in "${segs[@]}"; do : >"$pa/pg_wal/archive_status/$s.ready"; done
  }
  # shellcheck disable=SC2317  # called through CRASH_MEASURE_RESET
  measure_reset() { ws_wait_workers; rm -rf "$WS_TMP/pa-measure"; ws_repo_dir "$WS_TMP/pa-measure"; ready; }
  ws_repo_dir "$WS_TMP/pa-measure"
  ready
  CRASH_CWD=$pa CRASH_MEASURE_RESET=measure_reset crash_measure "$WS_BIN/walpush" \
    --repo "file://$WS_TMP/pa-measure" --push-ahead 2 "pg_wal/${segs[0]}"
  # pass_end: every segment archived in this pass is intact, and walctl verify is clean.
  pass_end() {
    local s
    ws_wait_workers
    for s in "${segs[@]:0:j+1}"; do
      fetched_intact "$s" --repo "file://$repo" ||
        miss bad_fetch "$label: pass $pass: $s is not archived intact (walfetch exit $WS_RC)"
    done
    ws_run "$WS_BIN/walctl" --repo "file://$repo" verify
    [[ $WS_RC -eq 0 ]] || miss bad_fetch "$label: pass $pass: walctl verify"
  }
  for ((i = 0; ; i++)); do
    crash_more "$ahead_kills" "$i" || break
    j=$((i % n))
    if ((j == 0)); then
      ws_wait_workers
      pass=$((i / n))
      repo=$WS_TMP/pa-repo/$pass
      ws_repo_dir "$repo"
      checked=()
      ready
    fi
    CRASH_CWD=$pa CRASH_KILL_WORKERS=1 crash_kill_at "$WS_BIN/walpush" --repo "file://$repo" \
      --push-ahead 2 "pg_wal/${segs[$j]}"
    what="$label: kill $i of walpush ${segs[$j]} after $(crash_seconds "$CRASH_DELAY_US") s"
    crash_tally "$what"
    # Whatever the worker or walpush published must be whole (each object is checked once per
    # pass: nothing is ever overwritten, and each pass ends with a check of them all).
    local s
    for s in "${segs[@]}"; do
      [[ -f $repo/$(obj_key "$s") && -z ${checked[$s]:-} ]] || continue
      checked[$s]=1
      listed=$((listed + 1))
      fetched_intact "$s" --repo "file://$repo" ||
        miss bad_listed "$what: the listed object $s does not give the segment's bytes (exit $WS_RC)"
    done
    ws_run crash_in "$pa" "$WS_BIN/walpush" --repo "file://$repo" \
      --push-ahead 2 "pg_wal/${segs[$j]}"
    [[ $WS_RC -eq 0 ]] || miss bad_retry "$what: the retried walpush exited $WS_RC"
    mv "$pa/pg_wal/archive_status/${segs[$j]}.ready" "$pa/pg_wal/archive_status/${segs[$j]}.done"
    ((j == n - 1)) && pass_end
  done
  ((j == n - 1)) || pass_end
  ws_same "$label: every object listed after a kill gave the segment's bytes ($listed listed)" 0 "$bad_listed"
  ws_same "$label: every retried walpush exited 0 ($i)" 0 "$bad_retry"
  ws_same "$label: every pass archived each segment intact, walctl verify clean" 0 "$bad_fetch"
  temps=$(crash_temps "$WS_TMP/pa-repo" | wc -l)
  ws_log "$label: the killed walpush calls and workers left $temps temp files"
  crash_summary "$label (mid-run: walpush or its worker)" "$ahead_kills" "$i" "$t0" \
    "left $temps temp files (not cleaned here)"
}

# prefetch_loop: kills (until CRASH_AHEAD_KILLS landed) of walfetch with read-ahead on (and of
# its worker, at the same moment), from a data directory like PostgreSQL's, into
# pg_wal/RECOVERYXLOG.
prefetch_loop() {
  local label=walfetch/read-ahead t0 i seg what pf=$WS_TMP/pf complete=0 bad_partial=0 bad_retry=0
  local dest=pg_wal/RECOVERYXLOG left spool_left
  t0=$(crash_now_us)
  crash_reset_tally
  mkdir -p "$pf/pg_wal"
  push_all
  CRASH_CWD=$pf CRASH_MEASURE_RESET="rm -f $pf/$dest" crash_measure "$WS_BIN/walfetch" \
    --prefetch 3 "${segs[0]}" "$dest"
  for ((i = 0; ; i++)); do
    crash_more "$ahead_kills" "$i" || break
    seg=${segs[i % n]}
    rm -f "$pf/$dest"
    CRASH_CWD=$pf CRASH_KILL_WORKERS=1 crash_kill_at "$WS_BIN/walfetch" --prefetch 3 "$seg" "$dest"
    what="$label: kill $i of walfetch $seg after $(crash_seconds "$CRASH_DELAY_US") s"
    crash_tally "$what"
    if [[ -e $pf/$dest ]]; then
      complete=$((complete + 1))
      if ! cmp -s "$wal/$seg" "$pf/$dest"; then
        bad_partial=$((bad_partial + 1))
        ws_fail "$what: DEST exists but is not the segment"
      fi
    fi
    ws_run crash_in "$pf" "$WS_BIN/walfetch" --prefetch 3 "$seg" "$dest"
    { [[ $WS_RC -eq 0 ]] && cmp -s "$wal/$seg" "$pf/$dest"; } ||
      miss bad_retry "$what: the retried walfetch did not give identical bytes (exit $WS_RC)"
  done
  ws_wait_workers
  ws_same "$label: DEST was absent or complete after every kill ($complete complete)" 0 "$bad_partial"
  ws_same "$label: every retried walfetch gave identical bytes ($i)" 0 "$bad_retry"
  left=$(crash_temps "$pf/pg_wal" -maxdepth 1 | wc -l)
  spool_left=$(crash_temps "$pf/pg_wal/.walstore-prefetch" | wc -l)
  ws_log "$label: left $left temp files beside DEST, $spool_left in the spool"
  crash_summary "$label (mid-run: walfetch or its worker)" "$ahead_kills" "$i" "$t0" \
    "left $left temp files beside DEST and $spool_left in the spool (not cleaned here)"
}

if [[ $kind == s3 ]]; then
  push_loop "walpush/s3 single PUT" $((kills / 2))
  # An object above multipart_threshold but smaller than one part is sent with one PUT (as a
  # multipart upload of one part it was once stored empty: part 1 sent again, without its bytes).
  s3_config "multipart_threshold = 65536" "part_size = 33554432" >"$WS_TMP/one-part.toml"
  obj_remove "${segs[0]}"
  ws_expect_exit 0 "above the threshold, below one part: walpush" env WALSTORE_CONFIG="$WS_TMP/one-part.toml" \
    "${push[@]}" "$wal/${segs[0]}"
  ws_expect_exit 0 "above the threshold, below one part: walfetch" "${fetch[@]}" "${segs[0]}" "$out/seg"
  ws_check "above the threshold, below one part: identical bytes" cmp "$wal/${segs[0]}" "$out/seg"
  export WALSTORE_CONFIG=$WS_TMP/multipart.toml
  push_loop "walpush/s3 multipart" $((kills - kills / 2))
  export WALSTORE_CONFIG=$WS_TMP/single.toml
  fetch_loop "walfetch/s3"
else
  push_loop "walpush/file" "$kills"
  fetch_loop "walfetch/file"
fi
if [[ ${CRASH_AHEAD:-0} == 1 ]]; then
  push_ahead_loop
  prefetch_loop
fi
crash_done
