# shellcheck shell=bash
# Shared harness for walstore's bash integration tests (and scripts/demo, bench/).
#
# Source it, then call ws_setup:
#   . "$(dirname "$0")/../../lib/common.sh"; ws_setup
#
# API:
#   ws_setup                 $WS_TMP (temp dir usable by postgres), $WS_BIN with copies of the
#                            built tools, PATH, EXIT trap (stops servers, removes $WS_TMP unless
#                            WS_KEEP=1); under scripts/test --sanitize a sanitizer report of any
#                            tool or worker fails the test (ws_sanitizer_setup)
#   as_pg CMD...             run as the postgres user when root, else directly
#   ws_free_port             prints a free loopback TCP port
#   pg_init DATADIR [ARGS]   initdb (trust auth, C locale) + test settings
#   pg_start DATADIR PORT    start (127.0.0.1 only, socket in $WS_TMP/sock); non-zero if it fails
#   pg_stop DATADIR          fast shutdown
#   pg_psql PORT SQL         prints the result (-Atq); PG_DB selects the database (postgres)
#   pg_wait_ready PORT       wait until the server accepts connections
#   pg_wait_recovery_done PORT   wait until pg_is_in_recovery() is false (1 if the server died)
#   ws_make_key FILE         64-hex key, mode 0600, owned by postgres when root
#   ws_pass DESC | ws_fail DESC | ws_check DESC CMD... | ws_expect_exit CODE DESC CMD...
#   ws_done                  "<script>: N checks passed, M failed"; non-zero on any failure
# Extras:
#   ws_expect_exit accepts CODE as N, A..B (inclusive range) or "nonzero"; after it (and after
#   ws_run) $WS_RC, $WS_OUT (stdout) and $WS_ERR (stderr) hold the command's results.
#   ws_run CMD...            run, capture into $WS_RC/$WS_OUT/$WS_ERR, never fails; all output
#                            also goes to $WS_TMP/transcript
#   ws_contains DESC HAYSTACK NEEDLE ; ws_not_contains DESC HAYSTACK NEEDLE
#   ws_log MSG | ws_die MSG  narration on stderr / abort the script
#   ws_on_exit CMD...        extra cleanup command run by the EXIT trap (before servers stop)
#   ws_bg CMD...             start a background process that the EXIT trap kills ($! as usual)
#   ws_pg_dir DIR            mkdir -p DIR owned by postgres (when root)
#   ws_repo_dir DIR...       an empty file:// repository directory, as the operator makes it
#                            (install -d; or walctl init): walpush never creates one
#   pg_log DATADIR           path of that server's log file
#   pg_conf DATADIR LINE...  append settings to DATADIR/postgresql.conf
#   pg_pgbench PORT ARGS...  pgbench as postgres against PORT
#   pg_table_checksum PORT TABLE   md5 of the table's rows in a stable order
#   pg_switch_and_wait_archived PORT   pg_switch_wal() and wait until that segment is archived
#   ws_mount_tmpfs DIR SIZE  tmpfs mounted on DIR (root only), unmounted by the EXIT trap
#   ws_require_tool TOOL...  die unless $WS_BIN/TOOL was built
#   ws_same DESC WANT GOT    check two strings are equal
#   ws_line_count TEXT       number of non-empty lines
#   ws_flip_byte FILE OFFSET invert one byte (negative OFFSET counts from the end)
#   ws_tool_cmd TOOL ARGS... shell-quoted "$WS_BIN/TOOL ARGS" for archive/restore_command
#   pg_enable_archiving DATADIR COMMAND   archive_mode = on, archive_command = COMMAND
#   pg_set_archive_command PORT COMMAND   ALTER SYSTEM SET archive_command + pg_reload_conf()
#   pg_ready_count DATADIR   how many segments wait in archive_status as .ready
#   pg_base_backup PORT DEST pg_basebackup -X none (all WAL must come from the archive)
#   pg_prepare_recovery BACKUP DATADIR RESTORE_COMMAND [SETTING...]   copy + recovery.signal
#   pg_system_id DATADIR     the cluster's system identifier (pg_controldata)
#   ws_make_wal OUTDIR COUNT [INITDB ARGS]   real WAL from pgbench; sets WS_WAL_DATADIR/SYSID
#   ws_segments DIR          the 24-hex segment names in DIR, sorted
#   pgbr_setup DATADIR PORT [SETTING...]    pgBackRest config; sets the array PGBR

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WALSTORE_SOURCE_DIR=${WALSTORE_SOURCE_DIR:-$(cd "$WS_LIB_DIR/../.." && pwd)}
WALSTORE_BUILD_DIR=${WALSTORE_BUILD_DIR:-$WALSTORE_SOURCE_DIR/build}
WS_SCRIPT=$(basename "${0:-test}")
WS_PASSED=0
WS_FAILED=0
WS_RC=0
WS_OUT=
WS_ERR=
WS_SERVERS=()
WS_PIDS=()
WS_EXIT_HOOKS=()
WS_USED_PORTS=()
declare -gA WS_PORT_DIR=()
export PG_BIN WALSTORE_SOURCE_DIR WALSTORE_BUILD_DIR

