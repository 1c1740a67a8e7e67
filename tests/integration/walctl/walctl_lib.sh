# shellcheck shell=bash
# Helpers shared by the walctl integration tests, on top of tests/lib/common.sh.  Sourcing
# this file sources common.sh, runs ws_setup and checks that the three tools were built.
#
#   wc_primary [SETTINGS...]   init + start $primary on $port, archiving with walpush into
#                              $repo_url (lz4, encrypted with $WS_TMP/key); sets $walctl
#                              (array: walctl with the repository options) and $conninfo.
#                              WC_REPO_KIND=s3 puts the repository on S3 (tests/lib/s3.sh:
#                              s3rver, or Ceph RGW with WALSTORE_TEST_S3_SERVER=rgw)
#   wc_object_damage KEY OFFSET  inverts one byte of repository object KEY (negative OFFSET
#                              counts from the end); wc_object_repair KEY puts the original back
#   wc_json EXPR               evaluates a Python expression over the JSON in $WS_OUT (as j)
#   wc_restore_and_start DIR [walctl restore args...]  restore + start on a new port ($rport)
#                              and wait for the end of recovery; non-zero on failure

wc_primary() {
  repo_dir=$WS_TMP/repo
  ws_pg_dir "$repo_dir"
  repo_url=file://$repo_dir
  if [[ ${WC_REPO_KIND:-file} == s3 ]]; then
    # shellcheck source=tests/lib/s3.sh
    . "$(dirname "${BASH_SOURCE[0]}")/../../lib/s3.sh"
    s3_start
    repo_url=s3://$S3_BUCKET/walctl
  fi
  ws_make_key "$WS_TMP/key"
  walctl=("$WS_BIN/walctl" --repo "$repo_url" --key-file "$WS_TMP/key")
  primary=$WS_TMP/primary
  port=$(ws_free_port)
  pg_init "$primary"
  pg_enable_archiving "$primary" \
    "$(ws_tool_cmd walpush --repo "$repo_url" --key-file "$WS_TMP/key" --compression lz4 %p)"
  if (($# > 0)); then pg_conf "$primary" "$@"; fi
  pg_start "$primary" "$port" || ws_die "primary did not start"
  conninfo="host=127.0.0.1 port=$port user=postgres"
}

wc_object_damage() {
  if [[ ${WC_REPO_KIND:-file} == s3 ]]; then
    s3_object_damage "walctl/$1" "$2"
  else
    mkdir -p "$(dirname "$WS_TMP/damaged/$1")"
    cp -a "$repo_dir/$1" "$WS_TMP/damaged/$1"
    ws_flip_byte "$repo_dir/$1" "$2"
  fi
}

wc_object_repair() {
  if [[ ${WC_REPO_KIND:-file} == s3 ]]; then
    s3_object_repair "walctl/$1"
  else
    cp -a "$WS_TMP/damaged/$1" "$repo_dir/$1"
  fi
}

wc_json() {
  python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1" <<<"$WS_OUT"
}

wc_restore_and_start() {
  local dir=$1
  shift
  ws_pg_dir "$(dirname "$dir")"
  ws_run "${walctl[@]}" restore "$@" "$dir"
  if [[ $WS_RC -ne 0 ]]; then
    ws_show_last
    return 1
  fi
  rport=$(ws_free_port)
  # The restored postgresql.conf carries the primary's port and settings; -p wins.
  pg_start "$dir" "$rport" || return 1
  pg_wait_recovery_done "$rport"
}

# shellcheck source=tests/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../lib/common.sh"
ws_setup
ws_require_tool walpush walfetch walctl
