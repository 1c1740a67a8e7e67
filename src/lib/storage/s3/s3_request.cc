#include "storage/s3/s3_request.h"

#include <walstore/error.h>

#include <algorithm>
#include <charconv>

#include "storage/s3/s3_xml.h"

namespace walstore::s3 {

namespace {

// Statuses worth another attempt: server errors, throttling (429, 503
// SlowDown), request timeouts, and a conditional write racing another one.
bool IsTransient(const http::Response& response) {
  const long status = response.status;
  if (status == 501) return false;  // Not Implemented: asking again changes nothing
  if (status >= 500 || status == 429 || status == 408) return true;
  const std::string code = ParseErrorBody(response.body).code;
  return (status == 400 && code == "RequestTimeout") ||
         (status == 409 && code == "ConditionalRequestConflict");
}

}  // namespace

uint64_t ContentLength(const http::Response& response) {
  const std::string text = response.Header("content-length").value_or("0");
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

ClientPool::Lease ClientPool::Acquire() {
  std::lock_guard lock(mutex_);
  if (idle_.empty()) return Lease(this, std::make_unique<http::Client>(options_));
  Lease lease(this, std::move(idle_.back()));
  idle_.pop_back();
  return lease;
}

void ClientPool::Return(std::unique_ptr<http::Client> client) {
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(client));
}

RequestSender::RequestSender(const S3Settings& settings, std::string bucket, std::string prefix,
                             std::vector<CredentialSource> chain)
    : settings_(settings),
      bucket_(std::move(bucket)),
      prefix_(std::move(prefix)),
      location_(ResolveLocation(settings_, bucket_)),
      credentials_(chain.empty() ? DefaultCredentialChain(settings_, ProcessEnvironment())
                                 : std::move(chain)),
      pool_(http::ClientOptions{settings_.connect_timeout_seconds, settings_.low_speed_seconds,
                                settings_.ca_bundle, settings_.ca_path, settings_.verify_tls}) {
  policy_.max_attempts = std::max(1, settings_.max_attempts);
  policy_.total_budget =
      std::chrono::milliseconds(static_cast<int64_t>(settings_.retry_total_seconds * 1000));
}

std::string RequestSender::Describe() const {
  return prefix_.empty() ? "s3://" + bucket_ : fmt::format("s3://{}/{}", bucket_, prefix_);
}

std::string RequestSender::KeyPrefix() const { return prefix_.empty() ? "" : prefix_ + "/"; }

std::string RequestSender::FullKey(const std::string& key) const {
  return prefix_.empty() ? key : prefix_ + "/" + key;
}

void RequestSender::Retry(const std::string& what, const std::function<void()>& attempt) {
  WithRetry(policy_, what, attempt);
}

http::Request RequestSender::Build(const Call& call, const std::string& payload_hash) const {
  const std::string path = location_.path_prefix + "/" + call.key;
  const std::string date = AmzDate(std::time(nullptr));
  SigningRequest signing{call.method, path, call.query, call.headers, payload_hash};
  signing.headers.emplace_back("host", location_.host);
  signing.headers.emplace_back("x-amz-date", date);
  signing.headers.emplace_back("x-amz-content-sha256", payload_hash);
  const Credentials credentials = credentials_.Current();
  if (!credentials.session_token.empty()) {
    signing.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  const SignResult signature = Sign(signing, credentials, location_.region, "s3", date);
  http::Request request;
  request.method = call.method;
  request.url = location_.BaseUrl() + UriEncode(path, true);
  if (!call.query.empty()) request.url += "?" + CanonicalQuery(call.query);
  request.headers = std::move(signing.headers);
  request.headers.emplace_back("authorization", signature.authorization);
  return request;
}

http::Response RequestSender::Send(const Call& call, const std::string& what) {
  // Over plain HTTP the body is signed (integrity); TLS protects it otherwise.
  std::string payload_hash(kEmptySha256);
  if (call.body != nullptr) {
    payload_hash = location_.scheme == "http" ? Sha256Hex(AsBytes(*call.body))
                                              : std::string(kUnsignedPayload);
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
        !ParseErrorBody(response.body).code.empty()) {
      response.status = 500;
    }
    ThrowIfTransient(response, what);
  });
  return response;
}

void RequestSender::ThrowIfTransient(const http::Response& response,
                                     const std::string& what) const {
  if (!IsTransient(response)) return;
  const ErrorBody error = ParseErrorBody(response.body);
  Fail(ErrorCode::kStorageTransient, "{} on {}: HTTP {}{}", what, Describe(), response.status,
       error.code.empty() ? "" : " " + error.code);
}

void RequestSender::FailResponse(const http::Response& response, const std::string& what) const {
  const ErrorBody error = ParseErrorBody(response.body);
  const std::string endpoint = location_.BaseUrl();
  if (error.code == "NoSuchBucket") {
    throw Error(ErrorCode::kStorage,
                fmt::format("bucket {} does not exist at endpoint {}", bucket_, endpoint),
                "create the bucket, or check the repository URL, [s3] endpoint and region");
  }
  std::string region = response.Header("x-amz-bucket-region").value_or(error.region);
  if (region.empty() && !error.endpoint.empty()) region = "(endpoint " + error.endpoint + ")";
  if (response.status == 301 || error.code == "PermanentRedirect" ||
      (error.code == "AuthorizationHeaderMalformed" && !region.empty() &&
       region != location_.region)) {
    throw Error(ErrorCode::kConfig,
                fmt::format("bucket {} is in region {}, not {}: {} on {} was refused (HTTP {} {})",
                            bucket_, region.empty() ? "(not named)" : region, location_.region,
                            what, Describe(), response.status,
                            error.code.empty() ? "PermanentRedirect" : error.code),
                region.empty() || region.starts_with('(')
                    ? "set the bucket's region ([s3] region or AWS_REGION), or check that the "
                      "endpoint is the right one (a redirect from http to https also looks so)"
                    : fmt::format("set region = \"{}\" in [s3] (or AWS_REGION={})", region, region));
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

}  // namespace walstore::s3
