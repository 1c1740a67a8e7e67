// S3-compatible repository (s3://bucket/prefix).  Internal: use OpenStorage().
//
// Objects live under "<prefix>/<key>" in the bucket.  Settings and
// credentials come from config.s3 (see s3_config.h) and every request is
// signed with SigV4 and retried per config.s3 (retry_total_seconds,
// max_attempts) on 5xx, 429, timeouts and dropped connections.
//
// How the Storage contract maps to S3 (docs/s3.md):
//   Stat      HEAD (x-amz-meta-* -> ObjectInfo::metadata); 404 -> nullopt
//   OpenRead  GET, streamed; a connection lost midway resumes with a Range
//             request pinned to the ETag (If-Match); 404 -> nullptr
//   Create    one PUT for an object of known size up to
//             s3.multipart_threshold (or any up to s3.part_size); otherwise
//             a multipart upload that starts once one part is full, with
//             parts of s3.part_size, so memory stays bounded.  A writer destroyed without Commit aborts its upload;
//             a killed process leaves an incomplete upload that is invisible
//             (an AbortIncompleteMultipartUpload lifecycle rule reclaims it).
//   Commit    HEAD, then PUT (or CompleteMultipartUpload) with
//             If-None-Match: *; an existing object or 412 -> kAlreadyExists.
//             The HEAD keeps test-before-overwrite on stores that ignore
//             If-None-Match, except for two writers racing between the HEAD
//             and the PUT there.
//   Remove    HEAD + DELETE;  RemoveMany  DeleteObjects, 1000 keys a request
//   List      ListObjectsV2 with continuation tokens
//
// Where it lives: s3_reader.h (Stat, OpenRead, List), s3_writer.h (Create,
// leftovers), s3_request.h (signing, URLs, retries, error replies); Remove
// and RemoveMany in s3_storage.cc.
#pragma once
#include <walstore/config.h>
#include <walstore/storage.h>

#include <memory>
#include <string>
namespace walstore {

// `bucket` is the bucket name, `prefix` the key prefix ("" or "a/b", no
// leading or trailing '/').  Settings and credentials come from config.s3
// (already merged with the environment by LoadConfig) and ~/.aws/credentials.
std::unique_ptr<Storage> OpenS3Storage(const Config& config, const std::string& bucket,
                                       const std::string& prefix);

// Page sizes, small in tests so that pagination and batching are exercised
// with few objects.
struct S3Tuning {
  int list_page_size = 1000;     // max-keys of ListObjectsV2 (S3's maximum)
  int delete_batch_size = 1000;  // keys per DeleteObjects request (S3's maximum)
};
std::unique_ptr<Storage> OpenS3Storage(const Config& config, const std::string& bucket,
                                       const std::string& prefix, const S3Tuning& tuning);

}  // namespace walstore
