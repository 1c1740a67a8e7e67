// Facts read from PostgreSQL files: the WAL long page header at the start of
// every segment, and the system identifier in global/pg_control.
#pragma once

#include <walstore/stream.h>
#include <walstore/wal_name.h>

#include <cstdint>
#include <optional>
#include <string>

namespace walstore {

// XLogLongPageHeaderData (PostgreSQL 15: magic 0xD110).  Bytes 0..39.
struct WalLongHeader {
  uint16_t magic = 0;
  uint16_t info = 0;
  uint32_t timeline = 0;
  uint64_t page_address = 0;  // LSN of the segment start
  uint64_t system_id = 0;
  uint32_t segment_size = 0;
  uint32_t block_size = 0;
};
inline constexpr size_t kWalLongHeaderSize = 40;
inline constexpr uint16_t kXlogPageMagicPg15 = 0xD110;
inline constexpr uint16_t kXlpLongHeader = 0x0002;

// Parses the first kWalLongHeaderSize bytes of a segment; nullopt when they
// are not a long page header (bad info flag, impossible sizes).  Accepts
// any magic from PostgreSQL 9.x on (0xD0xx/0xD1xx) so newer servers work.
std::optional<WalLongHeader> ParseWalLongHeader(Bytes first_bytes);
// Reads and parses the long page header at the start of the open file `fd`;
// nullopt when the file is shorter, unreadable or does not start with one.
std::optional<WalLongHeader> ReadWalLongHeader(int fd);

// Checks that a segment file's header matches its name and is from a sane
// PostgreSQL: throws kNotWal explaining the mismatch (the name, the timeline
// and segment the header says, the segment size).  The header's timeline
// may be older than the name's, never newer: the first segment of a timeline
// that began inside it starts with the parent timeline's pages.
void CheckSegmentHeader(const WalLongHeader& header, const WalFileName& name,
                        uint64_t file_size, const std::string& path);
// The same check as a value: what does not match, or nullopt.
std::optional<std::string> SegmentHeaderMismatch(const WalLongHeader& header,
                                                 const WalFileName& name, uint64_t file_size);

// Why a segment or .partial file that starts with `head` and has `file_size`
// bytes is not `name` of cluster `system_id` (no long page header, another
// cluster, a newer timeline, another segment, a wrong size), or nullopt.
std::optional<std::string> WalContentMismatch(Bytes head, uint64_t file_size,
                                              const WalFileName& name, uint64_t system_id);

// Reads the system identifier (the first 8 bytes of ControlFileData) from
// <data_dir>/global/pg_control; nullopt when the file does not exist.
std::optional<uint64_t> ReadControlFileSystemId(const std::string& data_dir);

}  // namespace walstore
