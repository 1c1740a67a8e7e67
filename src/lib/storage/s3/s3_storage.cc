#include "storage/s3/s3_storage.h"

#include <openssl/evp.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/retry.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <future>
#include <mutex>
#include <set>

#include "http/http_client.h"
#include "storage/s3/s3_config.h"
#include "storage/s3/s3_xml.h"
#include "storage/s3/sigv4.h"

namespace walstore {
namespace {

using s3::NameValues;

constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string Md5Base64(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  unsigned char encoded[64];
  const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(length));
  return std::string(reinterpret_cast<char*>(encoded), n);
}

// A Content-Length header's value; 0 when absent or malformed.
uint64_t ContentLength(const http::Response& response) {
  const std::string text = response.Header("content-length").value_or("0");
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

std::time_t ParseHttpDate(const std::string& text) {
  std::tm tm{};
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return 0;
  return timegm(&tm);
}

// Statuses worth another attempt: server errors, throttling (429, 503
// SlowDown), request timeouts, and a conditional write racing another one.
bool IsTransient(const http::Response& response) {
  const long status = response.status;
  if (status == 501) return false;  // Not Implemented: asking again changes nothing
  if (status >= 500 || status == 429 || status == 408) return true;
  const std::string code = s3::ParseErrorBody(response.body).code;
  return (status == 400 && code == "RequestTimeout") ||
         (status == 409 && code == "ConditionalRequestConflict");
}

// Idle HTTP clients, so that sequential requests reuse one connection and
// concurrent ones (several threads, an open read stream) get their own.
class ClientPool {
 public:
  explicit ClientPool(const http::ClientOptions& options) : options_(options) {}

  class Lease {
   public:
    Lease(ClientPool* pool, std::unique_ptr<http::Client> client)
        : pool_(pool), client_(std::move(client)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (client_) pool_->Return(std::move(client_));
    }
    http::Client* operator->() { return client_.get(); }
    http::Client& operator*() { return *client_; }

   private:
    ClientPool* pool_;
    std::unique_ptr<http::Client> client_;
  };

  Lease Acquire() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) return Lease(this, std::make_unique<http::Client>(options_));
    Lease lease(this, std::move(idle_.back()));
    idle_.pop_back();
    return lease;
  }

 private:
  void Return(std::unique_ptr<http::Client> client) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(client));
  }

  http::ClientOptions options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<http::Client>> idle_;
};

// One S3 request before signing.  `key` is the full object key ("" for the
// bucket itself).
struct Call {
  std::string method;
  std::string key;
  NameValues query = {};
  NameValues headers = {};
  const std::string* body = nullptr;
};

class S3Storage : public Storage {
 public:
  S3Storage(const Config& config, std::string bucket, std::string prefix, const S3Tuning& tuning)
      : settings_(config.s3),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        tuning_(tuning),
        location_(s3::ResolveLocation(settings_, bucket_)),
        credentials_(s3::ResolveCredentials(settings_, ProcessEnvironment())),
        pool_(http::ClientOptions{settings_.connect_timeout_seconds, settings_.low_speed_seconds,
                                  settings_.ca_bundle, settings_.ca_path, settings_.verify_tls}) {
    policy_.max_attempts = std::max(1, settings_.max_attempts);
    policy_.total_budget =
        std::chrono::milliseconds(static_cast<int64_t>(settings_.retry_total_seconds * 1000));
  }

  std::optional<ObjectInfo> Stat(const std::string& key) override { return Head(key, true); }

  // HEAD of `key`.  A 404 carries no body to tell a missing key from a
  // missing bucket or a server that is not S3, so with `verify_absence` it
  // counts as absence only once the bucket answered a listing (once per
  // process).  The writer's existence check passes false: its PUT reports
  // a missing bucket anyway.
  std::optional<ObjectInfo> Head(const std::string& key, bool verify_absence) {
    ValidateKey(key);
    const http::Response response = Send({"HEAD", FullKey(key)}, "HEAD " + key);
    if (response.status == 404) {
      if (verify_absence) ConfirmBucket();
      return std::nullopt;
    }
    if (response.status != 200) FailResponse(response, "HEAD " + key);
    ObjectInfo info;
    info.key = key;
    info.size = ContentLength(response);
    info.modified = ParseHttpDate(response.Header("last-modified").value_or(""));
    for (const auto& [name, value] : response.headers) {
      if (name.starts_with("x-amz-meta-")) info.metadata[name.substr(11)] = value;
    }
    return info;
  }

