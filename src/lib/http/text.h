// Small text helpers shared by the HTTP client and the S3 backend (header
// names, credential files).  ASCII only.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace walstore::http {

inline std::string AsciiLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// `text` without leading and trailing white space.
inline std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace walstore::http
