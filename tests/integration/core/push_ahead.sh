#!/usr/bin/env bash
# walpush push-ahead (include/walstore/push_ahead.h) on real WAL from pgbench, in a pg_wal laid
# out like PostgreSQL's (archive_status/*.ready), driven like PostgreSQL's archiver: one walpush
# per segment, oldest first, .ready -> .done after exit 0.  A detached worker pushes the next
# .ready segments and leaves a marker; the call for that segment only checks it.  Every way a
# marker or worker can go wrong must end in the segment archived by walpush itself or in the
# usual error, never in a segment reported archived that is not: a changed file, a symlinked,
# stale, foreign or incomplete marker, a conflict or a non-WAL file met by the worker, a
# killed worker.  (The PITR tests archive a real server's WAL with push-ahead on, the default.)
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
ws_make_key "$WS_TMP/key"

# new_datadir DIR [N]: DIR/pg_wal with the first N (default all) segments, each .ready.
new_datadir() {
  mkdir -p "$1/pg_wal/archive_status"
  for s in "${segs[@]:0:${2:-${#segs[@]}}}"; do
    cp "$WS_TMP/wal/$s" "$1/pg_wal/$s"
    : >"$1/pg_wal/archive_status/$s.ready"
  done
}
# use_datadir NAME COMPRESSION [N]: a fresh $WS_TMP/NAME (new_datadir) archiving into a fresh
# repository $WS_TMP/NAME-repo: sets data, repo, spool and opts for push, markers and restores.
use_datadir() {
  data=$WS_TMP/$1
  repo=$WS_TMP/$1-repo
  ws_repo_dir "$repo"
  spool=$data/pg_wal/.walstore-push
  opts=(--repo "file://$repo" --key-file "$WS_TMP/key" --compression "$2")
  new_datadir "$data" "${3:-${#segs[@]}}"
}
use_datadir data lz4

# push I [ARGS...]: walpush of segment I, run in the data directory like PostgreSQL's archiver.
push() {
  local i=$1
  shift
  (cd "$data" && "$WS_BIN/walpush" "${opts[@]}" --push-ahead 3 --json "$@" "pg_wal/${segs[$i]}")
}
# done_ I: what PostgreSQL does after archive_command exited 0.
done_() { mv "$data/pg_wal/archive_status/${segs[$1]}.ready" "$data/pg_wal/archive_status/${segs[$1]}.done"; }
# markers: the segments with a push-ahead marker in $spool, space-separated (each followed by a space).
markers() { find "$spool" -maxdepth 1 -name '*.pushed' -printf '%f\n' | sed 's/\.pushed$//' | sort | tr '\n' ' '; }
# restores I...: walfetch each segment from $repo and compare it with the original.
restores() {
  local i
  for i in "$@"; do
    "$WS_BIN/walfetch" --repo "file://$repo" --key-file "$WS_TMP/key" --system-id "$WS_WAL_SYSID" \
      --prefetch 0 "${segs[$i]}" "$WS_TMP/restored" && cmp -s "$WS_TMP/wal/${segs[$i]}" "$WS_TMP/restored" || return 1
  done
}

# 1. The first segment is pushed by walpush itself, which starts a worker for the next three.
ws_run push 0
ws_same "segment 0 archived (exit 0)" 0 "$WS_RC"
ws_contains "segment 0 stored by walpush itself" "$WS_OUT" '"outcome":"stored"'
ws_wait_workers
ws_same "the worker pushed the next three .ready segments" "${segs[1]} ${segs[2]} ${segs[3]} " "$(markers)"
ws_contains "the worker says what it did" "$(cat "$spool/push.log")" "pushed ahead 3 segment(s)"
ws_same "markers are private to the server's user" "600" "$(stat -c %a "$spool/${segs[1]}.pushed")"
ws_contains "a marker names the repository" "$(cat "$spool/${segs[1]}.pushed")" "repository=file://$repo"
ws_check "the pushed-ahead segments are in the repository, byte-identical" restores 1 2 3
done_ 0

# 2. The next call only checks the marker, uses it up, and moves the window on.
ws_run push 1
ws_same "segment 1 archived (exit 0)" 0 "$WS_RC"
ws_contains "segment 1 was pushed ahead" "$WS_OUT" '"outcome":"pushed_ahead"'
ws_contains "its JSON carries the checksum" "$WS_OUT" "\"sha256\":\"$(sha256sum "$WS_TMP/wal/${segs[1]}" | cut -c1-64)\""
ws_wait_workers
ws_same "marker 1 used up, segment 4 pushed ahead" "${segs[2]} ${segs[3]} ${segs[4]} " "$(markers)"
done_ 1

