#!/usr/bin/env bash
# Several repositories (3-2-1) with a real PostgreSQL 15: a file:// repository and an S3 one
# (s3rver), each with its own key and compression, in one config file as [[repository]]
# tables.
#   1. walpush archives to both; each repository decodes only with its own key.
#   2. Segments deleted and damaged in the first repository: a PITR completes from the second.
#   3. walfetch's answers with the S3 server stopped: 0 from the first repository, 126 (never
#      the "missing" 1) when the S3 repository would have been needed.
#   4. The S3 server stopped during archiving: PostgreSQL sees a failure (the segment stays
#      .ready) while S3 is required; once it is best_effort, archiving goes on, the miss is
#      recorded and reported by walctl status, and walctl sync copies what S3 lacks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
export WS_SCRIPT=multirepo.sh
ws_setup
ws_require_tool walpush walfetch walctl
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
[[ $S3_SERVER == s3rver ]] || ws_die "multirepo.sh restarts s3rver on its port: s3rver only"
s3_start
ws_on_exit s3_stop
s3_port=${S3_ENDPOINT##*:}

# s3rver again on the same port and data (what a server back from an outage looks like).
s3_restart() {
  NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$S3_DIR/data" -a 127.0.0.1 \
    -p "$s3_port" --silent --configure-bucket "$S3_BUCKET" >>"$S3_DIR/s3rver.log" 2>&1 &
  S3_PID=$!
  WS_PIDS+=("$S3_PID")
  s3_wait_port "$s3_port"
}

repo1=$WS_TMP/repo1
ws_repo_dir "$repo1"
ws_make_key "$WS_TMP/key1"
ws_make_key "$WS_TMP/key2"
config=$WS_TMP/walstore.toml
# write_config BEST_EFFORT: the S3 repository's best_effort setting.
write_config() {
  cat >"$config" <<EOF
compression = "lz4"
encryption_key_file = "$WS_TMP/key1"

[[repository]]
url = "file://$repo1"

[[repository]]
url = "s3://$S3_BUCKET/offsite"
compression = "zstd:3"
encryption_key_file = "$WS_TMP/key2"
best_effort = $1
[repository.s3]
endpoint = "$S3_ENDPOINT"
connect_timeout_seconds = 2
retry_total_seconds = 2
max_attempts = 2
EOF
  chmod 0644 "$config"
}
write_config false
ws_expect_exit 0 "walctl --repo 1 init" as_pg "$WS_BIN/walctl" --config "$config" --repo 1 init
push_cmd=$(ws_tool_cmd walpush --config "$config" %p)
fetch_cmd=$(ws_tool_cmd walfetch --config "$config" %f %p)

# ---- 1. archive to both ---------------------------------------------------------------------
primary=$WS_TMP/primary
port=$(ws_free_port)
pg_init "$primary"
pg_enable_archiving "$primary" "$push_cmd"
pg_start "$primary" "$port"
sysid=$(pg_system_id "$primary")
pg_pgbench "$port" -i -q -s 2 >/dev/null 2>&1
ws_check "pg_basebackup -X none" pg_base_backup "$port" "$WS_TMP/backup"
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
pg_psql "$port" "create table keepme as select g as id, md5(g::text) as v from generate_series(1, 20000) g"
pg_psql "$port" "select pg_switch_wal()" >/dev/null
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
pg_psql "$port" "select pg_switch_wal()" >/dev/null
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
sum_accounts=$(pg_table_checksum "$port" pgbench_accounts)
sum_keepme=$(pg_table_checksum "$port" keepme)
pg_psql "$port" "select pg_create_restore_point('before_drop')" >/dev/null
pg_psql "$port" "drop table keepme"
pg_pgbench "$port" -c 2 -t 300 -n >/dev/null 2>&1
ws_check "archiver stored everything" pg_switch_and_wait_archived "$port"
ws_same "no archive_command failure" 0 "$(pg_psql "$port" "select failed_count from pg_stat_archiver")"

wal_objects() {  # wal_objects N: WAL objects of the cluster in repository N
  as_pg "$WS_BIN/walctl" --config "$config" --repo "$1" --system-id "$sysid" status --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["wal_objects"])'
}
n1=$(wal_objects 1)
n2=$(wal_objects 2)
if ((n1 >= 5)); then ws_pass "repository 1 holds $n1 WAL objects"; else ws_fail "repository 1 holds $n1 WAL objects"; fi
ws_same "repository 2 (S3) holds as many" "$n1" "$n2"

segs=()
mapfile -t segs < <(find "$repo1/$sysid/wal" -type f -name '0000000100000000000000[0-9A-F][0-9A-F]' \
  -printf '%f\n' | sort)
