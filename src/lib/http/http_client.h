// A small HTTP/1.1 client over libcurl for the S3 backend.
//
// One Client owns one CURL easy handle, so sequential requests through it
// reuse one connection (keep-alive, TLS session).  Request bodies are pulled
// from a ReadStream and response bodies are either collected (Perform) or
// pulled piece by piece (Start + ReadBody), so memory stays bounded whatever
// the object size.
//
// A Client makes exactly one attempt per call; retrying is the caller's job
// (walstore::WithRetry).  Transport failures throw Error(kNetwork), which the
// retry helper retries, with a message saying what to fix: the host that did
// not resolve, or the TLS problem and the ca_bundle / verify_tls settings.
// HTTP status codes are never errors here: the caller interprets them.
//
// Not thread-safe: one thread uses a Client at a time.
#pragma once

#include <walstore/stream.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace walstore::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ClientOptions {
  double connect_timeout_seconds = 10;
  // A transfer slower than 1 KiB/s for this long is aborted (kNetwork).
  double low_speed_seconds = 30;
  // Whom to trust.  ca_bundle: a PEM file; ca_path: a directory of CA
  // certificates named by subject hash (openssl rehash), from which OpenSSL
  // reads only the CAs a chain needs.  Neither set: libcurl's system CA
  // directory when it has one (parsing the whole system bundle costs OpenSSL
  // 3 about 18 ms per process), and the system bundle if a certificate does
  // not verify against the directory (then for the rest of the process).
  std::string ca_bundle;
  std::string ca_path;
  bool verify_tls = true;
  // Bodies read into memory (Perform(), ReadRestOfBody(): errors, listings,
  // XML replies) larger than this throw kStorage instead of filling memory.
  // Streamed bodies (ReadBody()) have no limit.
  size_t max_collected_body = 16 << 20;
};

struct Request {
  std::string method;    // "GET", "HEAD", "PUT", "POST", "DELETE"
  std::string url;       // already percent-encoded
  Headers headers = {};  // sent as given (a "Host" here replaces curl's own)
  // The request body: body_size bytes pulled from `body`, which must outlive
  // the call.  nullptr = no body.
  ReadStream* body = nullptr;
  uint64_t body_size = 0;
};

struct Response {
  long status = 0;
  Headers headers;   // names in lower case, in the order received
  std::string body;  // filled by Perform(); empty after Start()

  // The value of the first header called `name` (lower case), if any.
  std::optional<std::string> Header(std::string_view name) const;
};

class Client {
 public:
  explicit Client(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends the request and returns the response with its whole body (meant
  // for small bodies: errors, listings, multipart replies); throws kStorage
  // for a body over ClientOptions::max_collected_body.
  Response Perform(const Request& request);

  // Sends the request and returns once the status line and headers arrived.
  // The body is then read with ReadBody() until it returns 0; starting
  // another request first abandons this one (and its connection).
  Response Start(const Request& request);
  // Reads up to out.size() body bytes; 0 at the end of the body.  Throws
  // kNetwork when the transfer fails midway.
  size_t ReadBody(MutableBytes out);
  // Reads the rest of the body into memory (an error reply after Start()),
  // within ClientOptions::max_collected_body like Perform().
  std::string ReadRestOfBody();

  // Like Perform() but never throws on a transport failure: returns nullopt
  // (and logs nothing).  For best-effort cleanup in destructors.
  std::optional<Response> PerformNoThrow(const Request& request) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace walstore::http