  std::unique_ptr<ReadStream> OpenRead(const std::string& key) override;

  std::unique_ptr<ObjectWriter> Create(const std::string& key,
                                       const WriteOptions& options) override;

  void List(const std::string& prefix,
            const std::function<void(const ObjectInfo&)>& visit) override {
    const std::string strip = KeyPrefix();
    std::string token;
    std::set<std::string> tokens_seen;
    do {
      const s3::ListPage page = FetchListPage(prefix, tuning_.list_page_size, "", token);
      for (const s3::ListedObject& object : page.objects) {
        if (!object.key.starts_with(strip)) continue;
        visit(ObjectInfo{object.key.substr(strip.size()), object.size, object.modified, {}});
      }
      token = page.next_token;
      if (!token.empty() && !tokens_seen.insert(token).second) {
        throw Error(ErrorCode::kStorage,
                    fmt::format("listing {} at {} returned a continuation token it had already "
                                "returned: the listing would never end",
                                Describe(), location_.BaseUrl()),
                    "the S3 endpoint does not implement ListObjectsV2 correctly: check the "
                    "endpoint, or report it to its vendor");
      }
    } while (!token.empty());
  }

  std::vector<std::string> ListChildren(const std::string& prefix, size_t limit) override {
    const std::string full_prefix = KeyPrefix() + prefix;
    const int max_keys = static_cast<int>(std::clamp<size_t>(limit, 1, 1000));
    const s3::ListPage page = FetchListPage(prefix, max_keys, "/", "");
    std::set<std::string> names;
    for (const std::string& common : page.common_prefixes) {
      if (common.starts_with(full_prefix) && common.size() > full_prefix.size() + 1) {
        names.insert(common.substr(full_prefix.size(), common.size() - full_prefix.size() - 1));
      }
    }
    for (const s3::ListedObject& object : page.objects) {
      if (object.key.starts_with(full_prefix)) names.insert(object.key.substr(full_prefix.size()));
    }
    std::vector<std::string> first(names.begin(), names.end());
    if (first.size() > limit) first.resize(limit);
    return first;
  }

  bool Remove(const std::string& key) override {
    if (!Stat(key)) return false;
    const http::Response response = Send({"DELETE", FullKey(key)}, "DELETE " + key);
    if (response.status != 204 && response.status != 200) FailResponse(response, "DELETE " + key);
    return true;
  }

  void RemoveMany(const std::vector<std::string>& keys) override {
    const size_t batch = static_cast<size_t>(std::max(1, tuning_.delete_batch_size));
    for (size_t start = 0; start < keys.size(); start += batch) {
      std::vector<std::string> full;
      for (size_t i = start; i < std::min(keys.size(), start + batch); ++i) {
        ValidateKey(keys[i]);
        full.push_back(FullKey(keys[i]));
      }
      const std::string body = s3::DeleteRequestBody(full);
      const std::string what = fmt::format("delete {} objects from {}", full.size(), Describe());
      const http::Response response =
          Send({"POST", "", {{"delete", ""}}, {{"content-md5", Md5Base64(body)}}, &body}, what);
      if (response.status != 200) FailResponse(response, what);
      const std::vector<std::string> errors = s3::ParseDeleteErrors(response.body);
      if (!errors.empty()) {
        Fail(ErrorCode::kStorage, "{}: {} keys not deleted, e.g. {}", what, errors.size(),
             errors.front());
      }
    }
  }

  std::optional<std::vector<Leftover>> ListLeftovers(int64_t min_age_seconds) override {
    const std::string what = "list the multipart uploads of " + Describe();
    const std::time_t cutoff = std::time(nullptr) - min_age_seconds;
    std::vector<Leftover> leftovers;
    std::string key_marker, upload_id_marker;
    do {
      Call call{"GET", "", {{"uploads", ""}, {"prefix", prefix_.empty() ? "" : prefix_ + "/"}}};
      if (!key_marker.empty()) call.query.emplace_back("key-marker", key_marker);
      if (!upload_id_marker.empty()) call.query.emplace_back("upload-id-marker", upload_id_marker);
      const http::Response response = Send(call, what);
      const std::string code = s3::ParseErrorBody(response.body).code;
      if (response.status == 501 || code == "NotImplemented") return std::nullopt;
      if (response.status != 200) FailResponse(response, what);
      const auto page = s3::ParseUploadsPage(response.body);
      if (!page) return std::nullopt;  // a server that does not know the call
      for (const s3::MultipartUpload& upload : page->uploads) {
        if (upload.initiated == 0 || upload.initiated > cutoff) continue;
        leftovers.push_back({fmt::format("{}/{} (upload id {})", Describe(), upload.key,
                                         upload.upload_id),
                             0, upload.initiated, upload.key, upload.upload_id});
      }
      key_marker = page->next_key_marker;
      upload_id_marker = page->next_upload_id_marker;
    } while (!key_marker.empty() || !upload_id_marker.empty());
    return leftovers;
  }

