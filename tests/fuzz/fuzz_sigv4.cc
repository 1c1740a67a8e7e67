// SigV4 canonicalisation (src/lib/storage/s3/sigv4.cc) of arbitrary object
// keys, paths and query strings (WAL names come from PostgreSQL, prefixes and
// continuation tokens from configuration and servers).  Input fields are
// separated by '\n': path, then query name/value fields, and one header value.
// Promises checked: encoding yields only unreserved characters and %XX and
// decodes back to the input; the canonical query does not depend on the
// order of the parameters; the canonical request keeps one line per element.
#include <algorithm>
#include <cctype>

#include "fuzz_util.h"
#include "storage/s3/sigv4.h"

using namespace walstore;

namespace {

void CheckEncoding(std::string_view text, bool keep_slash) {
  const std::string encoded = s3::UriEncode(text, keep_slash);
  std::string decoded;
  for (size_t i = 0; i < encoded.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(encoded[i]);
    if (c == '%') {
      fuzz::Require(i + 2 < encoded.size() && std::isxdigit(encoded[i + 1]) &&
                        std::isxdigit(encoded[i + 2]) && !std::islower(encoded[i + 1]) &&
                        !std::islower(encoded[i + 2]),
                    "%XX with upper-case hex");
      decoded += static_cast<char>(std::stoi(encoded.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      fuzz::Require(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
                        (keep_slash && c == '/'),
                    "only unreserved characters stay");
      decoded += static_cast<char>(c);
    }
  }
  fuzz::Require(decoded == text, "UriEncode decodes back to its input");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput input(data, size);
  s3::SigningRequest request;
  request.method = "GET";
  request.path = "/bucket/" + std::string(input.Field());
  s3::NameValues query;
  for (int i = 0; i < 16 && !input.empty(); ++i) {
    std::string name(input.Field());
    query.emplace_back(std::move(name), std::string(input.Field()));
  }
  request.query = query;
  request.headers = {{"Host", "bucket.s3.example.com"},
                     {"x-amz-date", "20261129T120000Z"},
                     {"x-amz-meta-fuzz", std::string(input.Rest())}};
  request.payload_hash = std::string(s3::kUnsignedPayload);

  CheckEncoding(request.path, true);
  CheckEncoding(request.path, false);
  for (const auto& [name, value] : query) {
    CheckEncoding(name, false);
    CheckEncoding(value, false);
  }
  s3::NameValues reversed(query.rbegin(), query.rend());
  fuzz::Require(s3::CanonicalQuery(reversed) == s3::CanonicalQuery(query),
                "the canonical query does not depend on parameter order");

  const s3::SignResult result =
      s3::Sign(request, {"AKIDFUZZ", "fuzz-secret", ""}, "us-east-1", "s3", "20261129T120000Z");
  fuzz::Require(result.signature.size() == 64, "64 hex digits of signature");
  fuzz::Require(result.signed_headers == "host;x-amz-date;x-amz-meta-fuzz", "signed headers");
  const std::string expected_head = "GET\n" + s3::UriEncode(request.path, true) + "\n" +
                                    s3::CanonicalQuery(query) + "\nhost:";
  fuzz::Require(result.canonical_request.starts_with(expected_head),
                "method, encoded path and query each on their own line");
  return 0;
}
