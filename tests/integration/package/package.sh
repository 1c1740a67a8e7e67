#!/usr/bin/env bash
# The Debian package, built, installed and run: packaging/build-deb builds the .deb from this
# source tree, dpkg installs it on this machine, and the tools in /usr/bin (not the build
# tree's) archive a real PostgreSQL 15's WAL (walpush as archive_command), take a backup,
# verify and prune with the command lines of the installed systemd units, fetch segments back
# (walfetch, compared byte for byte with what PostgreSQL archived) and write the status
# textfile with the installed walstore-textfile.  The units are checked with
# `systemd-analyze verify` and must be installed but not enabled.  The package is purged on
# exit, also on failure.
#
# Needs root (dpkg -i); a walstore package that this test did not install is left alone (the
# test is skipped, exit 77).  Runs alone: a lock serialises runs from several build trees.
# Nothing here touches the build tree's binaries or /etc/walstore: the configuration is a
# file in $WS_TMP (WALSTORE_CONFIG / -c).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"

if ! ws_is_root; then
  echo "package.sh: SKIP: installing a package (dpkg -i) needs root"
  exit 77
fi
if ! command -v dpkg >/dev/null; then
  echo "package.sh: SKIP: no dpkg: not a Debian system"
  exit 77
fi
exec {lock_fd}>/tmp/walstore-package-test.lock
flock -w 1800 "$lock_fd" || ws_die "another package test still holds /tmp/walstore-package-test.lock"
if [[ $(dpkg-query -W -f='${db:Status-Status}' walstore 2>/dev/null) == installed ]]; then
  echo "package.sh: SKIP: a walstore package is installed on this machine and this test would" \
    "replace and then remove it (dpkg --purge walstore to run the test)"
  exit 77
fi
for tool in dpkg-buildpackage dh systemd-analyze; do
  command -v "$tool" >/dev/null || ws_die "$tool missing: run scripts/install-deps"
done
ws_setup
started=$SECONDS

# ---- build ----------------------------------------------------------------------------------
# nocheck: the unit tests are the unit suite's job, here the package is the subject; noddebs:
# no debug symbols package; DEB_CXXFLAGS_STRIP=-g (dpkg-buildflags): no debug information,
# which changes no generated code and shortens the build, the longest part of this test.
# WALSTORE_PACKAGE_DEB=FILE installs a package built before instead (only for working on this
# script by hand: the meson test always builds from this tree).
t0=$SECONDS
mkdir -p "$WS_TMP/dist"
if [[ -n ${WALSTORE_PACKAGE_DEB:-} ]]; then
  ws_log "WALSTORE_PACKAGE_DEB: installing $WALSTORE_PACKAGE_DEB, not a package of this tree"
  cp "$WALSTORE_PACKAGE_DEB" "$WS_TMP/dist/"
elif ! DEB_BUILD_OPTIONS="nocheck noddebs" DEB_CXXFLAGS_STRIP=-g \
  "$WALSTORE_SOURCE_DIR/packaging/build-deb" "$WS_TMP/dist" >"$WS_TMP/build-deb.log" 2>&1; then
  tail -n 40 "$WS_TMP/build-deb.log"
  ws_die "packaging/build-deb failed (log above)"
