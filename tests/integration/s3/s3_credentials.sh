#!/usr/bin/env bash
# walpush / walfetch against s3rver with the credentials of each source of the chain
# (src/lib/storage/s3/credentials.h) in turn: web identity (STS), a profile's credential_process,
# container credentials and EC2 instance metadata (IMDSv2), served by
# tests/lib/fake_aws_credentials.py on loopback.  The fake hands out s3rver's access key with a
# secret and session token of its own; every request goes through tests/lib/fault_proxy.py, which
# checks the SigV4 signature with that secret and requires the signed session token.  Then: no
# source at all (one error naming each), a refused web identity, and a push-ahead worker that
# refreshes short-lived credentials while it works.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
s3_setup_with_wal 6
export WALSTORE_LOG_LEVEL=notice
wal=$WS_TMP/wal
out=$WS_TMP/out
mkdir -p "$out"
s3_start

# s3rver knows the key S3RVER and checks no signature; the proxy checks it with this secret.
secret=fake-temporary-secret-5e2a
AWS_SECRET_ACCESS_KEY=$secret S3_PROXY_TOKEN_PREFIX=fake- s3_proxy_start
# Nothing but the source under test may give credentials.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_ROLE_ARN \
  AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_FULL_URI \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN \
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_EC2_METADATA_SERVICE_ENDPOINT AWS_ENDPOINT_URL_STS
export HOME=$WS_TMP/home AWS_EC2_METADATA_DISABLED=true
mkdir -p "$HOME"

# fake_start LIFETIME: a fake handing out credentials valid LIFETIME seconds; sets fake (its
# URL) and fake_log.
fake_start() {
  local port_file=$WS_TMP/fake.$1.port
  fake_log=$WS_TMP/fake.$1.log
  : >"$fake_log"
  python3 "$WS_LIB_DIR/fake_aws_credentials.py" --port-file "$port_file" --log "$fake_log" \
    --access-key S3RVER --secret "$secret" --lifetime "$1" 2>"$WS_TMP/fake.$1.err" &
  WS_PIDS+=("$!")
  local i
  for ((i = 0; i < 100; i++)); do [[ -s $port_file ]] && break; sleep 0.1; done
  [[ -s $port_file ]] || ws_die "fake credentials server did not start: $(cat "$WS_TMP/fake.$1.err")"
  fake=http://127.0.0.1:$(cat "$port_file")
}
fake_start 3600

# via SOURCE TOKEN ENV...: walpush + walfetch of segment 0 with the credential variables ENV;
# every request carries a correct signature and the session token TOKEN... handed out.
via() {
  local source=$1 token=$2
  shift 2
  : >"$S3_PROXY_LOG"
  export WALSTORE_REPO=s3://$S3_BUCKET/$source
  ws_expect_exit 0 "$source: walpush with its credentials" env "$@" walpush "$wal/${segs[0]}"
  ws_expect_exit 0 "$source: walfetch with its credentials" \
    env "$@" walfetch --prefetch 0 "${segs[0]}" "$out/$source"
  ws_check "$source: the restored segment is identical" cmp "$wal/${segs[0]}" "$out/$source"
  ws_not_contains "$source: every request was correctly signed with the secret handed out" \
    "$(cat "$S3_PROXY_LOG")" SIGNATURE-ERROR
  ws_same "$source: every request carried the session token handed out" \
    "$(grep -c ' /' "$S3_PROXY_LOG")" "$(grep -c "x-amz-security-token=$token" "$S3_PROXY_LOG")"
  ws_not_contains "$source: no secret in any output" "$(cat "$WS_TMP/transcript")" "$secret"
}

printf 'fake-web-identity-token\n' >"$WS_TMP/web-identity-token"
via web-identity fake-sts-token- AWS_WEB_IDENTITY_TOKEN_FILE="$WS_TMP/web-identity-token" \
  AWS_ROLE_ARN=arn:aws:iam::000000000000:role/walstore AWS_ENDPOINT_URL_STS="$fake"
ws_same "web-identity: one STS exchange per process" "sts 1 sts 2" "$(tr '\n' ' ' <"$fake_log" | sed 's/ $//')"