ws_log() { printf '[%s %s] %s\n' "$WS_SCRIPT" "$(date +%T)" "$*" >&2; }
ws_die() { printf '%s: FATAL: %s\n' "$WS_SCRIPT" "$*" >&2; exit 1; }

ws_is_root() { [[ $(id -u) -eq 0 ]]; }

as_pg() {
  if ws_is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ws_pg_dir() {
  mkdir -p "$1"
  if ws_is_root; then chown postgres: "$1"; fi
}

ws_repo_dir() {
  local dir
  for dir in "$@"; do ws_pg_dir "$dir"; done
}

ws_setup() {
  [[ -x $PG_BIN/postgres ]] || ws_die "PostgreSQL 15 not found in $PG_BIN (run scripts/install-deps)"
  if ws_is_root; then
    id postgres >/dev/null 2>&1 || ws_die "no postgres user (install postgresql-15: scripts/install-deps)"
  fi
  WS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/walstore-$(basename "${0:-test}" .sh).XXXXXX")
  chmod 0755 "$WS_TMP"
  WS_BIN=$WS_TMP/bin
  mkdir -p "$WS_BIN" "$WS_TMP/sock"
  local tool
  for tool in walpush walfetch walctl; do
    if [[ -x $WALSTORE_BUILD_DIR/src/$tool/$tool ]]; then
      cp "$WALSTORE_BUILD_DIR/src/$tool/$tool" "$WS_BIN/$tool"
      chmod 0755 "$WS_BIN/$tool"
    fi
  done
  # postgres (a different user when we are root) must be able to use everything in here.
  if ws_is_root; then chown -R postgres: "$WS_TMP"; fi
  chmod 0755 "$WS_BIN"
  chmod 0700 "$WS_TMP/sock"
  if ws_is_root; then chown postgres: "$WS_TMP/sock"; fi
  export WS_TMP WS_BIN
  export PATH="$WS_BIN:$PG_BIN:$PATH"
  ws_sanitizer_setup
  trap ws_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  ws_log "temp dir $WS_TMP"
}

ws_require_tool() {
  local tool
  for tool in "$@"; do
    [[ -x $WS_BIN/$tool ]] || ws_die "$tool not built: expected $WALSTORE_BUILD_DIR/src/$tool/$tool"
  done
}

ws_on_exit() { WS_EXIT_HOOKS+=("$(printf '%q ' "$@")"); }

ws_bg() {
  "$@" &
  WS_PIDS+=("$!")
}

ws_cleanup() {
  local rc=$? hook dir pid mnt
  trap - EXIT
  set +e
  for hook in "${WS_EXIT_HOOKS[@]}"; do eval "$hook" >/dev/null 2>&1; done
  for pid in "${WS_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for dir in "${WS_SERVERS[@]}"; do
    if [[ -f $dir/postmaster.pid ]]; then
      as_pg "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w -t 60 stop >/dev/null 2>&1 ||
        kill -9 "$(head -1 "$dir/postmaster.pid" 2>/dev/null)" 2>/dev/null
    fi
  done
  # The tools' detached workers (they run this test's copy of the tools) end with
  # the test, before their spool is removed under them.
  if [[ -n ${WS_BIN:-} ]]; then
    ws_worker_pids | xargs -r kill -KILL 2>/dev/null
    for _ in $(seq 100); do ws_worker_running || break; sleep 0.05; done
  fi
  ws_sanitizer_reports || rc=1
  [[ $rc -eq 0 ]] || ws_show_logs
  if [[ -n ${WS_TMP:-} && -d $WS_TMP ]]; then
    # Unmount anything a test mounted below the temp dir (deepest first).
    while read -r mnt; do umount -l "$mnt" 2>/dev/null; done < <(
      awk -v p="$WS_TMP/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
    if [[ ${WS_KEEP:-0} == 1 ]]; then
      printf '%s: kept %s\n' "$WS_SCRIPT" "$WS_TMP" >&2
    else
      rm -rf "$WS_TMP"
    fi
  fi
  exit "$rc"
}

# Under scripts/test --sanitize (WALSTORE_SANITIZER_LOG_DIR set): the sanitizers of every tool
# this test starts, the detached workers included (their stderr is a spool log), write their
# reports to $WS_TMP/sanitizer/asan.<pid> or ubsan.<pid>.
ws_sanitizer_setup() {
  [[ -n ${WALSTORE_SANITIZER_LOG_DIR:-} ]] || return 0
  mkdir -p "$WS_TMP/sanitizer"
  chmod 1777 "$WS_TMP/sanitizer"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$WS_TMP/sanitizer/asan"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$WS_TMP/sanitizer/ubsan"
}
# ws_sanitizer_reports: fails (ws_fail) for each sanitizer report written since the last call,
# prints it and moves it to $WALSTORE_SANITIZER_LOG_DIR/<test dir>/.  ws_done calls it, and the
# EXIT trap again once the workers are stopped.
ws_sanitizer_reports() {
  local dir=${WS_TMP:-}/sanitizer keep report found=0
  [[ -n ${WALSTORE_SANITIZER_LOG_DIR:-} && -n ${WS_TMP:-} && -d $dir ]] || return 0
  keep=$WALSTORE_SANITIZER_LOG_DIR/$(basename "$WS_TMP")
  for report in "$dir"/*; do
    [[ -f $report ]] || continue
    ws_fail "sanitizer report $(basename "$report") (kept in $keep):"
    sed 's/^/     /' "$report"
    mkdir -p "$keep"
    mv "$report" "$keep/"
    found=1
  done
  [[ $found == 0 ]]
}

# ws_show_logs: after a failure, before the temp dir goes: the last lines of every server log
# and tool worker log of this test on stderr (a failure in CI leaves nothing else to read).
ws_show_logs() {
  local log
  [[ -n ${WS_TMP:-} && -d $WS_TMP ]] || return 0
  while IFS= read -r log; do
    printf '%s: last lines of %s:\n' "$WS_SCRIPT" "${log#"$WS_TMP"/}" >&2
    tail -n 25 "$log" | sed 's/^/     /' >&2
  done < <(find "$WS_TMP" -maxdepth 4 -type f \( -name '*.log' -o -name 'pg_ctl.*.out' \) \
    -size +0 2>/dev/null | sort)
}

ws_free_port() {
  local port
  while :; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [[ " ${WS_USED_PORTS[*]} " != *" $port "* ]]; then break; fi
  done
  WS_USED_PORTS+=("$port")
  echo "$port"
}

pg_log() { echo "$1.log"; }

pg_conf() {
  local dir=$1 line
  shift
  for line in "$@"; do printf '%s\n' "$line" >>"$dir/postgresql.conf"; done
}

pg_init() {
  local dir=$1
  shift
  ws_pg_dir "$(dirname "$dir")"
  as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C "$@" \
    >"$WS_TMP/initdb.$(basename "$dir").log" 2>&1 ||
    { cat "$WS_TMP/initdb.$(basename "$dir").log" >&2; ws_die "initdb $dir failed"; }
  pg_conf "$dir" \
    "# walstore test settings" \
    "listen_addresses = '127.0.0.1'" \
    "unix_socket_directories = '$WS_TMP/sock'" \
    "fsync = off" \
    "shared_buffers = 64MB" \
    "max_wal_senders = 4" \
    "wal_level = replica" \
    "log_min_messages = info" \
    "log_line_prefix = '%m [%p] '"
}

pg_start() {
  local dir=$1 port=$2
  WS_SERVERS+=("$dir")
  WS_PORT_DIR[$port]=$dir
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$(pg_log "$dir")" -o "-p $port" -w -t 300 start \
    >"$WS_TMP/pg_ctl.$(basename "$dir").out" 2>&1; then
    ws_log "server in $dir did not start; last log lines:"
    tail -n 15 "$(pg_log "$dir")" >&2 2>/dev/null || true
    return 1
  fi
}

pg_stop() {
  as_pg "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 120 stop >/dev/null
}

pg_psql() {
  as_pg "$PG_BIN/psql" -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres \
    -d "${PG_DB:-postgres}" -c "$2"
}

pg_pgbench() {
  local port=$1
  shift
  as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@" "${PG_DB:-postgres}"
}

pg_wait_ready() {
  local port=$1 i
  for ((i = 0; i < 600; i++)); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then return 0; fi
    sleep 0.5
  done
  ws_log "server on port $port not ready after 300 s"
  return 1
}

# Waits until the server on PORT has left recovery.  Note that pg_ctl -w (pg_start) returns as
# soon as archive recovery has started, before any WAL is fetched.  Returns 1 at once if the
# server started by pg_start on that port has stopped (e.g. recovery aborted), 2 on timeout.
pg_wait_recovery_done() {
  local port=$1 i state dir=${WS_PORT_DIR[$1]:-}
  for ((i = 0; i < 600; i++)); do
    if [[ -n $dir && ! -f $dir/postmaster.pid ]]; then
      ws_log "server in $dir stopped during recovery; last log lines:"
      tail -n 8 "$(pg_log "$dir")" >&2 2>/dev/null || true
      return 1
    fi
    state=$(pg_psql "$port" 'select pg_is_in_recovery()' 2>/dev/null || true)
    if [[ $state == f ]]; then return 0; fi
    sleep 0.5
  done
  ws_log "server on port $port still in recovery after 300 s"
  return 2
}

# md5 over every row of TABLE, ordered by its whole row text: equal iff the contents are equal.
pg_table_checksum() {
  pg_psql "$1" "select md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) || ':' || count(*) from $2 t"
}

# Ends the current segment and waits until the archiver has stored it.
pg_switch_and_wait_archived() {
  local port=$1 seg i last=''
  seg=$(pg_psql "$port" "select pg_walfile_name(pg_switch_wal())")
  for ((i = 0; i < 600; i++)); do
    last=$(pg_psql "$port" "select coalesce(last_archived_wal, '') from pg_stat_archiver")
    # Same timeline in a test, so name order is WAL order.
    if [[ -n $last && ! $last < $seg ]]; then return 0; fi
    sleep 0.5
  done
  ws_log "segment $seg not archived after 300 s (last archived: ${last:-none}):"
  pg_psql "$port" "select * from pg_stat_archiver" >&2 || true
  return 1
}

ws_make_key() {
  local file=$1
  (umask 077 && openssl rand -hex 32 >"$file")
  chmod 0600 "$file"
  if ws_is_root; then chown postgres: "$file"; fi
}

ws_mount_tmpfs() {
  ws_is_root || ws_die "ws_mount_tmpfs needs root"
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0777" walstore-test "$1"
}

# ---- checks ---------------------------------------------------------------------------------

ws_pass() {
  WS_PASSED=$((WS_PASSED + 1))
  printf 'ok   - %s\n' "$1"
}

ws_fail() {
  WS_FAILED=$((WS_FAILED + 1))
  printf 'FAIL - %s\n' "$1"
}

ws_run() {
  local out=$WS_TMP/.ws_run.out err=$WS_TMP/.ws_run.err
  WS_RC=0
  "$@" >"$out" 2>"$err" || WS_RC=$?
  WS_OUT=$(cat "$out")
  WS_ERR=$(cat "$err")
  # Everything the commands printed, for checks over the whole run (e.g. "no secret printed").
  cat "$out" "$err" >>"$WS_TMP/transcript"
  return 0
}

ws_show_last() {
  printf '     exit %s\n' "$WS_RC"
  [[ -z $WS_OUT ]] || printf '     stdout: %s\n' "${WS_OUT//$'\n'/$'\n'             }"
  [[ -z $WS_ERR ]] || printf '     stderr: %s\n' "${WS_ERR//$'\n'/$'\n'             }"
}

ws_check() {
  local desc=$1
  shift
  ws_run "$@"
  if [[ $WS_RC -eq 0 ]]; then
    ws_pass "$desc"
  else
    ws_fail "$desc"
    ws_show_last
  fi
}

ws_code_matches() {
  local want=$1 rc=$2
  case $want in
    nonzero) [[ $rc -ne 0 ]] ;;
    *..*) [[ $rc -ge ${want%..*} && $rc -le ${want#*..} ]] ;;
    *) [[ $rc -eq $want ]] ;;
  esac
}

ws_expect_exit() {
  local want=$1 desc=$2
  shift 2
  ws_run "$@"
  if ws_code_matches "$want" "$WS_RC"; then
    ws_pass "$desc (exit $WS_RC)"
  else
    ws_fail "$desc: expected exit $want"
    ws_show_last
  fi
}

ws_contains() {
  if [[ $2 == *"$3"* ]]; then
    ws_pass "$1"
  else
    ws_fail "$1: '$3' not found in:"
    printf '     %s\n' "${2//$'\n'/$'\n'     }"
  fi
}

ws_not_contains() {
  if [[ $2 != *"$3"* ]]; then
    ws_pass "$1"
  else
    ws_fail "$1: unexpected '$3' in:"
    printf '     %s\n' "${2//$'\n'/$'\n'     }"
  fi
}

ws_done() {
  ws_sanitizer_reports || true
  printf '%s: %d checks passed, %d failed\n' "$WS_SCRIPT" "$WS_PASSED" "$WS_FAILED"
  if [[ $WS_FAILED -gt 0 || $WS_PASSED -eq 0 ]]; then exit 1; fi
  exit 0
}

# ---- walstore + PostgreSQL building blocks ------------------------------------------------------

# ws_tool_cmd TOOL ARGS...: a shell-quoted command line running $WS_BIN/TOOL, for
# archive_command / restore_command (PostgreSQL runs it with sh).
ws_tool_cmd() {
  local tool=$1
  shift
  printf '%q' "$WS_BIN/$tool"
  if (($# > 0)); then printf ' %q' "$@"; fi
}

# pg_enable_archiving DATADIR COMMAND: archive_mode=on with archive_command=COMMAND.
pg_enable_archiving() {
  pg_conf "$1" "archive_mode = on" "archive_command = '${2//\'/\'\'}'"
}

# pg_set_archive_command PORT COMMAND: archive_command = COMMAND on the running server (ALTER
# SYSTEM, then pg_reload_conf(); the archiver uses it from its next file on).
pg_set_archive_command() {
  pg_psql "$1" "alter system set archive_command = '${2//\'/\'\'}'" >/dev/null
  pg_psql "$1" "select pg_reload_conf()" >/dev/null
}

# pg_ready_count DATADIR: how many files of DATADIR/pg_wal/archive_status are .ready (bash only:
# cheap enough to poll while a load runs).
pg_ready_count() {
  local f n=0
  for f in "$1"/pg_wal/archive_status/*.ready; do [[ -e $f ]] && n=$((n + 1)); done
  echo "$n"
}

# pg_base_backup PORT DEST: a plain-format base backup without WAL (-X none), so every WAL
# segment that recovery needs must come from the archive.
# bench_backup_cluster WALPUSH_OPTION...: the set-up of the base-backup benchmarks: a key
# ($WS_TMP/key), a file repository (repo, in $WS_TMP/wsrepo) and a PostgreSQL cluster in
# $WS_TMP/data (data) on a free port (port) archiving with walpush --repo $repo
# WALPUSH_OPTION... --compression lz4, with room for a large load; sets conninfo.
bench_backup_cluster() {
  ws_make_key "$WS_TMP/key"
  ws_pg_dir "$WS_TMP/wsrepo"
  repo="file://$WS_TMP/wsrepo"
  data=$WS_TMP/data
  port=$(ws_free_port)
  pg_init "$data"
  pg_enable_archiving "$data" "$(ws_tool_cmd walpush --repo "$repo" "$@" --compression lz4 %p)"
  pg_conf "$data" "max_wal_size = 4GB" "checkpoint_timeout = 30min"
  pg_start "$data" "$port"
  conninfo="host=127.0.0.1 port=$port user=postgres"
}

pg_base_backup() {
  ws_pg_dir "$(dirname "$2")"
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$1" -U postgres -D "$2" -X none -c fast \
    --no-sync >"$WS_TMP/pg_basebackup.$(basename "$2").log" 2>&1 ||
    { cat "$WS_TMP/pg_basebackup.$(basename "$2").log" >&2; return 1; }
}

# pg_prepare_recovery BACKUP DATADIR RESTORE_COMMAND [SETTING...]: copies the base backup to
# DATADIR and sets it up for archive recovery with RESTORE_COMMAND plus the given settings.
pg_prepare_recovery() {
  local backup=$1 dir=$2 cmd=$3
  shift 3
  as_pg cp -a "$backup" "$dir"
  as_pg touch "$dir/recovery.signal"
  pg_conf "$dir" "archive_mode = off" "restore_command = '${cmd//\'/\'\'}'" "$@"
}

pg_system_id() {
  "$PG_BIN/pg_controldata" "$1" | awk -F': *' '/^Database system identifier/ { print $2 }'
}

# ws_make_wal OUTDIR COUNT [INITDB ARGS...]: real WAL from pgbench.  Runs a throwaway cluster in
# $WS_TMP/walsrc archiving with cp into OUTDIR until OUTDIR holds at least COUNT segments, then
# stops it.  Sets WS_WAL_DATADIR (the cluster, for pg_control) and WS_WAL_SYSID.
# WS_WAL_SCALE: pgbench -i scale per round (4); WS_WAL_TPCB_SECONDS: seconds of pgbench's TPC-B
# load after each initialisation (0), for WAL with updates and full-page images, not only COPY.
ws_make_wal() {
  local out=$1 count=$2 port n=0 scale=${WS_WAL_SCALE:-4}
  shift 2
  WS_WAL_DATADIR=$WS_TMP/walsrc
  ws_pg_dir "$out"
  pg_init "$WS_WAL_DATADIR" "$@"
  pg_enable_archiving "$WS_WAL_DATADIR" "test ! -f '$out/%f' && cp %p '$out/%f'"
  port=$(ws_free_port)
  pg_start "$WS_WAL_DATADIR" "$port"
  while :; do
    n=$(find "$out" -maxdepth 1 -name '[0-9A-F]*' -regextype posix-extended \
      -regex '.*/[0-9A-F]{24}' | wc -l)
    ((n >= count)) && break
    pg_pgbench "$port" -i -q -s "$scale" >/dev/null 2>&1
    if [[ ${WS_WAL_TPCB_SECONDS:-0} != 0 ]]; then
      pg_pgbench "$port" -c 2 -n -T "$WS_WAL_TPCB_SECONDS" >/dev/null 2>&1
    fi
    pg_switch_and_wait_archived "$port"
  done
  pg_stop "$WS_WAL_DATADIR"
  WS_WAL_SYSID=$(pg_system_id "$WS_WAL_DATADIR")
  export WS_WAL_DATADIR WS_WAL_SYSID
}

# ws_ppid PID: the parent of PID; fails once PID is gone.
ws_ppid() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[1]}"
}
# ws_is_tool PID: PID runs this test's walfetch or walpush ($WS_BIN is this test's own).
ws_is_tool() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  [[ $exe == "$WS_BIN/walfetch" || $exe == "$WS_BIN/walpush" ]]
}
# ws_worker_pids: the pids of this test's background workers (walfetch's read-ahead, walpush's
# push-ahead: the tool starts itself, /proc/self/exe, with --prefetch-worker /
# --push-ahead-worker), from the moment the tool forks one, before its exec: a worker runs this
# test's walfetch/walpush binary and is the child of such a tool or, once that has returned, an
# orphan.  The tools someone waits for (run by this script or its subshells, or by a PostgreSQL
# server as restore_command / archive_command) are not workers.  So after a tool has returned,
# "no worker runs" means that the worker it started has ended, not that it has not begun yet.
ws_worker_pids() {
  local pid up
  for pid in $(pgrep -x 'wal(fetch|push)'); do
    ws_is_tool "$pid" || continue
    up=$(ws_ppid "$pid") || continue
    if ! ws_is_tool "$up"; then
      while [[ -n $up && $up -gt 1 && $up != "$$" ]] &&
        [[ $(readlink "/proc/$up/exe" 2>/dev/null) != "$PG_BIN/postgres" ]]; do
        up=$(ws_ppid "$up") || up=
      done
      [[ -n $up && $up -gt 1 ]] && continue
    fi
    echo "$pid"
  done
}
# ws_worker_running: true while such a worker of this test runs.
ws_worker_running() { [[ -n $(ws_worker_pids) ]]; }

