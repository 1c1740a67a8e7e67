#!/usr/bin/env bash
# Test before overwrite on S3 (docs/s3.md, "Test before overwrite and atomicity"), against s3rver
# or Ceph RGW (WALSTORE_TEST_S3_SERVER=rgw), with multipart uploads forced by small settings:
#   1. what the store itself does with If-None-Match: * on an existing key, for a PUT and for a
#      CompleteMultipartUpload (measured with tests/lib/s3_client.py, asserted per store);
#   2. a second walpush of other content under an archived name fails (exit 7) and the object
#      stays, single PUT and multipart, whatever the store does with the header;
#   3. the same when the other content is archived while a multipart upload is under way, up to
#      its last part (part 1, sent last): the HEAD repeated after the last part, right before
#      CompleteMultipartUpload, catches it;
#   4. the race that is left: the other content archived between that HEAD and the final
#      request.  A store that honours If-None-Match on that request refuses it (exit 7, the
#      first object stays); one that ignores it lets the last writer win, and both walpush
#      calls succeed.  Asserted per store, for a single PUT and for a multipart upload.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
s3_setup_with_wal 2
wal=$WS_TMP/wal
out=$WS_TMP/out
changed=$WS_TMP/changed
mkdir -p "$out" "$changed"
seg=${segs[1]}
cp "$wal/$seg" "$changed/$seg"
ws_flip_byte "$changed/$seg" 100000
s3_start
s3_proxy_start
plan() { printf '%s\n' "$@" >"$S3_PROXY_PLAN"; }

# 1. The store.  Measured on s3rver 3.7.1 and Ceph 16.2.15 (docs/s3.md, compatibility table).
case $S3_SERVER in
  s3rver) put_header=ignored complete_header=ignored ;;
  rgw) put_header=honoured complete_header=ignored ;;
esac
outcome() { if [[ $1 == honoured ]]; then echo "412 kept"; else echo "200 overwritten"; fi; }
probe=$(s3_client probe-conditional probe) || ws_die "probe-conditional failed"
ws_same "$S3_SERVER: PUT with If-None-Match: * on an existing key ($put_header)" \
  "put: $(outcome "$put_header")" "$(sed -n 1p <<<"$probe")"
ws_same "$S3_SERVER: CompleteMultipartUpload with If-None-Match: * on an existing key ($complete_header)" \
  "complete: $(outcome "$complete_header")" "$(sed -n 2p <<<"$probe")"

# Multipart for a 16 MiB segment without compression: 1 MiB threshold, 5 MiB parts (4 parts).
cat >"$WS_TMP/multipart.toml" <<TOML
[s3]
multipart_threshold = 1048576
part_size = 5242880
TOML
single=(--compression none)
multipart=(-c "$WS_TMP/multipart.toml" --compression none)

# archived_is DESC FILE WHOSE: walfetch of $seg gives FILE's content.
archived_is() {
  ws_expect_exit 0 "$1: walfetch" walfetch --prefetch 0 "$seg" "$out/fetched"
  ws_check "$1: the archived segment is $3" cmp "$2" "$out/fetched"
  rm -f "$out/fetched"
}
# sent / not_sent REGEX: the proxy log has a request matching the extended regular expression
# REGEX, or none.
sent() { grep -qE "$1" "$S3_PROXY_LOG"; }
not_sent() { ! sent "$1"; }
complete_request="POST [^ ]*\?uploadId="

