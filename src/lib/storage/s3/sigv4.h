// AWS Signature Version 4 (header-based authentication), as S3 uses it.
//
// Sign() builds the canonical request, the string to sign and the
// Authorization header value.  S3 rules apply: the path is URI-encoded once
// and never normalised ("a//b" and "./" stay as they are), and the payload
// hash is either the hex SHA-256 of the body or "UNSIGNED-PAYLOAD".  The
// caller sends x-amz-content-sha256 with the same payload hash (S3 requires
// it) and signs x-amz-security-token when using temporary credentials.
//
// Internal to the S3 backend; pure functions, no I/O.
#pragma once

#include <walstore/stream.h>

#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace walstore::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;  // never log
  std::string session_token;      // "" without temporary credentials; never log
};

using NameValues = std::vector<std::pair<std::string, std::string>>;

struct SigningRequest {
  std::string method;        // "GET", "PUT", ...
  std::string path;          // absolute and not encoded, e.g. "/bucket/key name"
  NameValues query;          // not encoded; order does not matter
  NameValues headers;        // as sent; must include host and x-amz-date; a name
                             // given several times has its values joined by ','
  std::string payload_hash;  // hex SHA-256 of the body, or kUnsignedPayload
};

struct SignResult {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // 64 hex digits
  std::string authorization;   // value of the Authorization header
};

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// `amz_date` is the request time as in x-amz-date ("20150830T123600Z");
// `service` is "s3" for S3.
SignResult Sign(const SigningRequest& request, const Credentials& credentials,
                std::string_view region, std::string_view service, std::string_view amz_date);

// RFC 3986 percent-encoding as SigV4 defines it: unreserved characters
// (A-Z a-z 0-9 - . _ ~) stay, every other byte becomes %XX (upper-case hex);
// '/' stays when `keep_slash`.
std::string UriEncode(std::string_view text, bool keep_slash);

// The canonical query string: encoded name=value pairs sorted by name, then
// value, joined by '&'.  Also the query string the request is sent with.
std::string CanonicalQuery(const NameValues& query);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(Bytes data);

// "20150830T123600Z" for the given time (UTC).
std::string AmzDate(std::time_t time);

}  // namespace walstore::s3
