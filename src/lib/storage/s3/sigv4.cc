#include "storage/s3/sigv4.h"

#include <fmt/format.h>
#include <walstore/crypto.h>

#include <algorithm>
#include <map>

#include "http/text.h"

namespace walstore::s3 {
namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Trims the value and collapses runs of spaces into one (SigV4 "Trimall").
std::string TrimAll(std::string_view value) {
  std::string out;
  for (char c : value) {
    const bool space = c == ' ' || c == '\t';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string Hmac(std::string_view key, std::string_view data) {
  const Sha256Digest mac = HmacSha256(AsBytes(key), AsBytes(data));
  return std::string(reinterpret_cast<const char*>(mac.data()), mac.size());
}

}  // namespace

std::string UriEncode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string CanonicalQuery(const NameValues& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out.append(name).append(1, '=').append(value);
  }
  return out;
}

std::string Sha256Hex(Bytes data) { return ToHex(Sha256Of(data)); }

std::string AmzDate(std::time_t time) {
  std::tm tm{};
  gmtime_r(&time, &tm);
  char buffer[17];
  std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &tm);
  return buffer;
}

SignResult Sign(const SigningRequest& request, const Credentials& credentials,
                std::string_view region, std::string_view service, std::string_view amz_date) {
  std::map<std::string, std::string> headers;  // sorted by lower-case name
  for (const auto& [name, value] : request.headers) {
    std::string& joined = headers[http::AsciiLower(name)];
    if (!joined.empty()) joined += ',';
    joined += TrimAll(value);
  }
  SignResult result;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += fmt::format("{}:{}\n", name, value);
    if (!result.signed_headers.empty()) result.signed_headers += ';';
    result.signed_headers += name;
  }
  result.canonical_request =
      fmt::format("{}\n{}\n{}\n{}\n{}\n{}", request.method, UriEncode(request.path, true),
                  CanonicalQuery(request.query), canonical_headers, result.signed_headers,
                  request.payload_hash);

  const std::string_view date = amz_date.substr(0, 8);
  const std::string scope = fmt::format("{}/{}/{}/aws4_request", date, region, service);
  result.string_to_sign = fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", amz_date, scope,
                                      Sha256Hex(AsBytes(result.canonical_request)));

  std::string key = Hmac("AWS4" + credentials.secret_access_key, date);
  key = Hmac(key, region);
  key = Hmac(key, service);
  key = Hmac(key, "aws4_request");
  const std::string mac = Hmac(key, result.string_to_sign);
  result.signature = ToHex(AsBytes(mac));
  result.authorization =
      fmt::format("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
                  credentials.access_key_id, scope, result.signed_headers, result.signature);
  return result;
}

}  // namespace walstore::s3
