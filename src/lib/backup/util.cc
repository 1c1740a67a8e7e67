#include <walstore/backup/util.h>

#include <fmt/format.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace walstore::backup {

namespace fs = std::filesystem;

std::optional<uint64_t> TryParseLsn(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto hi = TryParseNumber<uint32_t>(text.substr(0, slash), 16);
  const auto lo = TryParseNumber<uint32_t>(text.substr(slash + 1), 16);
  if (!hi || !lo) return std::nullopt;
  return (uint64_t{*hi} << 32) | *lo;
}

uint64_t ParseLsn(std::string_view text) {
  if (auto lsn = TryParseLsn(text)) return *lsn;
  Fail(ErrorCode::kUsage, "invalid LSN '{}' (expected e.g. 0/16B3748)", text);
}

std::string FormatLsn(uint64_t lsn) {
  return fmt::format("{:X}/{:X}", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

std::string FormatUtc(std::time_t t, const char* format) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::optional<double> ParseTimestamp(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*[ T]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  size_t pos = static_cast<size_t>(consumed);
  double fraction = 0;
  if (pos < s.size() && s[pos] == '.') {
    size_t end = pos + 1;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
    // "." and digits: a number, 0 when no digit follows.
    fraction = TryParseNumber<double>(std::string_view(s).substr(pos, end - pos)).value_or(0);
    pos = end;
  }
  while (pos < s.size() && s[pos] == ' ') ++pos;
  std::optional<long> offset;  // seconds east of UTC
  if (pos < s.size()) {
    std::string zone = s.substr(pos);
    if (zone == "Z" || zone == "UTC" || zone == "GMT") {
      offset = 0;
    } else if (zone[0] == '+' || zone[0] == '-') {
      std::string digits;
      for (char c : zone.substr(1)) {
        if (c != ':') digits += c;
      }
      if (digits.size() != 2 && digits.size() != 4) return std::nullopt;
      const auto hh = TryParseNumber<unsigned>(std::string_view(digits).substr(0, 2));
      const auto mm = digits.size() == 4 ? TryParseNumber<unsigned>(digits.substr(2)) : 0u;
      if (!hh || !mm) return std::nullopt;
      offset = (zone[0] == '-' ? -1 : 1) * (*hh * 3600L + *mm * 60L);
    } else {
      return std::nullopt;
    }
  }
  std::time_t t;
  if (offset) {
    t = timegm(&tm) - *offset;
  } else {
    tm.tm_isdst = -1;
    t = std::mktime(&tm);
  }
  return static_cast<double>(t) + fraction;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string FormatDuration(double seconds) {
  if (seconds < 0) seconds = 0;
  auto total = static_cast<uint64_t>(std::llround(seconds));
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  if (total < 86400) return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
  return fmt::format("{}d{:02}h", total / 86400, total % 86400 / 3600);
}

std::string ShellQuote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string ConfQuote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

bool IsMissingOrEmptyDir(const std::string& dir) {
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) return true;
  if (ec) FailErrno(ec.value(), fmt::format("could not stat \"{}\"", dir));
  if (status.type() != fs::file_type::directory) return false;
  const fs::directory_iterator first(dir, ec);
  if (ec) FailErrno(ec.value(), fmt::format("could not read directory \"{}\"", dir));
  return first == fs::directory_iterator();
}

bool PathExists(const std::string& path) {
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (ec) FailErrno(ec.value(), fmt::format("could not stat \"{}\"", path));
  return exists;
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) FailErrno(ec.value(), fmt::format("could not make \"{}\" absolute", path));
  return absolute.string();
}

std::optional<std::string> FindProgram(const std::string& name) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path sibling = self.parent_path() / name;
    if (access(sibling.c_str(), X_OK) == 0) return sibling.string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return AbsolutePath(candidate);
  }
  return std::nullopt;
}

double NowSeconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

int WalctlJobs(const Config& config) {
  return WorkerThreads(config.parallel, kDefaultWalctlJobsCap);
}

}  // namespace walstore::backup