fi
shopt -s nullglob
debs=("$WS_TMP"/dist/walstore_*.deb)
shopt -u nullglob
ws_same "build-deb made one package" 1 "${#debs[@]}"
((${#debs[@]} == 1)) || ws_die "no package to install"
deb=${debs[0]}
ws_log "package built in $((SECONDS - t0)) s: $(basename "$deb")"

# ---- install --------------------------------------------------------------------------------
ws_on_exit dpkg --purge walstore
t0=$SECONDS
if ! dpkg -i "$deb" >"$WS_TMP/dpkg.log" 2>&1; then
  # Missing dependencies: apt-get -f installs them and finishes the configuration.
  DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq --no-install-recommends \
    >>"$WS_TMP/dpkg.log" 2>&1
fi
ws_same "package installed" installed "$(dpkg-query -W -f='${db:Status-Status}' walstore)"
[[ $(dpkg-query -W -f='${db:Status-Status}' walstore) == installed ]] ||
  { cat "$WS_TMP/dpkg.log"; ws_die "dpkg -i failed"; }
ws_log "installed in $((SECONDS - t0)) s"

files=$(dpkg -L walstore)
units=(walstore-backup.service walstore-backup.timer walstore-prune.service
  walstore-verify.service walstore-verify.timer walstore-status.service walstore-status.timer)
for f in /usr/bin/walpush /usr/bin/walfetch /usr/bin/walctl /usr/libexec/walstore/walstore-textfile \
  /usr/share/man/man1/walctl.1.gz /usr/share/doc/walstore/operations.md \
  /usr/share/doc/walstore/README.Debian /lib/systemd/system/walstore-.service.d/10-walstore.conf \
  "${units[@]/#//lib/systemd/system/}"; do
  if grep -qx "$f" <<<"$files" && [[ -e $f ]]; then ws_pass "installed: $f"; else ws_fail "not installed: $f"; fi
done
version=$(dpkg-query -W -f='${Version}' walstore)
ws_expect_exit 0 "/usr/bin/walctl --version" /usr/bin/walctl --version
ws_contains "/usr/bin/walctl is version $version" "$WS_OUT$WS_ERR" "$version"

# Installed, not enabled: no timer is linked into timers.target, nothing is started.
enabled=$(find /etc/systemd/system -name 'walstore-*' 2>/dev/null)
ws_same "no walstore unit enabled" "" "$enabled"

# ---- systemd-analyze verify -----------------------------------------------------------------
# Offline (no systemd needs to run): the unit files with their drop-ins (walstore-.service.d)
# must load, every setting must parse and the executables they name must exist.  --man=no: the
# man page is checked above, and a machine without man-db would fail here for that alone.
ws_run systemd-analyze verify --man=no "${units[@]/#//lib/systemd/system/}"
ws_same "systemd-analyze verify: exit 0" 0 "$WS_RC"
ws_same "systemd-analyze verify: no warnings" "" "$WS_ERR$WS_OUT"
# The shared drop-in is read by verify: a bad setting there is reported.
mkdir -p "$WS_TMP/units/walstore-.service.d"
sed 's/^ProtectSystem=strict/ProtectSystem=bogus/' \
  /lib/systemd/system/walstore-.service.d/10-walstore.conf \
  >"$WS_TMP/units/walstore-.service.d/10-walstore.conf"
cp /lib/systemd/system/walstore-verify.service "$WS_TMP/units/"
ws_run env SYSTEMD_UNIT_PATH="$WS_TMP/units:" systemd-analyze verify --man=no \
  "$WS_TMP/units/walstore-verify.service"
ws_contains "verify reads the shared drop-in (a bad ProtectSystem= is reported)" "$WS_ERR$WS_OUT" \
  "walstore-.service.d/10-walstore.conf"
ws_contains "  naming the bad value" "$WS_ERR$WS_OUT" "bogus"

# unit_exec UNIT KEY: the command line of KEY (ExecStart, ExecStopPost) in the installed UNIT.
unit_exec() { sed -n "s/^$2=[+-]*//p" "/lib/systemd/system/$1"; }
for u in walstore-backup.service walstore-prune.service walstore-verify.service \
  walstore-status.service; do
  ws_contains "$u runs an installed program" "$(unit_exec "$u" ExecStart)" "/usr/"
done

# ---- a cluster archiving with /usr/bin/walpush ----------------------------------------------
repo=$WS_TMP/repo
ws_repo_dir "$repo"
ws_make_key "$WS_TMP/key"
config=$WS_TMP/walstore.toml
# No background workers: they would run /usr/bin's tools, which the harness does not track.
printf '%s\n' "repository = \"file://$repo\"" 'compression = "zstd"' \
  "encryption_key_file = \"$WS_TMP/key\"" 'prefetch = 0' 'push_ahead = 0' >"$config"
chmod 0644 "$config"
copies=$WS_TMP/archived
ws_pg_dir "$copies"
primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pg_enable_archiving "$primary" \
  "/usr/bin/walpush -c $(printf %q "$config") %p && cp %p $(printf %q "$copies")/%f"
pg_start "$primary" "$port" || ws_die "primary did not start"
pg_pgbench "$port" -i -q -s 2 >/dev/null 2>&1 || ws_die "pgbench -i failed"
for _ in 1 2 3; do
  pg_psql "$port" "insert into pgbench_history (tid, bid, aid, delta, mtime) select 1, 1, g, g, now() from generate_series(1, 20000) g" ||
    ws_die "insert failed"
  pg_switch_and_wait_archived "$port" || ws_die "archiving with /usr/bin/walpush failed"
done
mapfile -t archived < <(ws_segments "$copies")
sysid=$(pg_system_id "$primary")
ws_check "at least 3 segments archived by /usr/bin/walpush (${#archived[@]})" test "${#archived[@]}" -ge 3
ws_check "the archive holds them" test -n "$(find "$repo/$sysid/wal" -type f 2>/dev/null | head -1)"

# unit_run UNIT: runs the installed UNIT's ExecStart as postgres from /, as systemd would, with
# the test's configuration and server.
unit_run() {
  local -a cmd
  read -r -a cmd <<<"$(unit_exec "$1" ExecStart)"
  ws_run as_pg env -C / WALSTORE_CONFIG="$config" PGHOST="$WS_TMP/sock" PGPORT="$port" \
    PGUSER=postgres "${cmd[@]}"
}

# ---- backup, verify, prune: the units' command lines --------------------------------------
unit_run walstore-backup.service
ws_same "walstore-backup.service's command (walctl backup) exits 0" 0 "$WS_RC"
[[ $WS_RC -eq 0 ]] || ws_show_last
# complete_backups: the number of complete backups /usr/bin/walctl lists.
complete_backups() {
  ws_run as_pg /usr/bin/walctl -c "$config" list --json
  python3 -c 'import json,sys; print(sum(b["status"] == "complete" for b in json.load(sys.stdin)["backups"]))' <<<"$WS_OUT" 2>&1
}
ws_same "/usr/bin/walctl list: one complete backup" 1 "$(complete_backups)"
unit_run walstore-verify.service
ws_same "walstore-verify.service's command (walctl verify) exits 0" 0 "$WS_RC"
[[ $WS_RC -eq 0 ]] || ws_show_last

# ---- walfetch: segments back, byte for byte -----------------------------------------------
fetched=$WS_TMP/fetched
ws_pg_dir "$fetched"
# fetch_and_compare SEG: /usr/bin/walfetch SEG gives the bytes PostgreSQL archived.
fetch_and_compare() {
  ws_expect_exit 0 "/usr/bin/walfetch $1" as_pg /usr/bin/walfetch -c "$config" \
    --system-id "$sysid" "$1" "$fetched/$1"
  ws_check "$1 fetched equals the segment PostgreSQL archived" cmp "$copies/$1" "$fetched/$1"
  rm -f "$fetched/$1"
}
fetch_and_compare "${archived[0]}"
fetch_and_compare "${archived[-1]}"
ws_expect_exit 1 "/usr/bin/walfetch of a segment never archived: 1 (missing)" \
  as_pg /usr/bin/walfetch -c "$config" --system-id "$sysid" 0000000100000000000000FF \
  "$fetched/0000000100000000000000FF"

unit_run walstore-prune.service
ws_same "walstore-prune.service's command (walctl prune) exits 0" 0 "$WS_RC"
[[ $WS_RC -eq 0 ]] || ws_show_last
ws_same "prune kept the backup" 1 "$(complete_backups)"
# --keep-days 7 keeps the backup and the WAL from its start on; the segments archived before
# it are no longer needed, and prune removed them.
ws_expect_exit 1 "after prune, ${archived[0]} (before the backup) is gone" \
  as_pg /usr/bin/walfetch -c "$config" --system-id "$sysid" "${archived[0]}" "$fetched/${archived[0]}"
mapfile -t archived < <(ws_segments "$copies")
fetch_and_compare "${archived[-1]}"

# ---- the status textfile ------------------------------------------------------------------
textfile=/usr/libexec/walstore/walstore-textfile
rundir=$WS_TMP/run
ws_pg_dir "$rundir"
ws_expect_exit 0 "walstore-textfile collect (as postgres)" \
  as_pg env WALSTORE_CONFIG="$config" "$textfile" collect "$rundir/walstore.prom"
ws_contains "collect: walstore_up 1 for the cluster" "$(cat "$rundir/walstore.prom" 2>&1)" \
  "walstore_up{system_id=\"$sysid\",repository=\"file://$repo\"} 1"
ws_contains "collect: one complete backup" "$(cat "$rundir/walstore.prom" 2>&1)" \
  "walstore_complete_backups{system_id=\"$sysid\",repository=\"file://$repo\"} 1"
node_dir=$WS_TMP/node-exporter
mkdir -p "$node_dir"
ws_expect_exit 0 "walstore-textfile publish (as root)" "$textfile" publish "$rundir/walstore.prom" "$node_dir"
ws_check "published file equals the collected one" cmp "$rundir/walstore.prom" "$node_dir/walstore.prom"
ws_same "published file mode" 644 "$(stat -c %a "$node_dir/walstore.prom")"
ws_same "no temp file left in the textfile directory" "walstore.prom" "$(ls -A "$node_dir")"
# A repository that cannot be read: walstore_up 0 is what Prometheus gets, and the unit fails.
printf '%s\n' "repository = \"file://$WS_TMP/no-such-repo\"" >"$WS_TMP/broken.toml"
chmod 0644 "$WS_TMP/broken.toml"
ws_expect_exit 24 "collect with a missing repository exits with walctl's code" \
  as_pg env WALSTORE_CONFIG="$WS_TMP/broken.toml" "$textfile" collect "$rundir/walstore.prom"
ws_contains "collect failure: walstore_up 0" "$(cat "$rundir/walstore.prom" 2>&1)" $'\nwalstore_up 0\n'
ws_expect_exit 0 "publish the failure" "$textfile" publish "$rundir/walstore.prom" "$node_dir"
ws_contains "published: walstore_up 0" "$(cat "$node_dir/walstore.prom")" "walstore_status_exit_code 24"
ws_expect_exit 1 "publish into a missing directory fails" "$textfile" publish \
  "$rundir/walstore.prom" "$WS_TMP/no-such-dir"
ws_contains "  and says what to do" "$WS_ERR" "TEXTFILE_DIR"

# ---- removal ----------------------------------------------------------------------------------
pg_stop "$primary"
ws_expect_exit 0 "dpkg --purge walstore" dpkg --purge walstore
ws_check "/usr/bin/walctl is gone" test ! -e /usr/bin/walctl
ws_check "the units are gone" test ! -e /lib/systemd/system/walstore-backup.service
ws_log "package test took $((SECONDS - started)) s"
ws_done