# 3. A marker that does not speak of this very file is never trusted: walpush archives the
#    segment itself (test before overwrite finds the same content) and says why.
bad_marker() { # DESC I REASON: push I, expect it archived by walpush itself with a warning
  ws_run push "$2"
  ws_same "$1: archived anyway (exit 0)" 0 "$WS_RC"
  ws_contains "$1: archived by walpush itself" "$WS_OUT" '"outcome":"already_archived"'
  ws_contains "$1: a warning says why" "$WS_ERR" "not trusting the push-ahead marker"
  ws_contains "$1: the reason" "$WS_ERR" "$3"
  ws_wait_workers
  done_ "$2"
}
touch "$data/pg_wal/${segs[2]}"
bad_marker "segment changed since pushed ahead" 2 "another repository, configuration, cluster or file"
rm "$spool/${segs[3]}.pushed" && ln -s "$spool/${segs[4]}.pushed" "$spool/${segs[3]}.pushed"
bad_marker "symlinked marker" 3 "not a regular file"
touch -d '-20 minutes' "$spool/${segs[4]}.pushed"
bad_marker "stale marker" 4 "older than 600 seconds"
sed -i "s|repository=.*|repository=file:///elsewhere|" "$spool/${segs[5]}.pushed"
bad_marker "another repository's marker" 5 "another repository, configuration, cluster or file"
sed -i '/^sha256=/d' "$spool/${segs[6]}.pushed"
bad_marker "incomplete marker" 6 "it is incomplete"
ws_run push 7
ws_contains "after all that, segment 7 was pushed ahead" "$WS_OUT" '"outcome":"pushed_ahead"'
ws_wait_workers
done_ 7

# 4. A conflict the worker meets: it stops and logs it, leaves no marker, and walpush of that
#    segment fails loudly itself (exit 7); the archived object is left untouched.
mkdir -p "$WS_TMP/other/pg_wal"
cp "$WS_TMP/wal/${segs[11]}" "$WS_TMP/other/pg_wal/${segs[11]}"
printf 'X' | dd of="$WS_TMP/other/pg_wal/${segs[11]}" bs=1 seek=200000 conv=notrunc status=none
"$WS_BIN/walpush" "${opts[@]}" "$WS_TMP/other/pg_wal/${segs[11]}"
obj=$(find "$repo" -type f -name "${segs[11]}")
before=$(sha256sum "$obj")
for i in 8 9 10; do
  ws_run push "$i"
  ws_same "segment $i archived (exit 0)" 0 "$WS_RC"
  ws_wait_workers
  done_ "$i"
done
ws_contains "the worker logged the conflict" "$(cat "$spool/push.log")" "different content"
[[ ! -e $spool/${segs[11]}.pushed ]] && ws_pass "no marker for the conflicting segment" ||
  ws_fail "a marker for a segment the worker could not archive"
ws_expect_exit 7 "walpush of the conflicting segment fails" push 11
ws_contains "and says so" "$WS_ERR" "already archived with different content"
ws_same "the archived object is untouched" "$before" "$(sha256sum "$obj")"
ws_check "segments 0..10 restore byte-identical" restores 0 1 2 3 4 5 6 7 8 9 10

# 5. A killed worker: walpush waits for the segment the worker has in hand only while the
#    worker lives, then archives it itself.  (zstd:12 makes each push take long enough for the
#    worker to be stopped in the middle of one; 6 segments.)
use_datadir data2 zstd:12 6
ws_run push 0
ws_same "segment 0 archived" 0 "$WS_RC"
for _ in $(seq 12000); do [[ -s $spool/plan ]] && break; sleep 0.005; done
ws_worker_pids | xargs -r kill -STOP
# The first segment of the stopped worker's plan that it has not pushed yet.
next=''
while read -r planned; do
  [[ -e $spool/$planned.pushed ]] || { next=$planned; break; }