  bool RemoveLeftover(const Leftover& leftover) override {
    const std::string what = "abort the multipart upload " + leftover.description;
    const http::Response response =
        Send({"DELETE", leftover.location, {{"uploadId", leftover.upload_id}}}, what);
    if (response.status == 204 || response.status == 200) return true;
    if (response.status == 404) return false;  // NoSuchUpload: finished or aborted meanwhile
    FailResponse(response, what);
  }

  std::string Describe() const override {
    return prefix_.empty() ? "s3://" + bucket_ : fmt::format("s3://{}/{}", bucket_, prefix_);
  }

  // --- for the reader and writer ---

  // "<prefix>/", or "" for a whole bucket.
  std::string KeyPrefix() const { return prefix_.empty() ? "" : prefix_ + "/"; }

  // One ListObjectsV2 page of the keys below KeyPrefix() + `prefix`.  A
  // listing that succeeds proves the bucket is there (ConfirmBucket).
  s3::ListPage FetchListPage(const std::string& prefix, int max_keys,
                             const std::string& delimiter, const std::string& token) {
    Call call{"GET", "", {{"list-type", "2"}, {"prefix", KeyPrefix() + prefix}}};
    if (max_keys != 1000) call.query.emplace_back("max-keys", std::to_string(max_keys));
    if (!delimiter.empty()) call.query.emplace_back("delimiter", delimiter);
    if (!token.empty()) call.query.emplace_back("continuation-token", token);
    const std::string what = "list " + Describe();
    const http::Response response = Send(call, what);
    if (response.status != 200) FailResponse(response, what);
    s3::ListPage page = s3::ParseListPage(response.body);
    bucket_confirmed_ = true;
    return page;
  }

  // Throws unless the bucket answers a listing; asks once per process.
  void ConfirmBucket() {
    if (!bucket_confirmed_) FetchListPage("", 1, "", "");
  }

  std::string FullKey(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "/" + key;
  }
  const S3Settings& settings() const { return settings_; }

  void Retry(const std::string& what, const std::function<void()>& attempt) {
    WithRetry(policy_, what, attempt);
  }

  // Signs `call` for the current time.
  http::Request Build(const Call& call, const std::string& payload_hash) const {
    const std::string path = location_.path_prefix + "/" + call.key;
    const std::string date = s3::AmzDate(std::time(nullptr));
    s3::SigningRequest signing{call.method, path, call.query, call.headers, payload_hash};
    signing.headers.emplace_back("host", location_.host);
    signing.headers.emplace_back("x-amz-date", date);
    signing.headers.emplace_back("x-amz-content-sha256", payload_hash);
    if (!credentials_.session_token.empty()) {
      signing.headers.emplace_back("x-amz-security-token", credentials_.session_token);
    }
    const s3::SignResult signature = s3::Sign(signing, credentials_, location_.region, "s3", date);
    http::Request request;
    request.method = call.method;
    request.url = location_.BaseUrl() + s3::UriEncode(path, true);
    if (!call.query.empty()) request.url += "?" + s3::CanonicalQuery(call.query);
    request.headers = std::move(signing.headers);
    request.headers.emplace_back("authorization", signature.authorization);
    return request;
  }

