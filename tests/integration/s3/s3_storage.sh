#!/usr/bin/env bash
# The S3 Storage driver against s3rver (or Ceph RGW: WALSTORE_TEST_S3_SERVER=rgw), through the
# signature-checking proxy:
# metadata, no-overwrite commits, multipart and its abort, streamed reads,
# paginated listing, batch delete, threads (tests/integration/s3/s3_storage_check.cc).
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/common.sh
. "$here/../../lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$here/../../lib/s3.sh"
ws_setup
s3_start
s3_proxy_start
export WALSTORE_REPO=s3://$S3_BUCKET/storage-check

ws_check "storage driver checks pass (see the lines below)" "$S3_STORAGE_CHECK"
printf '%s\n' "$WS_OUT" | sed 's/^/     /'
ws_contains "every driver check passed" "$WS_OUT" ", 0 failed"
log=$(cat "$S3_PROXY_LOG")
ws_not_contains "every request carried a valid SigV4 signature" "$log" "SIGNATURE-ERROR"
ws_contains "multipart uploads were started" "$log" "?uploads="
ws_contains "parts were uploaded" "$log" "partNumber=2&uploadId="
ws_contains "the abandoned upload was aborted" "$log" "DELETE /$S3_BUCKET/storage-check/large/abandoned?uploadId="
ws_contains "listing used continuation tokens" "$log" "continuation-token="
ws_contains "batch delete was used" "$log" "POST /$S3_BUCKET/?delete="
# 24 keys at 10 a request, then the cleanup: 4 requests, more when the store answers one with a
# 500 (s3rver does when it deletes several keys of one directory at once) and it is retried.
batches=$(grep -c 'POST /[^ ]*?delete=' "$S3_PROXY_LOG")
if ((batches >= 4)); then ws_pass "keys were deleted 10 a request ($batches requests)"; else
  ws_fail "expected at least 4 batch delete requests, saw $batches"; fi
ws_done
