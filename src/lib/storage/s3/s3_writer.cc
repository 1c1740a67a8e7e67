#include "storage/s3/s3_writer.h"

#include <walstore/error.h>
#include <walstore/log.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <deque>
#include <exception>
#include <future>
#include <utility>

#include "storage/s3/s3_reader.h"
#include "storage/s3/s3_xml.h"

namespace walstore::s3 {

namespace {

// AbortMultipartUpload of `upload_id` for the object `full_key`.
Call AbortUploadCall(const std::string& full_key, const std::string& upload_id) {
  return {"DELETE", full_key, {{"uploadId", upload_id}}};
}

// Part uploads one writer keeps in flight at most.  Two keep the link busy
// while a part's reply is on its way back (one at a time, every part waits a
// round trip with nothing sent), so smaller parts cost no speed at 50 ms;
// more would only add memory: a writer holds part 1, the parts in flight and
// the part being filled.
constexpr size_t kPartsInFlight = 2;

// The part size doubles after every kPartsPerSize parts (up to S3's 5 GiB a
// part), so that an object of unknown size fits in S3's 10000 parts: at 8 MiB,
// 7.8 GiB in the first 1000 parts and about 8 TiB in all, while objects of
// up to a few GiB keep small parts and memory.
constexpr size_t kPartsPerSize = 1000;
constexpr uint64_t kMaxPartSize = 5ull << 30;

// Headers that go with a new object: metadata, storage class, encryption.
NameValues ObjectHeaders(const S3Settings& settings,
                         const std::map<std::string, std::string>& metadata) {
  NameValues headers;
  for (const auto& [name, value] : metadata) {
    headers.emplace_back(std::string(kMetadataHeaderPrefix) + name, value);
  }
  if (!settings.storage_class.empty()) {
    headers.emplace_back("x-amz-storage-class", settings.storage_class);
  }
  if (!settings.sse.empty()) {
    headers.emplace_back("x-amz-server-side-encryption", settings.sse);
    if (!settings.sse_kms_key_id.empty()) {
      headers.emplace_back("x-amz-server-side-encryption-aws-kms-key-id", settings.sse_kms_key_id);
    }
  }
  return headers;
}

// An object of known size up to multipart_threshold is buffered whole and
// sent with one PUT; any other object goes into a multipart upload as soon
// as more than part_size bytes were written, in parts of part_size.  Each
// part is the buffer it was filled in, moved out whole (never copied), and a
// buffer never grows past the part it holds.  Parts 2 and up are uploaded in
// the background, kPartsInFlight at most (Write() waits for a slot); the
// first failure fails the next Write() and Commit(), and the destructor waits
// for the uploads in flight before it aborts the upload.
class S3ObjectWriter : public ObjectWriter {
 public:
  // Starts the existence check (HEAD) at once, in the background: it overlaps
  // the encoding and warms the connection for the PUT.
  S3ObjectWriter(RequestSender& requests, std::string key, const WriteOptions& options)
      : requests_(requests),
        key_(std::move(key)),
        full_key_(requests.FullKey(key_)),
        headers_(ObjectHeaders(requests.settings(), options.metadata)),
        one_put_(options.size_hint > 0 &&
                 options.size_hint <= requests.settings().multipart_threshold),
        replace_(options.replace_existing),
        head_final_(options.head_final),
        existed_(std::async(replace_ ? std::launch::deferred : std::launch::async, [this] {
          return !replace_ && HeadObject(requests_, key_).has_value();
        })) {
    // Room for the whole object when its size is known (an encoded object
    // is at most a little larger than its plaintext): no regrowth and
    // copying while it is written.  Pages are touched only as it fills.
    if (one_put_) {
      buffer_.reserve(std::min<uint64_t>(options.size_hint + options.size_hint / 64 + 4096,
                                         requests.settings().multipart_threshold));
    }
  }

  ~S3ObjectWriter() override {
    for (InFlight& upload : in_flight_) upload.etag.wait();  // they use this writer
    if (!upload_id_.empty() && !completed_) AbortUploadNoThrow();
  }

  void Write(Bytes data) override {
    CollectUploads(kPartsInFlight);  // a part that failed fails the object now
    while (!data.empty()) {
      if (buffer_.size() >= BufferLimit()) CutPart();
      const size_t limit = BufferLimit();
      const size_t take = std::min<size_t>(data.size(), limit - buffer_.size());
      if (buffer_.size() + take > buffer_.capacity()) {  // grow, but never past the limit
        buffer_.reserve(std::min(limit, std::max(buffer_.size() + take, 2 * buffer_.capacity())));
      }
      buffer_.append(reinterpret_cast<const char*>(data.data()), take);
      data = data.subspan(take);
    }
  }