start_seg=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]*\))$/\1/p' "$WS_TMP/backup/backup_label")
ws_log "backup starts in $start_seg; archived segments ${segs[0]} .. ${segs[-1]}"
probe=${segs[-1]}
fetched=$WS_TMP/fetched
ws_pg_dir "$fetched"
fetch() {  # fetch NAME [ARGS...]: walfetch NAME into $fetched (config: $fetch_config or $config)
  local name=$1
  shift
  as_pg env WALSTORE_SYSTEM_ID="$sysid" "$WS_BIN/walfetch" --config "${fetch_config:-$config}" "$@" --prefetch 0 \
    "$name" "$fetched/$name"
}
ws_expect_exit 0 "walfetch --repo 2 restores from S3 with the S3 repository's key" fetch "$probe" --repo 2
as_pg mv "$fetched/$probe" "$fetched/$probe.s3"
ws_expect_exit 0 "walfetch --repo 1 restores it from the file repository" fetch "$probe" --repo 1
ws_check "  the same bytes from both" cmp "$fetched/$probe" "$fetched/$probe.s3"
as_pg rm -f "$fetched/$probe" "$fetched/$probe.s3"
cat >"$WS_TMP/one-key.toml" <<EOF
encryption_key_file = "$WS_TMP/key1"
repository = "s3://$S3_BUCKET/offsite"
EOF
chmod 0644 "$WS_TMP/one-key.toml"
ws_expect_exit 126 "repository 2's objects do not decode under repository 1's key" \
  as_pg env WALSTORE_SYSTEM_ID="$sysid" "$WS_BIN/walfetch" --config "$WS_TMP/one-key.toml" \
  --prefetch 0 "$probe" "$fetched/$probe"
ws_contains "  (wrong key)" "$WS_ERR" "key"

prom=$(as_pg "$WS_BIN/walctl" --config "$config" --system-id "$sysid" status --prometheus || true)
ws_contains "status --prometheus labels repository 1" "$prom" \
  "walstore_wal_objects{system_id=\"$sysid\",repository=\"file://$repo1\"} $n1"
ws_contains "status --prometheus labels repository 2" "$prom" \
  "walstore_wal_objects{system_id=\"$sysid\",repository=\"s3://$S3_BUCKET/offsite\"} $n2"
ws_same "one HELP line per metric" 1 "$(grep -c '^# HELP walstore_wal_objects ' <<<"$prom")"
pg_stop "$primary"