  // Sends `call` with retries; returns any response that is not transient.
  http::Response Send(const Call& call, const std::string& what) {
    // Over plain HTTP the body is signed (integrity); TLS protects it otherwise.
    std::string payload_hash(kEmptySha256);
    if (call.body != nullptr) {
      payload_hash = location_.scheme == "http" ? s3::Sha256Hex(AsBytes(*call.body))
                                                : std::string(s3::kUnsignedPayload);
    }
    http::Response response;
    Retry(what, [&] {
      http::Request request = Build(call, payload_hash);
      MemoryReadStream body(call.body ? std::string_view(*call.body) : std::string_view());
      if (call.body != nullptr) {
        request.body = &body;
        request.body_size = call.body->size();
      }
      response = pool_.Acquire()->Perform(request);
      // CompleteMultipartUpload may report a failure inside a 200 reply.
      if (response.status == 200 && response.body.find("<Error>") != std::string::npos &&
          !s3::ParseErrorBody(response.body).code.empty()) {
        response.status = 500;
      }
      ThrowIfTransient(response, what);
    });
    return response;
  }

  // Aborts a multipart upload: one attempt, never throwing (destructors).
  void AbortUploadNoThrow(const std::string& full_key, const std::string& upload_id) noexcept {
    const auto response = pool_.Acquire()->PerformNoThrow(
        Build({"DELETE", full_key, {{"uploadId", upload_id}}}, std::string(kEmptySha256)));
    if (!response || (response->status != 204 && response->status != 200)) {
      Log(LogLevel::kWarning,
          "could not abort the multipart upload of {} on {}: its parts stay (invisible) until "
          "an AbortIncompleteMultipartUpload lifecycle rule removes them",
          full_key, Describe());
    }
  }

  void ThrowIfTransient(const http::Response& response, const std::string& what) const {
    if (!IsTransient(response)) return;
    const s3::ErrorBody error = s3::ParseErrorBody(response.body);
    Fail(ErrorCode::kStorageTransient, "{} on {}: HTTP {}{}", what, Describe(), response.status,
         error.code.empty() ? "" : " " + error.code);
  }

  [[noreturn]] void FailResponse(const http::Response& response, const std::string& what) const {
    const s3::ErrorBody error = s3::ParseErrorBody(response.body);
    const std::string endpoint = location_.BaseUrl();
    if (error.code == "NoSuchBucket") {
      throw Error(ErrorCode::kStorage,
                  fmt::format("bucket {} does not exist at endpoint {}", bucket_, endpoint),
                  "create the bucket, or check the repository URL, [s3] endpoint and region");
    }
    if (response.status == 403 || response.status == 401) {
      std::string hint = fmt::format(
          "check the access key and secret key, and that they may read, write, list and delete "
          "in bucket {}",
          bucket_);
      if (error.code == "RequestTimeTooSkewed") hint = "this machine's clock is off: sync it (NTP)";
      if (error.code == "SignatureDoesNotMatch") hint = "the secret access key is wrong";
      if (error.code == "InvalidAccessKeyId") hint = "the access key id is unknown at " + endpoint;
      throw Error(ErrorCode::kAuth,
                  fmt::format("S3 refused {} on {} (HTTP {} {})", what, Describe(), response.status,
                              error.code.empty() ? "Forbidden" : error.code),
                  hint);
    }
    if (error.code.empty()) {
      throw Error(ErrorCode::kStorage,
                  fmt::format("{} on {} failed: HTTP {} without an S3 error document", what,
                              Describe(), response.status),
                  fmt::format("check that {} is an S3 endpoint and that the bucket name and "
                              "addressing style (s3 path_style) are right",
                              endpoint));
    }
    Fail(ErrorCode::kStorage, "{} on {} failed: HTTP {} {} {}", what, Describe(), response.status,
         error.code, error.message);
  }

  // Headers that go with a new object: metadata, storage class, encryption.
  NameValues ObjectHeaders(const WriteOptions& options) const {
    NameValues headers;
    for (const auto& [name, value] : options.metadata) {
      headers.emplace_back("x-amz-meta-" + name, value);
    }
    if (!settings_.storage_class.empty()) {
      headers.emplace_back("x-amz-storage-class", settings_.storage_class);
    }
    if (!settings_.sse.empty()) {
      headers.emplace_back("x-amz-server-side-encryption", settings_.sse);
      if (!settings_.sse_kms_key_id.empty()) {
        headers.emplace_back("x-amz-server-side-encryption-aws-kms-key-id",
                             settings_.sse_kms_key_id);
      }
    }
    return headers;
  }

 private:
  S3Settings settings_;
  std::string bucket_;
  std::string prefix_;
  S3Tuning tuning_;
  s3::Location location_;
  s3::Credentials credentials_;
  RetryPolicy policy_;
  ClientPool pool_;
  std::atomic<bool> bucket_confirmed_{false};
};

