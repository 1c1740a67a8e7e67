#!/usr/bin/env bash
# A backup record (backup.json) is trusted by restore for which backup "latest" is and for the
# tars' checksums, so in an encrypted repository it must be authenticated:
# an unencrypted backup.json, as anyone who can write to the bucket without the key can
# produce, makes walctl list / restore / verify fail with a clear error (exit 22) instead of
# being used or skipped in favour of the real backup; one copied to another label is refused
# too (exit 23); with allow_plaintext_objects (a migration) it is read again.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

wc_primary
pg_pgbench "$port" -i -q -s 1 >/dev/null 2>&1
ws_expect_exit 0 "walctl backup (encrypted repository)" "${walctl[@]}" backup -d "$conninfo" --label real
sysid=$(pg_system_id "$primary")
ws_expect_exit 0 "walctl list before the forgery" "${walctl[@]}" list

# The forger: no key, writes a backup into a repository of its own (its WAL never arrives
# there, so the record says incomplete; what matters is that it is an unencrypted record),
# then copies that label into the real repository.
forger_repo=$WS_TMP/forger
ws_pg_dir "$forger_repo"
ws_expect_exit 18 "the forger's backup without a key (WAL not in its repository)" \
  "$WS_BIN/walctl" --repo "file://$forger_repo" backup -d "$conninfo" --label zzz-forged \
  --wal-timeout 1
[[ -f $forger_repo/$sysid/backup/zzz-forged/backup.json ]] || ws_die "no forged backup.json"
cp -a "$forger_repo/$sysid/backup/zzz-forged" "$repo_dir/$sysid/backup/zzz-forged"

for cmd in list "verify" "show real"; do
  # shellcheck disable=SC2086  # "show real": two words
  ws_expect_exit 22 "walctl $cmd refuses the unencrypted backup.json" "${walctl[@]}" $cmd
  ws_contains "walctl $cmd: names the object and says why" "$WS_ERR" \
    "zzz-forged/backup.json is not encrypted, but an encryption key is configured"
done
ws_pg_dir "$WS_TMP/restore-parent"
ws_expect_exit 22 "walctl restore latest refuses too (nothing restored from a forged record)" \
  "${walctl[@]}" restore latest "$WS_TMP/restore-parent/r1"
if [[ -e $WS_TMP/restore-parent/r1 && -n $(ls -A "$WS_TMP/restore-parent/r1") ]]; then
  ws_fail "restore wrote files"
else
  ws_pass "restore wrote nothing"
fi
ws_expect_exit 0 "with WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 (migration) list reads it" \
  env WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 "${walctl[@]}" list
ws_contains "... and shows both backups" "$WS_OUT" "zzz-forged"

# A real (encrypted) record copied to another label.
rm -rf "$repo_dir/$sysid/backup/zzz-forged"
mkdir -p "$repo_dir/$sysid/backup/copied"
cp "$repo_dir/$sysid/backup/real/backup.json" "$repo_dir/$sysid/backup/copied/backup.json"
ws_expect_exit 23 "walctl list refuses a backup.json copied to another label" "${walctl[@]}" list
ws_contains "... saying it was stored for another name" "$WS_ERR" "stored for another name"
rm -rf "$repo_dir/$sysid/backup/copied"
ws_expect_exit 0 "walctl list after removing it" "${walctl[@]}" list
ws_done