# ws_wait_workers: waits (up to 60 s) until no background worker of this test runs.
ws_wait_workers() {
  local i
  for i in $(seq 1200); do
    ws_worker_running || return 0
    sleep 0.05
  done
  ws_die "a background worker is still running after 60 s"
}

# ws_quiesce: waits (up to 60 s each) until no background work of this test's tools runs:
# walstore's workers (ws_wait_workers) and pgBackRest's async processes (archive-push:async,
# archive-get:async) of a configuration in $WS_TMP.  For benchmarks, outside timed regions.
ws_quiesce() {
  local i
  ws_wait_workers
  for ((i = 0; i < 12000; i++)); do
    pgrep -f -- "pgbackrest .*--config=$WS_TMP/.*:async" >/dev/null || return 0
    sleep 0.005
  done
  ws_die "a pgbackrest async process is still running after 60 s"
}

# ws_segments DIR: the 24-hex segment names in DIR, sorted.
ws_segments() {
  find "$1" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' -printf '%f\n' | sort
}

# ws_same DESC WANT GOT: passes when the two strings are equal.
ws_same() {
  if [[ $2 == "$3" ]]; then
    ws_pass "$1 ($3)"
  else
    ws_fail "$1: expected '$2', got '$3'"
  fi
}

# ws_line_count TEXT: number of non-empty lines.
ws_line_count() { grep -c . <<<"$1" || true; }

