// The XML documents of the S3 REST API that the backend reads and writes
// (parsed with pugixml).  Internal to the backend; pure functions.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace walstore::s3 {

struct ListedObject {
  std::string key;  // full key, bucket prefix included
  uint64_t size = 0;
  std::time_t modified = 0;
};

struct ListPage {
  std::vector<ListedObject> objects;
  // With a delimiter: the <CommonPrefixes> ("a/b/"), bucket prefix included.
  std::vector<std::string> common_prefixes;
  std::string next_token;  // "" on the last page
};

// A ListObjectsV2 (list-type=2) reply.  Throws kStorage if it is not one.
ListPage ParseListPage(const std::string& xml);

struct ErrorBody {
  std::string code;  // "NoSuchBucket", "SlowDown", ... ("" if none)
  std::string message;
  std::string region;    // <Region> of a wrong-region error, if any
  std::string endpoint;  // <Endpoint> of a PermanentRedirect, if any
};
// An <Error> document; empty fields when `xml` is not one.
ErrorBody ParseErrorBody(const std::string& xml);

// <Delete><Quiet>true</Quiet><Object><Key>..</Key></Object>...</Delete>
std::string DeleteRequestBody(const std::vector<std::string>& keys);
// The <Error> entries of a DeleteObjects reply as "key: code message".
std::vector<std::string> ParseDeleteErrors(const std::string& xml);

// The UploadId of a CreateMultipartUpload reply; throws kStorage if missing.
std::string ParseUploadId(const std::string& xml);
// <CompleteMultipartUpload> listing parts 1..n with their ETags.
std::string CompleteRequestBody(const std::vector<std::string>& etags);

struct MultipartUpload {
  std::string key;  // full key, bucket prefix included
  std::string upload_id;
  std::time_t initiated = 0;
};

struct UploadsPage {
  std::vector<MultipartUpload> uploads;
  // Both "" on the last page.
  std::string next_key_marker;
  std::string next_upload_id_marker;
};

// A ListMultipartUploads (GET ?uploads) reply.  nullopt when `xml` is
// another document (servers without the call may answer with a bucket
// listing); throws kStorage when it is truncated without markers.
std::optional<UploadsPage> ParseUploadsPage(const std::string& xml);

// "2026-11-21T11:20:14.000Z" -> seconds since the epoch, never negative (0 if
// malformed, including fields out of range: year 1970..9999, month 1..12, ...).
std::time_t ParseIsoTime(const std::string& text);

}  // namespace walstore::s3