done < <(cat "$spool/plan" 2>/dev/null)
if [[ -n $next ]]; then
  done_ 0
  i=1
  while [[ ${segs[$i]} != "$next" ]]; do
    ws_run push "$i"
    [[ $WS_RC -eq 0 ]] || ws_fail "segment $i before the stopped worker's one"
    done_ "$i"
    i=$((i + 1))
  done
  (push "$i" >"$WS_TMP/waiting.out" 2>"$WS_TMP/waiting.err"; echo $? >"$WS_TMP/waiting.rc") &
  waiter=$!
  sleep 0.5
  [[ ! -e $WS_TMP/waiting.rc ]] && ws_pass "walpush waits for the segment the worker has in hand" ||
    ws_fail "walpush did not wait for the worker ($(cat "$WS_TMP/waiting.err"))"
  ws_worker_pids | xargs -r kill -KILL
  wait "$waiter"
  ws_same "once the worker is killed, walpush archives it itself (exit 0)" 0 "$(cat "$WS_TMP/waiting.rc")"
  ws_contains "by itself" "$(cat "$WS_TMP/waiting.out")" '"outcome":"'
  ws_not_contains "not by the dead worker's marker" "$(cat "$WS_TMP/waiting.out")" "pushed_ahead"
  done_ "$i"
  # 6. The rest like PostgreSQL's archiver, free-running: everything archived, most of it ahead.
  ahead=0
  for ((i = i + 1; i < 6; i++)); do
    ws_run push "$i"
    [[ $WS_RC -eq 0 ]] || ws_fail "segment $i (exit $WS_RC): $WS_ERR"
    [[ $WS_OUT == *pushed_ahead* ]] && ahead=$((ahead + 1))
    done_ "$i"
  done
  ws_log "$ahead segments pushed ahead in the free-running loop"
  [[ $ahead -gt 0 ]] && ws_pass "the free-running archiver had segments pushed ahead ($ahead)" ||
    ws_fail "no segment was pushed ahead in the free-running loop"
  ws_wait_workers
  ws_check "every segment restores byte-identical" restores 0 1 2 3 4 5
else
  ws_worker_pids | xargs -r kill -KILL
  ws_fail "the worker wrote no plan"
fi

# 6b. The configuration changes under a running worker (another repository here): walpush does
#     not trust the old worker's markers, archives into the repository it is configured for,
#     and the old worker stops before its next segment.
use_datadir data6 zstd:12 6
ws_run push 0
ws_same "old settings: segment 0 archived" 0 "$WS_RC"
done_ 0
for _ in $(seq 12000); do [[ -n $(markers) ]] && break; sleep 0.005; done
repo=$WS_TMP/repo8
ws_repo_dir "$repo"
opts=(--repo "file://$repo" --key-file "$WS_TMP/key" --compression zstd:12)
for i in 1 2 3 4 5; do
  ws_run push "$i"
  [[ $WS_RC -eq 0 ]] || ws_fail "new settings: segment $i (exit $WS_RC): $WS_ERR"
  if [[ $i == 1 ]]; then
    ws_contains "new settings: segment 1 archived by walpush itself" "$WS_OUT" '"outcome":"stored"'
  fi
  done_ "$i"
done
ws_wait_workers
ws_contains "the old worker stopped on the new settings" "$(cat "$spool/push.log" 2>/dev/null)" \
  "other settings"
ws_check "every segment restores from the new repository" restores 1 2 3 4 5

# 7. A non-WAL file named like a segment, marked .ready: the worker refuses it and stops (its
#    other uploader may still finish the segment it has in hand);
#    walpush of it reports it (exit 5); nothing is stored under its name.
use_datadir data3 lz4
head -c 16777216 /dev/urandom >"$data/pg_wal/${segs[1]}"
ws_run push 0
ws_same "segment 0 archived" 0 "$WS_RC"
ws_wait_workers
ws_contains "the worker logged the non-WAL file" "$(cat "$spool/push.log")" "does not start with a WAL long page header"
[[ ! -e $spool/${segs[1]}.pushed ]] && ws_pass "no marker for the non-WAL file" ||
  ws_fail "a marker for the non-WAL file"
done_ 0
ws_expect_exit 5 "walpush of the non-WAL file fails" push 1
[[ -z $(find "$repo" -name "${segs[1]}") ]] && ws_pass "nothing stored for the non-WAL file" ||
  ws_fail "the non-WAL file was stored"

# 8. push_ahead = 0, or no archive_status beside %p: no worker and no spool.
data=$WS_TMP/data4
new_datadir "$data"
ws_check "WALSTORE_PUSH_AHEAD=0 push" bash -c \
  "cd '$data' && WALSTORE_PUSH_AHEAD=0 '$WS_BIN/walpush' ${opts[*]} pg_wal/${segs[0]}"
[[ ! -e $data/pg_wal/.walstore-push ]] && ws_pass "no spool with push_ahead = 0" ||
  ws_fail "a spool was made with push_ahead = 0"