# ws_flip_byte FILE OFFSET: inverts every bit of the byte at OFFSET (negative: from the end).
ws_flip_byte() {
  python3 - "$1" "$2" <<'PY'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    if off < 0:
        off += size
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
PY
}

# pgbr_setup DATADIR PORT [GLOBAL SETTING...]: a pgBackRest configuration for the cluster in
# DATADIR (listening on PORT) in $WS_TMP/pgbackrest.conf: posix repository $WS_TMP/pgbr-repo,
# lz4, console warnings only, stanza $PGBR_STANZA (default bench), plus the given [global]
# settings (e.g. archive-async=n).  Sets the array PGBR=(pgbackrest --config=... --stanza=...);
# run it as postgres: as_pg "${PGBR[@]}" stanza-create (the cluster must be running for that).
pgbr_setup() {
  local data=$1 port=$2 d
  shift 2
  for d in pgbr-repo pgbr-log pgbr-lock pgbr-spool; do ws_pg_dir "$WS_TMP/$d"; done
  {
    printf '%s\n' "[global]" "repo1-path=$WS_TMP/pgbr-repo" "log-path=$WS_TMP/pgbr-log" \
      "lock-path=$WS_TMP/pgbr-lock" "spool-path=$WS_TMP/pgbr-spool" "log-level-console=warn" \
      "log-level-file=off" "compress-type=lz4" "$@"
    printf '%s\n' "" "[${PGBR_STANZA:-bench}]" "pg1-path=$data" "pg1-port=$port" \
      "pg1-socket-path=$WS_TMP/sock" "pg1-user=postgres"
  } >"$WS_TMP/pgbackrest.conf"
  chmod 0644 "$WS_TMP/pgbackrest.conf"
  # shellcheck disable=SC2034  # used by the caller
  PGBR=(pgbackrest "--config=$WS_TMP/pgbackrest.conf" "--stanza=${PGBR_STANZA:-bench}")
}
