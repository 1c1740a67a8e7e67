#!/usr/bin/env bash
# walctl restore of backups whose tars try to write outside the target directory (the
# repository is not trusted with the local file system): a symlink out of the target and a
# member written through it, a directory member "escape/." after such a link (chmod through
# it), "..", an absolute path, a file the manifest does not list, a hard link, and a file
# written through the pg_tblspc/<oid> link of a real tablespace.  Each restore must fail
# (exit 10, corrupt) and leave everything outside the target exactly as it was; the same
# staging with a well-formed tar restores.  The backups are hand-made tars stored through the
# library by stage_backup (no PostgreSQL would send them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
ws_setup
ws_require_tool walctl
[[ -x ${STAGE_BACKUP:-} ]] || ws_die "STAGE_BACKUP (tests/integration/walctl/stage_backup) not built"

repo=$WS_TMP/repo
mkdir -p "$repo"
sysid=7312345678901234567
outside=$WS_TMP/outside
mkdir -p "$outside/dir"
echo original >"$outside/victim"
chmod 755 "$outside" "$outside/dir"
chmod 644 "$outside/victim"
touch -d '2020-01-01' "$outside/victim" "$outside/dir" "$outside"
snapshot() { find "$outside" -printf '%p %m %s %T@ %y\n' | sort; md5sum "$outside/victim"; }
before=$(snapshot)

# One tar and one manifest per case, in $WS_TMP/cases.
python3 - "$WS_TMP/cases" "$outside" <<'EOF'
import hashlib, io, json, os, sys, tarfile
out, outside = sys.argv[1], sys.argv[2]
os.makedirs(out)
DATA = b"owned\n"

def member(name, kind="file", link="", data=DATA):
    info = tarfile.TarInfo(name)
    info.mtime = 1795000000
    if kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o777
    elif kind == "symlink":
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, link
    else:
        info.size, info.mode = len(data), 0o666
    return info, (io.BytesIO(data) if kind == "file" else None)

def write_case(case, members, listed):
    with tarfile.open(os.path.join(out, case + ".tar"), "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            tar.addfile(*member(*m))
    files = [{"Path": p, "Size": len(DATA), "Last-Modified": "2026-11-29 10:00:00 GMT"} for p in listed]
    body = json.dumps({"PostgreSQL-Backup-Manifest-Version": 1, "Files": files,
                       "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2001000"}]})
    text = body[:-1] + ",\n"  # the checksum covers everything up to this newline
    text += '"Manifest-Checksum": "%s"}\n' % hashlib.sha256(text.encode()).hexdigest()
    with open(os.path.join(out, case + ".manifest"), "w") as f:
        f.write(text)

write_case("good", [("PG_VERSION",), ("base", "dir"), ("base/1", "dir"), ("base/1/1259",),
                    ("pg_notify", "dir")], ["PG_VERSION", "base/1/1259"])
write_case("escape", [("escape", "symlink", outside), ("escape/victim",)], ["escape/victim"])
write_case("escape-new", [("escape", "symlink", outside), ("escape/new",)], ["escape/new"])
write_case("dotdir", [("escape", "symlink", outside), ("escape/.", "dir")], [])
write_case("dotdir-alone", [("escape", "dir"), ("escape/.", "dir")], [])
write_case("dotdot", [("../outside/victim",)], ["../outside/victim"])
write_case("dotdot-deep", [("base", "dir"), ("base/../../outside/victim",)],
           ["base/../../outside/victim"])
write_case("absolute", [(outside + "/victim",)], [outside + "/victim"])
write_case("unlisted", [("PG_VERSION",), ("postgresql.conf",)], ["PG_VERSION"])
write_case("hardlink", [("victim", "hardlink", outside + "/victim")], ["victim"])
write_case("tblspc", [("pg_tblspc", "dir"), ("pg_tblspc/16384", "symlink", outside),
                      ("pg_tblspc/16384/victim",)], ["pg_tblspc/16384/victim"])
EOF

restore() {
  local case=$1
  shift
  "$WS_BIN/walctl" --repo "file://$repo" --system-id "$sysid" restore "$case" \
    "$WS_TMP/target-$case" --restore-command false "$@"
}

ws_check "stage the well-formed backup" "$STAGE_BACKUP" "file://$repo" "$sysid" good \
  "$WS_TMP/cases/good.manifest" "$WS_TMP/cases/good.tar"
ws_expect_exit 0 "a well-formed staged backup restores" restore good
ws_same "its file is there" "$(printf 'owned')" "$(cat "$WS_TMP/target-good/base/1/1259")"
ws_check "with the directories PostgreSQL needs" test -d "$WS_TMP/target-good/pg_notify" \
  -a -d "$WS_TMP/target-good/pg_wal/archive_status"

for case in escape escape-new dotdir dotdir-alone dotdot dotdot-deep absolute unlisted hardlink; do
  what=refusing
  [[ $case == unlisted ]] && what="not in its manifest"
  ws_check "stage '$case'" "$STAGE_BACKUP" "file://$repo" "$sysid" "$case" \
    "$WS_TMP/cases/$case.manifest" "$WS_TMP/cases/$case.tar"
  ws_expect_exit 10 "restore of '$case' is refused as corrupt" restore "$case"
  ws_contains "'$case': the message says what was refused" "$WS_ERR" "$what"
  ws_same "'$case': nothing outside the target changed" "$before" "$(snapshot)"
  ws_check "'$case': the failed restore removed its target" test ! -e "$WS_TMP/target-$case"
done

# A real tablespace's link must not be written through either.
mkdir -p "$WS_TMP/ts"
chmod 700 "$WS_TMP/ts"
printf '' >"$WS_TMP/cases/empty.tar"
ws_check "stage 'tblspc'" "$STAGE_BACKUP" "file://$repo" "$sysid" tblspc \
  "$WS_TMP/cases/tblspc.manifest" "$WS_TMP/cases/tblspc.tar" "16384=$outside=$WS_TMP/cases/empty.tar"
ws_expect_exit 10 "restore through a tablespace link is refused" restore tblspc \
  --tablespace-map "$outside=$WS_TMP/ts"
ws_contains "the message names the link" "$WS_ERR" "symbolic link"
ws_same "'tblspc': nothing outside the target changed" "$before" "$(snapshot)"
ws_same "'tblspc': the tablespace directory is empty again" "" "$(ls -A "$WS_TMP/ts")"

# The record names where a tablespace goes; without a key it is not authenticated, so walctl
# creates nothing where it says (the operator names the place), and a mapped place may not
# overlap the data directory.
ws_check "stage 'tsplace'" "$STAGE_BACKUP" "file://$repo" "$sysid" tsplace \
  "$WS_TMP/cases/good.manifest" "$WS_TMP/cases/good.tar" "16385=$outside/ts-new=$WS_TMP/cases/empty.tar"
ws_expect_exit 22 "an unauthenticated record does not choose the tablespace's place" restore tsplace
ws_contains "'tsplace': the hint names --tablespace-map" "$WS_ERR" "--tablespace-map"
ws_check "'tsplace': nothing created where the record said" test ! -e "$outside/ts-new"
ws_same "'tsplace': nothing outside the target changed" "$before" "$(snapshot)"
ws_expect_exit 2 "a tablespace mapped into the data directory is refused" restore tsplace \
  --tablespace-map "$outside/ts-new=$WS_TMP/target-tsplace/ts"
ws_contains "'tsplace': the message says it overlaps" "$WS_ERR" "overlaps the data directory"
ws_same "'tsplace': still nothing outside the target changed" "$before" "$(snapshot)"

ws_done
