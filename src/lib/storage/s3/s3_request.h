// Requests to one S3 bucket: building them (key under the repository prefix,
// URL, headers, SigV4 signature for the current time), sending them with the
// retry policy of config.s3, and turning a refusal into an Error that says
// what to do.  The reader (s3_reader.h) and the writer (s3_writer.h) go
// through one RequestSender; nothing else in the backend signs or sends.
// Internal to the S3 backend.
//
// Thread-safety: a RequestSender may be used from several threads at once
// (idle connections are shared through a locked pool; each request gets its
// own).  It holds the credentials: never log a Call's signed headers.
#pragma once

#include <walstore/config.h>
#include <walstore/retry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_client.h"
#include "storage/s3/credentials.h"
#include "storage/s3/s3_config.h"
#include "storage/s3/sigv4.h"

namespace walstore::s3 {

// The payload hash of a request without a body (SHA-256 of nothing).
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// User metadata travels in headers named with this prefix (S3 lower-cases them).
inline constexpr std::string_view kMetadataHeaderPrefix = "x-amz-meta-";

// The largest max-keys of ListObjectsV2 and the most keys of one DeleteObjects.
inline constexpr int kMaxKeysPerRequest = 1000;

// One S3 request before signing.  `key` is the full object key, prefix
// included (RequestSender::FullKey), "" for the bucket itself.  `body` is
// not owned and must outlive the Send() that uses it.
struct Call {
  std::string method;
  std::string key;
  NameValues query = {};
  NameValues headers = {};
  const std::string* body = nullptr;
};

// A Content-Length header's value; 0 when absent or malformed.
uint64_t ContentLength(const http::Response& response);

// Idle HTTP clients, so that sequential requests reuse one connection and
// concurrent ones (several threads, an open read stream) get their own.
class ClientPool {
 public:
  explicit ClientPool(const http::ClientOptions& options) : options_(options) {}

  // A client for one user at a time; returned to the pool when destroyed.
  // Must not outlive the pool.
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

  Lease Acquire();

 private:
  void Return(std::unique_ptr<http::Client> client);

  http::ClientOptions options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<http::Client>> idle_;
};

class RequestSender {
 public:
  // `bucket` is the bucket name, `prefix` the key prefix ("" or "a/b", no
  // leading or trailing '/').  Resolves the endpoint (s3::ResolveLocation)
  // and the credentials (the chain of credentials.h with the process
  // environment, or `chain` when given): throws kConfig when they are
  // missing or malformed.
  RequestSender(const S3Settings& settings, std::string bucket, std::string prefix,
                std::vector<CredentialSource> chain = {});
  RequestSender(const RequestSender&) = delete;
  RequestSender& operator=(const RequestSender&) = delete;

  const S3Settings& settings() const { return settings_; }
  // "s3://bucket/prefix" (or "s3://bucket"): the repository in messages.
  std::string Describe() const;
  // The endpoint, "https://host[:port]", in messages.
  std::string BaseUrl() const { return location_.BaseUrl(); }
  // "<prefix>/", or "" for a whole bucket.
  std::string KeyPrefix() const;
  // The object key in the bucket of the repository key `key`.
  std::string FullKey(const std::string& key) const;

  // A connection of its own, for a response read as a stream.
  ClientPool::Lease AcquireClient() { return pool_.Acquire(); }

  // Signs `call` for the current time with the provider's current (possibly
  // just refreshed) credentials: URL, headers with host, x-amz-date,
  // x-amz-content-sha256 (= `payload_hash`), the session token if any, and
  // the Authorization header.  Throws kAuth when temporary credentials
  // expired and could not be refreshed.
  http::Request Build(const Call& call, const std::string& payload_hash) const;

  // Sends `call` with retries; returns any response that is not transient
  // (the caller decides what its status means).  Over plain HTTP the body is
  // signed (its SHA-256); over TLS it is sent as UNSIGNED-PAYLOAD.  A 200
  // reply carrying an S3 <Error> document (CompleteMultipartUpload may do
  // that) counts as a 500.  Throws kStorageTransient when the retries are
  // used up, and what http::Client throws for a transport failure.
  http::Response Send(const Call& call, const std::string& what);

  // Runs `attempt` under the retry policy (retry_total_seconds, max_attempts).
  void Retry(const std::string& what, const std::function<void()>& attempt);

  // Throws kStorageTransient when `response` is worth another attempt:
  // 5xx except 501, 429, 408, RequestTimeout, ConditionalRequestConflict.
  void ThrowIfTransient(const http::Response& response, const std::string& what) const;

  // Throws the Error for a refused request `what`: a missing bucket and a
  // non-S3 reply (kStorage), refused credentials (kAuth, with a hint naming
  // the likely cause), a bucket in another region (kConfig naming it, from
  // x-amz-bucket-region or the error document's <Region> / <Endpoint>), any
  // other S3 error (kStorage, with its code).
  [[noreturn]] void FailResponse(const http::Response& response, const std::string& what) const;

 private:
  S3Settings settings_;
  std::string bucket_;
  std::string prefix_;
  Location location_;
  mutable CredentialProvider credentials_;
  RetryPolicy policy_;
  ClientPool pool_;
};

}  // namespace walstore::s3
