#!/usr/bin/env bash
# File system safety of walpush / walfetch with the real binaries:
# - a .walstore-prefetch or .walstore-push spool that is a symbolic link is never used: nothing
#   in the directory it points to is read, moved or deleted, and the call still does its work;
# - SIGTERM of walpush / walfetch while they write their temp file leaves no temp file
#   (PostgreSQL kills restore_command at shutdown and promotion);
# - a temp file a killed call left (its PID is gone, unwritten for over a minute) is removed by
#   the next call writing to that directory, while a live process's temp file is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch

ws_log "making WAL with pgbench"
WS_WAL_SCALE=2 ws_make_wal "$WS_TMP/wal" 6
mapfile -t segs < <(ws_segments "$WS_TMP/wal" | head -n 6)

repo=$WS_TMP/repo
ws_repo_dir "$repo"
ws_make_key "$WS_TMP/key"
opts=(--repo "file://$repo" --key-file "$WS_TMP/key" --system-id "$WS_WAL_SYSID")
data=$WS_TMP/data
mkdir -p "$data/pg_wal/archive_status"
chmod 700 "$data" "$data/pg_wal"
for s in "${segs[@]:0:3}"; do "$WS_BIN/walpush" "${opts[@]}" "$WS_TMP/wal/$s"; done
wal_dir=$(dirname "$(find "$repo" -type f -name "${segs[0]}")")

# A directory a hostile spool link points at: an old file and a valid-looking spooled segment.
victim=$WS_TMP/victim
mkdir -p "$victim"
chmod 700 "$victim"
echo precious >"$victim/old-file"
cp "$WS_TMP/wal/${segs[1]}" "$victim/${segs[1]}"
printf 'repository=file://%s\nsystem_id=%s\n' "$repo" "$WS_WAL_SYSID" >"$victim/origin"
touch -d '2 hours ago' "$victim"/*
victim_state() { (cd "$victim" && find . -printf '%p %s %TY%Tm%Td%TH%TM%TS\n' | sort && md5sum ./*); }
before=$(victim_state)

# 1. Symlinked spools.
ln -s "$victim" "$data/pg_wal/.walstore-prefetch"
ws_run bash -c "cd '$data' && '$WS_BIN/walfetch' ${opts[*]} --prefetch 2 --json '${segs[1]}' pg_wal/RECOVERYXLOG"
ws_same "walfetch with a symlinked spool restores (exit 0)" 0 "$WS_RC"
ws_contains "... from the repository, not the linked directory" "$WS_OUT" '"prefetched":false'
ws_contains "... and says why it ignores the spool" "$WS_ERR" "symbolic link"
ws_check "restored bytes are right" cmp -s "$WS_TMP/wal/${segs[1]}" "$data/pg_wal/RECOVERYXLOG"
ws_wait_workers
cp "$WS_TMP/wal/${segs[3]}" "$data/pg_wal/${segs[3]}"
touch "$data/pg_wal/archive_status/${segs[3]}.ready"
ln -s "$victim" "$data/pg_wal/.walstore-push"
ws_expect_exit 0 "walpush with symlinked spools archives" \
  "$WS_BIN/walpush" "${opts[@]}" --push-ahead 2 "$data/pg_wal/${segs[3]}"
ws_wait_workers
ws_same "nothing in the linked directory was read away, changed or deleted" "$before" "$(victim_state)"
ws_check "the archived segment is in the repository" test -f "$wal_dir/${segs[3]}"
rm "$data/pg_wal/.walstore-prefetch" "$data/pg_wal/.walstore-push" "$data/pg_wal/RECOVERYXLOG"

# 2. SIGTERM while the temp file is being written.  A poller sends the signal the moment the
# temp file appears; tries again when the call was faster than the poller.
# term_mid_write DIR CMD...: runs CMD, SIGTERMs it as soon as a temp file shows in DIR; prints
# "caught <exit status>" or "missed".
term_mid_write() {
  local dir=$1
  shift
  python3 - "$dir" "$@" <<'EOF'
import os, signal, subprocess, sys, time
d, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 30
while p.poll() is None and time.time() < deadline:
    if any('.walstore-tmp.' in e.name for e in os.scandir(d)):
        p.send_signal(signal.SIGTERM)
        print("caught", p.wait())
        sys.exit(0)
p.wait()
print("missed")
EOF
}
temp_files() { find "$1" -maxdepth 1 -name '.*.walstore-tmp.*' -printf '%f\n'; }

result=missed
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  rm -f "$wal_dir/${segs[4]}"
  result=$(term_mid_write "$wal_dir" "$WS_BIN/walpush" "${opts[@]}" --compression zstd:19 \
    "$WS_TMP/wal/${segs[4]}")
  [[ $result == caught* ]] && break
done
ws_same "walpush was terminated mid-write (by SIGTERM: status -15)" "caught -15" "$result"
ws_same "walpush left no temp file in the repository" "" "$(temp_files "$wal_dir")"
ws_check "and no object" test ! -e "$wal_dir/${segs[4]}"

result=missed
for attempt in $(seq 1 40); do
  rm -f "$data/pg_wal/RECOVERYXLOG"
  result=$(cd "$data" && term_mid_write "$data/pg_wal" "$WS_BIN/walfetch" "${opts[@]}" \
    --prefetch 0 "${segs[0]}" pg_wal/RECOVERYXLOG)
  [[ $result == caught* ]] && break
done
ws_same "walfetch was terminated mid-write (by SIGTERM: status -15)" "caught -15" "$result"
ws_same "walfetch left no temp file in pg_wal" "" "$(temp_files "$data/pg_wal")"
ws_check "and no partial DEST" test ! -e "$data/pg_wal/RECOVERYXLOG"

# 3. Stale temp files: a dead PID's (older than a minute) goes, a live PID's stays.
sleep 0 &
dead=$!
wait "$dead"
sleep 600 &
live=$!
ws_on_exit kill "$live"
for dir in "$wal_dir" "$data/pg_wal"; do
  head -c 4096 /dev/urandom >"$dir/.${segs[5]}.walstore-tmp.$dead.0123456789ab"
  head -c 4096 /dev/urandom >"$dir/.${segs[5]}.walstore-tmp.$live.0123456789ab"
  head -c 4096 /dev/urandom >"$dir/.${segs[5]}.walstore-tmp.$dead.ba9876543210"
  touch -d '2 minutes ago' "$dir/.${segs[5]}.walstore-tmp.$dead.0123456789ab" \
    "$dir/.${segs[5]}.walstore-tmp.$live.0123456789ab"
done
# The third one is fresh: its writer may be on another host sharing the file system.
ws_expect_exit 0 "walpush after a killed one" "$WS_BIN/walpush" "${opts[@]}" "$WS_TMP/wal/${segs[5]}"
kept=$(printf '.%s.walstore-tmp.%s.ba9876543210\n.%s.walstore-tmp.%s.0123456789ab\n' \
  "${segs[5]}" "$dead" "${segs[5]}" "$live" | sort)
ws_same "the dead writer's old temp file went, the live one's and the fresh one stayed" \
  "$kept" "$(temp_files "$wal_dir" | sort)"
ws_run bash -c "cd '$data' && '$WS_BIN/walfetch' ${opts[*]} --prefetch 0 '${segs[0]}' pg_wal/RECOVERYXLOG"
ws_same "walfetch after a killed one (exit 0)" 0 "$WS_RC"
ws_same "in pg_wal too" "$kept" "$(temp_files "$data/pg_wal" | sort)"

ws_done