// A streamed GET.  A transfer that fails midway is resumed from the current
// offset with a Range request pinned to the object's ETag.
class S3Reader : public ReadStream {
 public:
  S3Reader(S3Storage& storage, std::string key, ClientPool::Lease client, uint64_t size,
           std::string etag)
      : storage_(storage),
        key_(std::move(key)),
        client_(std::move(client)),
        size_(size),
        etag_(std::move(etag)) {}

  size_t Read(MutableBytes out) override {
    size_t n = 0;
    storage_.Retry("GET " + key_, [&] {
      if (!streaming_) {
        if (offset_ >= size_) return;  // failed after the last byte: nothing to resume
        Resume();
      }
      streaming_ = false;
      n = client_->ReadBody(out);
      streaming_ = true;
    });
    offset_ += n;
    return n;
  }

 private:
  void Resume() {
    Call call{"GET",
              storage_.FullKey(key_),
              {},
              {{"range", fmt::format("bytes={}-", offset_)}, {"if-match", etag_}}};
    const http::Response response = client_->Start(storage_.Build(call, std::string(kEmptySha256)));
    // A store that ignores Range sends everything: fine only from the start.
    if (response.status == 206 || (response.status == 200 && offset_ == 0)) {
      streaming_ = true;
      return;
    }
    http::Response error = response;
    error.body = client_->ReadRestOfBody();
    storage_.ThrowIfTransient(error, "GET " + key_);
    if (response.status == 412) {
      Fail(ErrorCode::kStorage, "{} changed on {} while being read", key_, storage_.Describe());
    }
    storage_.FailResponse(error, "GET " + key_);
  }

  S3Storage& storage_;
  std::string key_;
  ClientPool::Lease client_;
  uint64_t size_;
  std::string etag_;
  uint64_t offset_ = 0;
  bool streaming_ = true;
};

std::unique_ptr<ReadStream> S3Storage::OpenRead(const std::string& key) {
  ValidateKey(key);
  std::unique_ptr<ReadStream> reader;
  const std::string what = "GET " + key;
  Retry(what, [&] {
    ClientPool::Lease client = pool_.Acquire();
    http::Response response =
        client->Start(Build({"GET", FullKey(key)}, std::string(kEmptySha256)));
    if (response.status == 200) {
      reader = std::make_unique<S3Reader>(*this, key, std::move(client), ContentLength(response),
                                          response.Header("etag").value_or(""));
      return;
    }
    response.body = client->ReadRestOfBody();
    // Absence only when S3 says so: an HTML 404 from a proxy or a web
    // server, or NoSuchBucket, is an error.
    if (response.status == 404 && s3::ParseErrorBody(response.body).code == "NoSuchKey") {
      bucket_confirmed_ = true;
      return;
    }
    ThrowIfTransient(response, what);
    FailResponse(response, what);
  });
  return reader;
}

// Buffers up to multipart_threshold, then streams parts of part_size.
class S3Writer : public ObjectWriter {
 public:
  // Starts the existence check (HEAD) at once, in the background: it overlaps
  // the encoding and warms the connection for the PUT.
  S3Writer(S3Storage& storage, std::string key, const WriteOptions& options)
      : storage_(storage),
        key_(std::move(key)),
        full_key_(storage.FullKey(key_)),
        options_(options),
        headers_(storage.ObjectHeaders(options)),
        existed_(std::async(std::launch::async,
                            [this] { return storage_.Head(key_, false).has_value(); })) {
    // Room for the whole object when its size is known (an encoded object
    // is at most a little larger than its plaintext): no regrowth and
    // copying while it is written.  Pages are touched only as it fills.
    if (options.size_hint > 0) {
      buffer_.reserve(std::min<uint64_t>(options.size_hint + options.size_hint / 64 + 4096,
                                         storage.settings().multipart_threshold));
    }
  }

  ~S3Writer() override {
    if (!upload_id_.empty() && !completed_) {
      storage_.AbortUploadNoThrow(full_key_, upload_id_);
    }
  }

