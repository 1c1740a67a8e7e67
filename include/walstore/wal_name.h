// Names of the files PostgreSQL archives, parsed and validated in one place.
//
//   000000010000000A000000FE                  segment  (timeline, log, segment)
//   000000010000000A000000FE.partial          partial segment (promotion, pg_receivewal)
//   00000002.history                          timeline history
//   000000010000000A000000FE.00000028.backup  backup history (with the start offset)
//
// Hex digits must be upper case, as PostgreSQL writes them.  Anything else
// (a '/', "..", wrong length, lower case, other suffixes) is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace walstore {

enum class WalFileKind { kSegment, kPartial, kHistory, kBackupHistory };

struct WalFileName {
  WalFileKind kind = WalFileKind::kSegment;
  uint32_t timeline = 0;
  uint32_t log = 0;            // unused for kHistory
  uint32_t segment = 0;        // unused for kHistory
  uint32_t backup_offset = 0;  // kBackupHistory only
  std::string text;            // the name exactly as given

  // "TTTTTTTTLLLLLLLL": timeline and log, the directory pgBackRest-style
  // archives use to keep directories small.  Empty for kHistory.
  std::string TimelineLogPrefix() const;
  // The absolute segment number for a given segment size (bytes).
  uint64_t SegmentNumber(uint64_t segment_size) const;
  bool operator==(const WalFileName&) const = default;
};

// nullopt when `name` is not a valid WAL file name.
std::optional<WalFileName> ParseWalFileName(std::string_view name);
// Same, but throws Error(kInvalidName) with a message that quotes the name.
WalFileName ParseWalFileNameOrThrow(std::string_view name);

// The segment name for a timeline and absolute segment number.
std::string SegmentFileName(uint32_t timeline, uint64_t segment_number, uint64_t segment_size);

// PostgreSQL's segment-size rule: a power of two from 1 MiB to 1 GiB.
bool IsValidSegmentSize(uint64_t bytes);

}  // namespace walstore
