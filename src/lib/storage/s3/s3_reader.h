// Reading an S3 repository: HEAD (Stat), streamed GET (OpenRead) and
// ListObjectsV2 (List, ListChildren), with the Storage contract's line between
// absence (a value) and failure (an Error).  Internal to the S3 backend; see
// s3_storage.h for how the Storage calls map to S3.
#pragma once

#include <walstore/storage.h>
#include <walstore/stream.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/s3/s3_request.h"
#include "storage/s3/s3_xml.h"

namespace walstore::s3 {

// HEAD of the repository key `key`: size, modification time and the
// x-amz-meta-* headers as ObjectInfo::metadata.  A 404 is std::nullopt
// without more ado (a 404 to HEAD has no body that would tell a missing key
// from a missing bucket: BucketReader::Stat checks the bucket).  Throws
// kStorage / kAuth for any other refusal, kInternal for a key that breaks
// the key rules (ValidateKey).
std::optional<ObjectInfo> HeadObject(RequestSender& requests, const std::string& key);

// The reading half of the backend.  Holds a reference to `requests`, which
// must outlive it and every stream it returns.  Thread-safe like
// RequestSender; each returned ReadStream is used by one thread at a time.
class BucketReader {
 public:
  // `list_page_size`: max-keys of a ListObjectsV2 request (at most
  // kMaxKeysPerRequest; tests use less).
  BucketReader(RequestSender& requests, int list_page_size);

  // HeadObject, but a 404 counts as absence only once the bucket has
  // answered a listing (asked once per process): otherwise kStorage.
  std::optional<ObjectInfo> Stat(const std::string& key);

  // A streamed GET; nullptr only for S3's NoSuchKey (an HTML 404 from a
  // proxy, or NoSuchBucket, is an error).  A transfer lost midway resumes
  // with a Range request pinned to the ETag (If-Match): an object replaced
  // meanwhile is kStorage ("changed ... while being read").
  std::unique_ptr<ReadStream> OpenRead(const std::string& key);

  // Every object below KeyPrefix() + `prefix`, page by page (keys relative to
  // the repository).  kStorage if the endpoint repeats a continuation token.
  void List(const std::string& prefix, const std::function<void(const ObjectInfo&)>& visit);

  // The first `limit` names directly below `prefix` (one delimiter listing).
  std::vector<std::string> ListChildren(const std::string& prefix, size_t limit);

  // The first `limit` (at most 1000) objects below `prefix` after `after`: one
  // ListObjectsV2 with start-after (none for "") and max-keys, no delimiter.
  // Storage::AnyBelow is this with limit 1.
  std::vector<ObjectInfo> ListObjectsAfter(const std::string& prefix, const std::string& after,
                                           size_t limit);

 private:
  // One ListObjectsV2 page of the keys below KeyPrefix() + `prefix`.  A
  // listing that succeeds proves the bucket is there.
  ListPage FetchListPage(const std::string& prefix, int max_keys, const std::string& delimiter,
                         const std::string& token, const std::string& start_after = "");
  // Throws unless the bucket answers a listing; asks once per process.
  void ConfirmBucket();

  RequestSender& requests_;
  int list_page_size_;
  std::atomic<bool> bucket_confirmed_{false};
};

}  // namespace walstore::s3
