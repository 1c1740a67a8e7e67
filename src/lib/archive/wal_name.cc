#include <walstore/error.h>
#include <walstore/wal_name.h>

namespace walstore {
namespace {

constexpr size_t kMaxNameLength = 64;  // PostgreSQL's MAX_XFN_CHARS bound

bool IsUpperHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

uint32_t Hex32(std::string_view text) {
  uint32_t value = 0;
  for (char c : text) value = value * 16 + static_cast<uint32_t>(c <= '9' ? c - '0' : c - 'A' + 10);
  return value;
}

bool ParseSegmentPart(std::string_view text, WalFileName& out) {
  if (text.size() != 24 || !IsUpperHex(text)) return false;
  out.timeline = Hex32(text.substr(0, 8));
  out.log = Hex32(text.substr(8, 8));
  out.segment = Hex32(text.substr(16, 8));
  return out.timeline != 0;
}

}  // namespace

std::string WalFileName::TimelineLogPrefix() const {
  if (kind == WalFileKind::kHistory) return {};
  return text.substr(0, 16);
}

uint64_t WalFileName::SegmentNumber(uint64_t segment_size) const {
  const uint64_t per_log = 0x100000000ull / segment_size;
  return static_cast<uint64_t>(log) * per_log + segment;
}

std::optional<WalFileName> ParseWalFileName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return std::nullopt;
  WalFileName out;
  out.text = std::string(name);
  const std::string_view head = name.substr(0, 24);
  const std::string_view rest = name.size() > 24 ? name.substr(24) : std::string_view();
  if (name.size() == 16 && name.substr(8) == ".history" && IsUpperHex(name.substr(0, 8))) {
    out.kind = WalFileKind::kHistory;
    out.timeline = Hex32(name.substr(0, 8));
    return out.timeline != 0 ? std::optional(out) : std::nullopt;
  }
  if (!ParseSegmentPart(head, out)) return std::nullopt;
  if (rest.empty()) {
    out.kind = WalFileKind::kSegment;
  } else if (rest == ".partial") {
    out.kind = WalFileKind::kPartial;
  } else if (rest.size() == 16 && rest[0] == '.' && rest.substr(9) == ".backup" &&
             IsUpperHex(rest.substr(1, 8))) {
    out.kind = WalFileKind::kBackupHistory;
    out.backup_offset = Hex32(rest.substr(1, 8));
  } else {
    return std::nullopt;
  }
  return out;
}

WalFileName ParseWalFileNameOrThrow(std::string_view name) {
  auto parsed = ParseWalFileName(name);
  if (!parsed) {
    std::string shown;
    for (char c : name.substr(0, 80)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    throw Error(ErrorCode::kInvalidName,
                fmt::format("\"{}\" is not a WAL file name", shown),
                "expected a segment (24 upper-case hex digits), TTTTTTTT.history, "
                "<segment>.partial or <segment>.XXXXXXXX.backup");
  }
  return *parsed;
}

std::string SegmentFileName(uint32_t timeline, uint64_t segment_number, uint64_t segment_size) {
  const uint64_t per_log = 0x100000000ull / segment_size;
  return fmt::format("{:08X}{:08X}{:08X}", timeline, segment_number / per_log,
                     segment_number % per_log);
}

bool IsValidSegmentSize(uint64_t bytes) {
  return bytes >= (1u << 20) && bytes <= (1u << 30) && (bytes & (bytes - 1)) == 0;
}

}  // namespace walstore
