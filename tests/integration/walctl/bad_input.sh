#!/usr/bin/env bash
# walctl refuses bad input with the error code that names the problem, a message on stderr
# and never "internal error": bad numbers and LSNs in options, recovery targets PostgreSQL
# would only refuse after the whole restore, a bad backup label, missing or unusable paths
# (a file where a directory belongs, a directory where a file belongs, a path through a
# file), and a repository holding a directory whose all-digit name is no 64-bit system id.
# Exit codes (error.cc): 2 usage, 3 config, 8 local_io, 24 not_a_repository.
set -euo pipefail
# shellcheck source=tests/integration/walctl/walctl_lib.sh
. "$(dirname "$0")/walctl_lib.sh"

# refused CODE DESC TEXT COMMAND...: COMMAND exits CODE, stderr says TEXT, and no internal error.
refused() {
  local code=$1 desc=$2 text=$3
  shift 3
  ws_expect_exit "$code" "$desc" "$@"
  ws_contains "$desc: says why" "$WS_ERR" "$text"
  ws_not_contains "$desc: not an internal error" "$WS_ERR" "internal error"
}

wc_primary
# walpush (as postgres) sets the repository up before walctl (maybe root) writes to it.
pg_switch_and_wait_archived "$port"
ws_expect_exit 0 "backup b1" "${walctl[@]}" backup -d "$conninfo" --label b1 -q
pg_switch_and_wait_archived "$port"

file=$WS_TMP/a-file
echo data >"$file"
full=$WS_TMP/full
mkdir -p "$full"
echo data >"$full/something"
target=$WS_TMP/restored

# Numbers and recovery targets on the command line: usage errors, before any work.
refused 2 "prune --keep-full abc" "keep-full" "${walctl[@]}" prune --keep-full abc
refused 2 "prune --keep-full beyond 64 bits" "keep-full" \
  "${walctl[@]}" prune --keep-full 99999999999999999999999
refused 2 "status --max-archive-age abc" "max-archive-age" \
  "${walctl[@]}" status --max-archive-age abc
refused 2 "backup --max-rate abc" "max-rate" "${walctl[@]}" backup -d "$conninfo" --max-rate abc
refused 2 "--system-id abc" "system-id" "${walctl[@]}" --system-id abc list
refused 2 "restore --target-lsn nope" "invalid LSN 'nope'" \
  "${walctl[@]}" restore --target-lsn nope b1 "$target"
refused 2 "restore --target-lsn with 9 hex digits" "invalid LSN '0/123456789'" \
  "${walctl[@]}" restore --target-lsn 0/123456789 b1 "$target"
refused 2 "restore --target-lsn -1/0" "invalid LSN" \
  "${walctl[@]}" restore --target-lsn -1/0 b1 "$target"
refused 2 "restore --target-xid abc" "--target-xid must be" \
  "${walctl[@]}" restore --target-xid abc b1 "$target"
refused 2 "restore --target-timeline two" "--target-timeline" \
  "${walctl[@]}" restore --target-timeline two b1 "$target"
refused 2 "restore --target-time tomorrow" "--target-time" \
  "${walctl[@]}" restore --target-time tomorrow b1 "$target"
refused 2 "restore --tablespace-map without =" "--tablespace-map wants OLD=NEW" \
  "${walctl[@]}" restore --tablespace-map nothing b1 "$target"
ws_same "no refused restore left a directory" "no" "$([[ -e $target ]] && echo yes || echo no)"

# Backup labels.
refused 2 "restore of a label not in the repository" "no backup labelled 'nosuch'" \
  "${walctl[@]}" restore nosuch "$target"
refused 2 "backup with a label holding a slash" "invalid backup label" \
  "${walctl[@]}" backup -d "$conninfo" --label ../b2 -q
refused 2 "show of a label not in the repository" "nosuch" "${walctl[@]}" show nosuch

# Paths.
refused 2 "restore into a file" "$file is not a directory" "${walctl[@]}" restore b1 "$file"
ws_same "the file is untouched" data "$(cat "$file")"
refused 2 "restore into a non-empty directory" "$full is not empty" \
  "${walctl[@]}" restore b1 "$full"
refused 8 "restore beneath a file" "$file/data" "${walctl[@]}" restore b1 "$file/data"
refused 3 "--key-file missing" "$WS_TMP/no-key" \
  "$WS_BIN/walctl" --repo "$repo_url" --key-file "$WS_TMP/no-key" list
refused 3 "--key-file a directory" "$WS_TMP" "$WS_BIN/walctl" --repo "$repo_url" --key-file "$WS_TMP" list
refused 3 "--config missing" "$WS_TMP/none.toml" "${walctl[@]}" --config "$WS_TMP/none.toml" list
refused 24 "--repo a missing directory" "$WS_TMP/no-repo" \
  "$WS_BIN/walctl" --repo "file://$WS_TMP/no-repo" --key-file "$WS_TMP/key" list
refused 8 "drill --sql missing: refused before restoring" "$WS_TMP/no.sql" \
  "${walctl[@]}" drill --sql "$WS_TMP/no.sql" --work-dir "$WS_TMP"
refused 8 "drill --sql a directory" "$WS_TMP" \
  "${walctl[@]}" drill --sql "$WS_TMP" --work-dir "$WS_TMP"
refused 8 "drill --work-dir a file" "$file" "${walctl[@]}" drill --work-dir "$file"
ws_same "no drill directory was left behind" "" "$(find "$WS_TMP" -maxdepth 1 -name 'walctl-drill-*')"

# A directory with an all-digit name too large for a system id is not a cluster's archive:
# walctl finds the one cluster without --system-id as before.
mkdir -p "$repo_dir/123456789012345678901234567890/wal"
echo junk >"$repo_dir/123456789012345678901234567890/wal/x"
ws_expect_exit 0 "list ignores an all-digit directory that is no system id" "${walctl[@]}" list --json
ws_same "list found b1" "['b1']" "$(wc_json '[b["label"] for b in j["backups"]]')"
ws_not_contains "list: not an internal error" "$WS_ERR" "internal error"

ws_same "nothing was restored" "no" "$([[ -e $target ]] && echo yes || echo no)"
pg_stop "$primary"
ws_done