# Archiving without a backlog (one .ready segment at a time) leaves nothing in the spool.
data=$WS_TMP/data5
opts=(--repo "file://$WS_TMP/repo6" --key-file "$WS_TMP/key" --compression lz4)
ws_repo_dir "$WS_TMP/repo6"
mkdir -p "$data/pg_wal/archive_status"
for i in 0 1 2; do
  cp "$WS_TMP/wal/${segs[$i]}" "$data/pg_wal/"
  : >"$data/pg_wal/archive_status/${segs[$i]}.ready"
  ws_run push "$i"
  [[ $WS_RC -eq 0 && $WS_OUT == *'"outcome":"stored"'* ]] || ws_fail "segment $i without a backlog: $WS_ERR"
  done_ "$i"
done
ws_same "without a backlog no worker ran and the spool holds only the settings" "settings " \
  "$(find "$data/pg_wal/.walstore-push" -type f -printf '%f ')"
mkdir -p "$WS_TMP/loose"
cp "$WS_TMP/wal/${segs[1]}" "$WS_TMP/loose/"
ws_check "walpush of a file without archive_status beside it" \
  "$WS_BIN/walpush" "${opts[@]}" "$WS_TMP/loose/${segs[1]}"
[[ ! -e $WS_TMP/loose/.walstore-push ]] && ws_pass "no spool without archive_status" ||
  ws_fail "a spool was made without archive_status"
ws_expect_exit 3 "a push-ahead depth out of range is refused" \
  "$WS_BIN/walpush" "${opts[@]}" --push-ahead 65 "$WS_TMP/loose/${segs[1]}"
ws_contains "and the message gives the range" "$WS_ERR" "push_ahead must be between 0 (off) and 64"

# 9. A real PostgreSQL 15 working off a backlog: no archive_command while 10 segments fill up
#    (the server keeps them .ready), then walpush with push-ahead on (the default); the server's
#    own archiver drains the backlog without a failure, the worker pushed some segments ahead,
#    and every archived segment restores byte-identical.
pgdata=$WS_TMP/pg/data
repo=$WS_TMP/repo5
ws_pg_dir "$repo"
pg_init "$pgdata"
pg_conf "$pgdata" "archive_mode = on" "archive_command = ''"
pgport=$(ws_free_port)
pg_start "$pgdata" "$pgport"
pg_psql "$pgport" "create table t (id int)" >/dev/null
for i in $(seq 10); do
  pg_psql "$pgport" "insert into t select generate_series(1, 1000)" >/dev/null
  pg_psql "$pgport" "select pg_switch_wal()" >/dev/null
done
backlog=$(find "$pgdata/pg_wal/archive_status" -name '*.ready' | wc -l)
((backlog >= 10)) && ws_pass "a backlog of $backlog .ready segments" || ws_fail "only $backlog .ready segments"
pg_enable_archiving "$pgdata" "$(ws_tool_cmd walpush --repo "file://$repo" --key-file "$WS_TMP/key" %p)"
pg_psql "$pgport" "select pg_reload_conf()" >/dev/null
ws_check "the server archived the backlog with walpush" pg_switch_and_wait_archived "$pgport"
ws_same "no archive_command failure" 0 "$(pg_psql "$pgport" "select failed_count from pg_stat_archiver")"
ws_wait_workers
ws_contains "the worker pushed segments ahead" "$(cat "$pgdata/pg_wal/.walstore-push/push.log" 2>/dev/null)" "pushed ahead"
ws_check "and not zero of them" grep -q "pushed ahead [1-9]" "$pgdata/pg_wal/.walstore-push/push.log"
sysid=$(pg_system_id "$pgdata")
bad=0
checked=0
for f in "$pgdata"/pg_wal/archive_status/*.done; do
  seg=$(basename "$f" .done)
  [[ -f $pgdata/pg_wal/$seg ]] || continue
  "$WS_BIN/walfetch" --repo "file://$repo" --key-file "$WS_TMP/key" --system-id "$sysid" --prefetch 0 \
    "$seg" "$WS_TMP/restored" && cmp -s "$pgdata/pg_wal/$seg" "$WS_TMP/restored" || bad=$((bad + 1))
  checked=$((checked + 1))
done
((checked >= 10 && bad == 0)) && ws_pass "$checked archived segments restore byte-identical" ||
  ws_fail "$bad of $checked archived segments did not restore byte-identical"
pg_stop "$pgdata"

ws_done