  void RewriteHead(Bytes head) override {
    if (head_final_) Fail(ErrorCode::kInternal, "{} was created with a final head", key_);
    std::string& start = upload_id_.empty() ? buffer_ : first_part_;
    if (head.size() > start.size()) Fail(ErrorCode::kInternal, "rewrite past the end of {}", key_);
    start.replace(0, head.size(), reinterpret_cast<const char*>(head.data()), head.size());
  }

  void SetMetadata(const std::map<std::string, std::string>& metadata) override {
    if (!upload_id_.empty()) return;  // CreateMultipartUpload already sent the metadata
    headers_ = ObjectHeaders(requests_.settings(), metadata);
  }

  CommitResult Commit() override {
    CollectUploads(kPartsInFlight);  // a part that failed fails the commit
    if (existed_.get()) return CommitResult::kAlreadyExists;
    NameValues headers = headers_;
    NameValues condition;
    if (!replace_) condition.emplace_back("if-none-match", "*");
    headers.insert(headers.end(), condition.begin(), condition.end());
    const std::string what = "PUT " + key_;
    http::Response response;
    if (upload_id_.empty()) {
      response = requests_.Send({"PUT", full_key_, {}, headers, &buffer_}, what);
    } else {
      if (!buffer_.empty()) StartPart(std::exchange(buffer_, std::string()));
      if (!head_final_) StartPart(std::move(first_part_), 1);
      CollectUploads(0);
      // After a (long) multipart upload, look again once every part is there: the window
      // between the check and the write is then one round trip, on stores that ignore
      // If-None-Match on CompleteMultipartUpload (s3rver, Ceph RGW 16.2: docs/s3.md).
      if (!replace_ && HeadObject(requests_, key_)) return CommitResult::kAlreadyExists;
      const std::string body = CompleteRequestBody(etags_);
      response = requests_.Send({"POST", full_key_, {{"uploadId", upload_id_}}, condition, &body},
                                what);
    }
    if (response.status == 412) return CommitResult::kAlreadyExists;
    if (response.status != 200) requests_.FailResponse(response, what);
    completed_ = true;
    return CommitResult::kCreated;
  }

 private:
  // The most bytes the buffer holds: an object meant for one PUT up to
  // multipart_threshold (more than its hint said starts parts), else the part
  // being filled (number etags_.size() + 1).
  size_t BufferLimit() const {
    const S3Settings& settings = requests_.settings();
    if (one_put_ && upload_id_.empty()) return std::max<uint64_t>(1, settings.multipart_threshold);
    const size_t doublings = std::min<size_t>(etags_.size() / kPartsPerSize, 32);
    return std::min(std::max<uint64_t>(1, settings.part_size) << doublings,
                    std::max<uint64_t>(kMaxPartSize, settings.part_size));
  }

  // The buffer is full and more bytes come: it becomes the next part (part 1,
  // held back until Commit(), starts the multipart upload), a new one starts.
  void CutPart() {
    std::string part = std::exchange(buffer_, std::string());
    if (upload_id_.empty()) StartUpload();
    if (etags_.empty() && !head_final_) {
      first_part_ = std::move(part);
      etags_.emplace_back();  // part 1 is uploaded in Commit(): its head may be rewritten
    } else {
      StartPart(std::move(part));
    }
    buffer_.reserve(BufferLimit());
  }

  // Uploads `part` in the background as part `number` (default: the next),
  // once fewer than kPartsInFlight are under way.
  void StartPart(std::string part, size_t number = 0) {
    CollectUploads(kPartsInFlight - 1);
    if (number == 0) {
      etags_.emplace_back();
      number = etags_.size();
    }
    in_flight_.push_back({number, std::async(std::launch::async, [this, number, part = std::move(part)] {
                            return UploadPart(part, number);
                          })});
  }

  // Takes the ETags of the finished uploads and waits, oldest first, until
  // at most `keep` are in flight; rethrows the first failure (again on every
  // later call).
  void CollectUploads(size_t keep) {
    if (failure_) std::rethrow_exception(failure_);
    for (auto upload = in_flight_.begin(); upload != in_flight_.end();) {
      const bool wait = in_flight_.size() > keep;
      if (!wait && upload->etag.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        ++upload;
        continue;
      }
      std::future<std::string> etag = std::move(upload->etag);
      const size_t number = upload->number;
      upload = in_flight_.erase(upload);
      try {
        etags_[number - 1] = etag.get();
      } catch (...) {
        failure_ = std::current_exception();
        throw;
      }
    }
  }