cat >"$WS_TMP/credential-process" <<SH
#!/bin/sh
echo '{"Version": 1, "AccessKeyId": "S3RVER", "SecretAccessKey": "$secret",'
echo ' "SessionToken": "fake-process-token"}'
SH
chmod 0755 "$WS_TMP/credential-process"
printf '[profile archiver]\ncredential_process = %s\n' "$WS_TMP/credential-process" \
  >"$WS_TMP/aws-config"
via credential-process fake-process-token AWS_CONFIG_FILE="$WS_TMP/aws-config" AWS_PROFILE=archiver

printf 'fake-container-authorization\n' >"$WS_TMP/container-auth"
: >"$fake_log"
via container fake-container-token- AWS_CONTAINER_CREDENTIALS_FULL_URI="$fake/container" \
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$WS_TMP/container-auth"
ws_same "container: the fake handed them out" 2 "$(grep -c '^container ' "$fake_log")"

: >"$fake_log"
via imds fake-imds-token- AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="$fake"
ws_same "imds: the fake handed them out" 2 "$(grep -c '^imds ' "$fake_log")"

# No source: one error naming every source and why.
export WALSTORE_REPO=s3://$S3_BUCKET/none
ws_expect_exit 3 "none: walpush without any credentials is a configuration error" \
  walpush "$wal/${segs[1]}"
for source in "static keys: no access_key_id" "web identity: AWS_WEB_IDENTITY_TOKEN_FILE or" \
  "profile: profile \"default\" has neither" "container credentials: AWS_CONTAINER_CREDENTIALS_" \
  "EC2 instance metadata: AWS_EC2_METADATA_DISABLED is true"; do
  ws_contains "none: ... naming $source" "$WS_ERR" "$source"
done
ws_expect_exit 126 "none: walfetch stops recovery" walfetch "${segs[0]}" "$out/none"

printf 'another-token\n' >"$WS_TMP/wrong-token"
ws_expect_exit 3 "refused web identity: walpush fails" env \
  AWS_WEB_IDENTITY_TOKEN_FILE="$WS_TMP/wrong-token" AWS_ROLE_ARN=arn:aws:iam::000000000000:role/walstore \
  AWS_ENDPOINT_URL_STS="$fake" walpush "$wal/${segs[1]}"
ws_contains "refused web identity: ... with STS's answer" "$WS_ERR" \
  "web identity: STS at $fake answered HTTP 403 AccessDenied"
ws_not_contains "refused web identity: ... and not the token" "$WS_ERR" another-token

# A push-ahead worker refreshes credentials that are about to expire: valid 301 s (whole seconds),
# so inside walstore's 5-minute margin within a second.  PUTs stall 2 s each, so the worker, one
# process, signs its later PUTs after that.
fake_start 301
data=$WS_TMP/data
mkdir -p "$data/pg_wal/archive_status"
for s in "${segs[@]}"; do
  cp "$wal/$s" "$data/pg_wal/$s"
  : >"$data/pg_wal/archive_status/$s.ready"
done
printf 'stall:2 PUT\n%.0s' 1 2 3 4 5 6 >"$S3_PROXY_PLAN"
: >"$S3_PROXY_LOG"
export WALSTORE_REPO=s3://$S3_BUCKET/refresh AWS_CONTAINER_CREDENTIALS_FULL_URI=$fake/container \
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$WS_TMP/container-auth
ws_expect_exit 0 "refresh: walpush of the first segment starts a push-ahead worker" \
  bash -c 'cd "$1" && walpush --push-ahead 4 "pg_wal/$2"' _ "$data" "${segs[0]}"
ws_wait_workers
ws_check "refresh: the fake was asked again and again" \
  test "$(grep -c '^container ' "$fake_log")" -ge 3
worker_tokens=$(grep ' PUT ' "$S3_PROXY_LOG" | grep -v "/${segs[0]} " |
  grep -o 'x-amz-security-token=fake-container-token-[0-9]*' | sort -u | wc -l)
ws_check "refresh: the worker's PUTs were signed with refreshed credentials ($worker_tokens tokens)" \
  test "$worker_tokens" -ge 2
ws_not_contains "refresh: every request was correctly signed" "$(cat "$S3_PROXY_LOG")" \
  SIGNATURE-ERROR
for i in 1 2 3 4; do
  key=refresh/$WS_WAL_SYSID/wal/${segs[$i]:0:16}/${segs[$i]}
  ws_check "refresh: the worker archived ${segs[$i]}" test -f "$(s3_object_file "$key")"
done
s3_stop
ws_done