# 2. Sequential: the other content comes after the first one is archived.
# sequential MODE FINAL_REQUEST: both pushes with the options in the array MODE; FINAL_REQUEST
# (a regex of the proxy log) is the request that would have created the object.
sequential() {
  local desc="sequential, $1" final=$2
  local -n mode_args=$1
  export WALSTORE_REPO=s3://$S3_BUCKET/sequential-$1
  ws_expect_exit 0 "$desc: the first walpush stores the segment" walpush "${mode_args[@]}" "$wal/$seg"
  : >"$S3_PROXY_LOG"
  ws_expect_exit 7 "$desc: walpush of other content under that name is a conflict" \
    walpush "${mode_args[@]}" "$changed/$seg"
  ws_contains "$desc: ... saying so" "$WS_ERR" "already archived with different content"
  ws_check "$desc: ... without sending the request that would create the object" \
    not_sent "$final"
  archived_is "$desc" "$wal/$seg" "the first one"
}
sequential single "PUT [^ ]*/$seg( |\$)"
sequential multipart "$complete_request"
ws_check "sequential, multipart: ... (the second push did start a multipart upload)" \
  sent "POST [^ ]*\?uploads="

# held_push DESC METHOD TEXT ARGS...: walpush ARGS of the other content through the proxy,
# whose first METHOD request with TEXT in its path and query is held until walpush of the
# original, sent straight to the store, has archived the segment.  Sets held_rc and held_err.
held_push() {
  local desc=$1 method=$2 text=$3 gate=$WS_TMP/gate.$RANDOM pid i
  shift 3
  : >"$S3_PROXY_LOG"
  plan "wait:$gate $method $text"
  walpush "$@" "$changed/$seg" >"$WS_TMP/held.out" 2>"$WS_TMP/held.err" &
  pid=$!
  for ((i = 0; i < 300; i++)); do
    grep -q "$method .*$text" "$S3_PROXY_LOG" && break
    sleep 0.1
  done
  ws_check "$desc: walpush of other content reached $method $text" \
    grep -q "$method .*$text" "$S3_PROXY_LOG"
  ws_expect_exit 0 "$desc: meanwhile walpush of the original archives it" \
    env AWS_ENDPOINT_URL="$S3_ENDPOINT" walpush --compression none "$wal/$seg"
  : >"$gate"
  wait "$pid"
  held_rc=$?
  held_err=$(cat "$WS_TMP/held.err")
  cat "$WS_TMP/held.err" >>"$WS_TMP/transcript"
}

# 3. The other content archived during a multipart upload (its first HEAD saw nothing), while
# part 2 or part 1 (sent last) is on its way: the HEAD repeated after the last part sees it, on
# any store.
for part in 2 1; do
  desc="during a multipart upload (part $part held)"
  export WALSTORE_REPO=s3://$S3_BUCKET/during-upload-$part
  held_push "$desc" PUT "partNumber=$part&" "${multipart[@]}"
  ws_same "$desc: walpush of other content is a conflict" 7 "$held_rc"
  ws_contains "$desc: ... saying so" "$held_err" "already archived with different content"
  ws_check "$desc: ... and CompleteMultipartUpload was never sent" not_sent "$complete_request"
  archived_is "$desc" "$wal/$seg" "the original"
done

# 4. The window left: the other content archived after the last HEAD, before the final request
# (held by the proxy) reaches the store.
race() {
  local desc=$1 header=$2
  if [[ $header == honoured ]]; then
    ws_same "$desc: the store refuses the held request (If-None-Match): conflict" 7 "$held_rc"
    ws_contains "$desc: ... saying so" "$held_err" "already archived with different content"
    archived_is "$desc" "$wal/$seg" "the original"
  else
    ws_same "$desc: the store ignores If-None-Match: the held walpush succeeds too" 0 "$held_rc"
    archived_is "$desc" "$changed/$seg" "the other content (the last writer won)"
  fi
}
export WALSTORE_REPO=s3://$S3_BUCKET/race-single
held_push "race, single PUT" PUT "/race-single/" "${single[@]}"
race "race, single PUT ($put_header)" "$put_header"
export WALSTORE_REPO=s3://$S3_BUCKET/race-multipart
held_push "race, CompleteMultipartUpload" POST "?uploadId=" "${multipart[@]}"
race "race, CompleteMultipartUpload ($complete_header)" "$complete_header"

ws_not_contains "every request was correctly signed (proxy check)" "$(cat "$S3_PROXY_LOG")" \
  SIGNATURE-ERROR
ws_done