  void Write(Bytes data) override {
    buffer_.append(reinterpret_cast<const char*>(data.data()), data.size());
    const S3Settings& settings = storage_.settings();
    if (upload_id_.empty() && buffer_.size() <= settings.multipart_threshold) return;
    if (upload_id_.empty()) StartUpload();
    const size_t part_size = std::max<uint64_t>(1, settings.part_size);
    size_t offset = 0;
    while (buffer_.size() - offset >= part_size) {
      std::string part = buffer_.substr(offset, part_size);
      if (etags_.empty()) {
        // Part 1 is uploaded last, in Commit(): its head may still be rewritten.
        first_part_ = std::move(part);
        etags_.emplace_back();
      } else {
        etags_.push_back(UploadPart(part, etags_.size() + 1));
      }
      offset += part_size;
    }
    buffer_.erase(0, offset);
  }

  void RewriteHead(Bytes head) override {
    std::string& start = etags_.empty() ? buffer_ : first_part_;
    if (head.size() > start.size()) Fail(ErrorCode::kInternal, "rewrite past the end of {}", key_);
    start.replace(0, head.size(), reinterpret_cast<const char*>(head.data()), head.size());
  }

  void SetMetadata(const std::map<std::string, std::string>& metadata) override {
    if (!upload_id_.empty()) return;  // CreateMultipartUpload already sent the metadata
    options_.metadata = metadata;
    headers_ = storage_.ObjectHeaders(options_);
  }

  CommitResult Commit() override {
    // After a (long) multipart upload, look again: keep the window between
    // the check and the write short for stores that ignore If-None-Match.
    const bool existed = existed_.get();
    if (existed || (!upload_id_.empty() && storage_.Head(key_, false))) {
      return CommitResult::kAlreadyExists;
    }
    NameValues headers = headers_;
    headers.emplace_back("if-none-match", "*");
    const std::string what = "PUT " + key_;
    http::Response response;
    if (upload_id_.empty()) {
      response = storage_.Send({"PUT", full_key_, {}, headers, &buffer_}, what);
    } else {
      if (etags_.empty()) {
        // Above multipart_threshold but below part_size: the buffer is the only part.
        etags_.push_back(UploadPart(buffer_, 1));
      } else {
        if (!buffer_.empty()) etags_.push_back(UploadPart(buffer_, etags_.size() + 1));
        etags_[0] = UploadPart(first_part_, 1);
      }
      const std::string body = s3::CompleteRequestBody(etags_);
      response = storage_.Send(
          {"POST", full_key_, {{"uploadId", upload_id_}}, {{"if-none-match", "*"}}, &body}, what);
    }
    if (response.status == 412) return CommitResult::kAlreadyExists;
    if (response.status != 200) storage_.FailResponse(response, what);
    completed_ = true;
    return CommitResult::kCreated;
  }

 private:
  void StartUpload() {
    const std::string what = "start multipart upload of " + key_;
    const http::Response response =
        storage_.Send({"POST", full_key_, {{"uploads", ""}}, headers_}, what);
    if (response.status != 200) storage_.FailResponse(response, what);
    upload_id_ = s3::ParseUploadId(response.body);
  }

  // Uploads one part; returns its ETag.
  std::string UploadPart(const std::string& part, size_t number) {
    const std::string what = fmt::format("upload part {} of {}", number, key_);
    const http::Response response =
        storage_.Send({"PUT", full_key_, {{"partNumber", std::to_string(number)},
                                          {"uploadId", upload_id_}}, {}, &part},
                      what);
    if (response.status != 200) storage_.FailResponse(response, what);
    return response.Header("etag").value_or("");
  }

  S3Storage& storage_;
  std::string key_;
  std::string full_key_;
  WriteOptions options_;
  NameValues headers_;
  std::string buffer_;
  std::string first_part_;  // multipart: part 1, held back until Commit()
  std::string upload_id_;
  std::vector<std::string> etags_;
  bool completed_ = false;
  std::future<bool> existed_;
};

std::unique_ptr<ObjectWriter> S3Storage::Create(const std::string& key,
                                                const WriteOptions& options) {
  ValidateKey(key);
  return std::make_unique<S3Writer>(*this, key, options);
}

}  // namespace

std::unique_ptr<Storage> OpenS3Storage(const Config& config, const std::string& bucket,
                                       const std::string& prefix, const S3Tuning& tuning) {
  if (bucket.empty()) Fail(ErrorCode::kConfig, "s3:// repository URL without a bucket name");
  return std::make_unique<S3Storage>(config, bucket, prefix, tuning);
}

std::unique_ptr<Storage> OpenS3Storage(const Config& config, const std::string& bucket,
                                       const std::string& prefix) {
  return OpenS3Storage(config, bucket, prefix, S3Tuning{});
}

}  // namespace walstore