  void StartUpload() {
    const std::string what = "start multipart upload of " + key_;
    const http::Response response =
        requests_.Send({"POST", full_key_, {{"uploads", ""}}, headers_}, what);
    if (response.status != 200) requests_.FailResponse(response, what);
    upload_id_ = ParseUploadId(response.body);
  }

  // Uploads one part; returns its ETag.
  std::string UploadPart(const std::string& part, size_t number) {
    const std::string what = fmt::format("upload part {} of {}", number, key_);
    const http::Response response =
        requests_.Send({"PUT", full_key_, {{"partNumber", std::to_string(number)},
                                           {"uploadId", upload_id_}}, {}, &part},
                       what);
    if (response.status != 200) requests_.FailResponse(response, what);
    return response.Header("etag").value_or("");
  }

  // Aborts the multipart upload: one attempt, never throwing (destructor).
  void AbortUploadNoThrow() noexcept {
    const auto response = requests_.AcquireClient()->PerformNoThrow(
        requests_.Build(AbortUploadCall(full_key_, upload_id_), std::string(kEmptySha256)));
    if (!response || (response->status != 204 && response->status != 200)) {
      Log(LogLevel::kWarning,
          "could not abort the multipart upload of {} on {}: its parts stay (invisible) until "
          "an AbortIncompleteMultipartUpload lifecycle rule removes them",
          full_key_, requests_.Describe());
    }
  }

  RequestSender& requests_;
  std::string key_;
  std::string full_key_;
  NameValues headers_;
  bool one_put_;  // known size up to multipart_threshold
  std::string buffer_;
  std::string first_part_;  // multipart: part 1, held back until Commit()
  std::string upload_id_;
  std::vector<std::string> etags_;  // by part number - 1
  struct InFlight {
    size_t number;
    std::future<std::string> etag;
  };
  std::deque<InFlight> in_flight_;  // oldest first
  std::exception_ptr failure_;      // the first part upload that failed
  bool replace_;                    // WriteOptions::replace_existing
  bool head_final_;                 // WriteOptions::head_final: part 1 is not held back
  bool completed_ = false;
  std::future<bool> existed_;
};

}  // namespace

std::unique_ptr<ObjectWriter> CreateObjectWriter(RequestSender& requests, const std::string& key,
                                                 const WriteOptions& options) {
  ValidateKey(key);
  return std::make_unique<S3ObjectWriter>(requests, key, options);
}

std::optional<std::vector<Leftover>> ListIncompleteUploads(RequestSender& requests,
                                                           int64_t min_age_seconds) {
  const std::string what = "list the multipart uploads of " + requests.Describe();
  const std::time_t cutoff = std::time(nullptr) - min_age_seconds;
  std::vector<Leftover> leftovers;
  std::string key_marker, upload_id_marker;
  do {
    Call call{"GET", "", {{"uploads", ""}, {"prefix", requests.KeyPrefix()}}};
    if (!key_marker.empty()) call.query.emplace_back("key-marker", key_marker);
    if (!upload_id_marker.empty()) call.query.emplace_back("upload-id-marker", upload_id_marker);
    const http::Response response = requests.Send(call, what);
    const std::string code = ParseErrorBody(response.body).code;
    if (response.status == 501 || code == "NotImplemented") return std::nullopt;
    if (response.status != 200) requests.FailResponse(response, what);
    const auto page = ParseUploadsPage(response.body);
    if (!page) return std::nullopt;  // a server that does not know the call
    for (const MultipartUpload& upload : page->uploads) {
      if (upload.initiated == 0 || upload.initiated > cutoff) continue;
      leftovers.push_back({fmt::format("{}/{} (upload id {})", requests.Describe(), upload.key,
                                       upload.upload_id),
                           0, upload.initiated, upload.key, upload.upload_id});
    }
    key_marker = page->next_key_marker;
    upload_id_marker = page->next_upload_id_marker;
  } while (!key_marker.empty() || !upload_id_marker.empty());
  return leftovers;
}

bool AbortIncompleteUpload(RequestSender& requests, const Leftover& leftover) {
  const std::string what = "abort the multipart upload " + leftover.description;
  const http::Response response =
      requests.Send(AbortUploadCall(leftover.location, leftover.upload_id), what);
  if (response.status == 204 || response.status == 200) return true;
  if (response.status == 404) return false;  // NoSuchUpload: finished or aborted meanwhile
  requests.FailResponse(response, what);
}

}  // namespace walstore::s3
