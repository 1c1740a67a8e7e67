// Checked number parsing: the whole text must be one number that fits the type.
//
// Every number walstore reads from text (the command line, the configuration, PostgreSQL's
// answers, a repository's records, a tar header) goes through these, so that bad text is a
// walstore::Error with the code the caller names (kUsage for an option, kPostgres for a server
// reply, kCorrupt for repository data), never std::invalid_argument / std::out_of_range
// escaping as an "internal error", and never a silently wrapped or truncated value.
#pragma once

#include <walstore/error.h>

#include <charconv>
#include <concepts>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>

namespace walstore {

template <typename T>
concept ParsableNumber = (std::integral<T> && !std::same_as<T, bool>) || std::floating_point<T>;

// `text` as a T: for an integer, digits in `base` (a '-' first only for a signed T; no '+',
// space, "0x" prefix or trailing text) within T's range; for a floating-point T, a finite
// decimal number ("1.5", "-2e3"; no "inf" or "nan").  nullopt for anything else.
template <ParsableNumber T>
std::optional<T> TryParseNumber(std::string_view text, int base = 10) {
  T value{};
  const char* const end = text.data() + text.size();
  std::from_chars_result result;
  if constexpr (std::integral<T>) {
    result = std::from_chars(text.data(), end, value, base);
  } else {
    // from_chars accepts "inf" and "nan" (with a sign too): after the sign, a character that
    // cannot start a finite number refuses them.
    const std::string_view unsigned_part = text.starts_with('-') ? text.substr(1) : text;
    if (unsigned_part.empty() ||
        !(unsigned_part[0] == '.' || (unsigned_part[0] >= '0' && unsigned_part[0] <= '9'))) {
      return std::nullopt;
    }
    result = std::from_chars(text.data(), end, value);
  }
  if (text.empty() || result.ec != std::errc() || result.ptr != end) return std::nullopt;
  return value;
}

// Throws Error(code, "<what> must be <an integer from MIN to MAX | a number>, not \"<text>\"")
// (the text shortened when long).
[[noreturn]] void FailBadNumber(ErrorCode code, std::string_view what, std::string_view text,
                                std::string_view expected);

// TryParseNumber, or FailBadNumber with `code` naming `what` ("--keep-full", "the timeline
// PostgreSQL returned").
template <ParsableNumber T>
T ParseNumber(std::string_view text, ErrorCode code, std::string_view what, int base = 10) {
  if (auto value = TryParseNumber<T>(text, base)) return *value;
  if constexpr (std::integral<T>) {
    FailBadNumber(code, what, text,
                  fmt::format("{} integer from {} to {}", base == 16 ? "a hexadecimal" : "an",
                              std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
  } else {
    FailBadNumber(code, what, text, "a number");
  }
}

}  // namespace walstore