# ---- 2. PITR completes from the second repository ------------------------------------------
# The segments recovery needs from the backup's start: delete the first and third in the
# first repository, damage the second.
needed=()
for s in "${segs[@]}"; do [[ ! $s < $start_seg ]] && needed+=("$s"); done
((${#needed[@]} >= 4)) || ws_die "expected at least 4 segments after the backup, got ${needed[*]}"
key_of() { echo "$repo1/$sysid/wal/${1:0:16}/$1"; }
rm -f "$(key_of "${needed[0]}")" "$(key_of "${needed[2]}")"
ws_flip_byte "$(key_of "${needed[1]}")" 5000
ws_log "deleted ${needed[0]} and ${needed[2]}, damaged ${needed[1]} in repository 1"

restored=$WS_TMP/restored
port2=$(ws_free_port)
pg_prepare_recovery "$WS_TMP/backup" "$restored" "$fetch_cmd" \
  "recovery_target_name = 'before_drop'" "recovery_target_action = 'promote'"
ws_check "restored server starts" pg_start "$restored" "$port2"
ws_check "recovery finishes" pg_wait_recovery_done "$port2"
log=$(cat "$(pg_log "$restored")")
ws_wait_workers
# walfetch's own messages, and its read-ahead worker's.
fetch_log=$log$(cat "$restored/pg_wal/.walstore-prefetch/prefetch.log" 2>/dev/null || true)
ws_contains "recovery stopped at the restore point" "$log" 'recovery stopping at restore point "before_drop"'
ws_contains "recovery restored ${needed[0]} (deleted in repository 1)" "$log" \
  "restored log file \"${needed[0]}\" from archive"
ws_contains "recovery restored ${needed[1]} (damaged in repository 1)" "$log" \
  "restored log file \"${needed[1]}\" from archive"
ws_contains "the damage was reported, naming repository 1" "$fetch_log" \
  "WARNING:  repository 1 (file://$repo1)"
ws_not_contains "no walfetch error during recovery" "$log" "walfetch: ERROR"
ws_not_contains "no false \"holds no WAL\" warning (S3 on timeline 1, deep keys only)" \
  "$fetch_log" "holds no WAL"
ws_same "pgbench_accounts identical at the restore point" "$sum_accounts" \
  "$(pg_table_checksum "$port2" pgbench_accounts)"
ws_same "dropped table keepme is back, identical" "$sum_keepme" \
  "$(pg_table_checksum "$port2" keepme 2>&1 || true)"
pg_stop "$restored"

# ---- 3. walfetch with the S3 server stopped -------------------------------------------------
ws_expect_exit 1 "a segment in no repository: 1 (missing)" fetch 0000000100000000000000FE
s3_stop || true  # wait returns the killed server's status
ws_expect_exit 0 "S3 down, the segment intact in repository 1: 0" fetch "${needed[3]}"
ws_expect_exit 126 "S3 down, the segment deleted in repository 1: 126, not missing" fetch "${needed[0]}"
ws_contains "  names the S3 repository" "$WS_ERR" "repository 2 (s3://$S3_BUCKET/offsite)"
ws_expect_exit 126 "S3 down, the segment damaged in repository 1: 126" fetch "${needed[1]}"
ws_expect_exit 126 "S3 down, a segment in no repository: 126, not missing" fetch 0000000100000000000000FE
s3_restart
# The S3 table with a wrong prefix (it answers NoSuchKey for everything) and a file
# repository that lacks the segment: their "missing" is no proof, recovery must stop.
sed "s|s3://$S3_BUCKET/offsite|s3://$S3_BUCKET/wrong-prefix|" "$config" >"$WS_TMP/wrong-prefix.toml"
chmod 0644 "$WS_TMP/wrong-prefix.toml"
fetch_config=$WS_TMP/wrong-prefix.toml
ws_expect_exit 126 "a segment lacking in repository 1 and S3 at a wrong prefix: 126, not missing" \
  fetch "${needed[0]}"
fetch_config=
ws_contains "  names the repository that holds nothing of the cluster" "$WS_ERR" \
  "repository 2 (s3://$S3_BUCKET/wrong-prefix) holds nothing at all of cluster $sysid"
ws_contains "  and says what to do" "$WS_ERR" "walctl sync"
ws_expect_exit 0 "the correct prefix serves it" fetch "${needed[0]}"

# ---- 4. the S3 server stopped during archiving ----------------------------------------------
pg_start "$primary" "$port"
pg_switch_and_wait_archived "$port" >/dev/null || true
s3_stop || true  # wait returns the killed server's status
failed_before=$(pg_psql "$port" "select failed_count from pg_stat_archiver")
pg_psql "$port" "insert into pgbench_history select * from pgbench_history limit 100"
seg=$(pg_psql "$port" "select pg_walfile_name(pg_switch_wal())")
for ((i = 0; i < 120; i++)); do
  failed=$(pg_psql "$port" "select failed_count from pg_stat_archiver")
  ((failed > failed_before)) && break
  sleep 0.5
done
if ((failed > failed_before)); then
  ws_pass "S3 required and down: PostgreSQL sees archive_command fail ($failed failures)"
else
  ws_fail "S3 required and down: no archive_command failure"
fi
ws_check "  $seg stays .ready in pg_wal" test -f "$primary/pg_wal/archive_status/$seg.ready"
last=$(pg_psql "$port" "select coalesce(last_archived_wal, '') from pg_stat_archiver")
if [[ $last < $seg ]]; then ws_pass "  $seg is not reported archived"; else ws_fail "  $seg reported archived"; fi
ws_contains "  the log names the S3 repository" "$(cat "$(pg_log "$primary")")" \
  "repository 2 (s3://$S3_BUCKET/offsite)"

write_config true
pg_psql "$port" "insert into pgbench_history select * from pgbench_history limit 100"
ws_check "S3 best_effort and down: archiving goes on" pg_switch_and_wait_archived "$port"
record=$primary/pg_wal/.walstore-best-effort
ws_check "  the miss is recorded in pg_wal/.walstore-best-effort" test -s "$record"
ws_contains "  the record names $seg" "$(cat "$record" 2>&1)" " $seg "
ws_contains "  and the S3 repository" "$(cat "$record" 2>&1)" " s3://$S3_BUCKET/offsite"
ws_contains "  the server log has the WARNING" "$(cat "$(pg_log "$primary")")" \
  "did not reach the best-effort repository 2"
ws_expect_exit 0 "walctl status --repo 1 -D: repository 1 is healthy" \
  as_pg "$WS_BIN/walctl" --config "$config" --repo 1 -D "$primary" status
s3_restart
ws_expect_exit 4..125 "walctl status -D: the best-effort misses are a problem" \
  as_pg "$WS_BIN/walctl" --config "$config" -D "$primary" status
ws_contains "  named as such" "$WS_OUT" "did not reach this best-effort repository"
prom=$(as_pg "$WS_BIN/walctl" --config "$config" -D "$primary" status --prometheus || true)
ws_contains "  and counted for Prometheus" "$prom" \
  "walstore_best_effort_misses{system_id=\"$sysid\",repository=\"s3://$S3_BUCKET/offsite\"}"
ws_expect_exit 0 "walctl sync -D copies what S3 lacks" \
  as_pg "$WS_BIN/walctl" --config "$config" -D "$primary" sync
ws_contains "  it copied into repository 2" "$WS_OUT" "repository 2 (s3://$S3_BUCKET/offsite): held"
ws_check "  and cleared the record" test ! -s "$record"
ws_same "both repositories hold the same WAL now" "$(wal_objects 1)" "$(wal_objects 2)"
ws_expect_exit 0 "walctl status -D: healthy again" \
  as_pg "$WS_BIN/walctl" --config "$config" -D "$primary" status
ws_expect_exit 0 "$seg from S3 alone, with the S3 repository's key" fetch "$seg" --repo 2
ws_expect_exit 0 "walctl sync again: nothing to copy" \
  as_pg "$WS_BIN/walctl" --config "$config" -D "$primary" sync
ws_contains "  copied 0" "$WS_OUT" "copied 0"
pg_stop "$primary"
ws_done
