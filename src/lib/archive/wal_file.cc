#include <fcntl.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/wal_file.h>

#include <cerrno>
#include <cstring>

#include "common/endian.h"

namespace walstore {
std::optional<WalLongHeader> ParseWalLongHeader(Bytes b) {
  if (b.size() < kWalLongHeaderSize) return std::nullopt;
  // XLogPageHeaderData: magic(2) info(2) tli(4) pageaddr(8) rem_len(4) pad(4);
  // then xlp_sysid(8) xlp_seg_size(4) xlp_xlog_blcksz(4).
  WalLongHeader h;
  h.magic = static_cast<uint16_t>(GetLe(&b[0], 2));
  h.info = static_cast<uint16_t>(GetLe(&b[2], 2));
  h.timeline = static_cast<uint32_t>(GetLe(&b[4], 4));
  h.page_address = GetLe(&b[8], 8);
  h.system_id = GetLe(&b[24], 8);
  h.segment_size = static_cast<uint32_t>(GetLe(&b[32], 4));
  h.block_size = static_cast<uint32_t>(GetLe(&b[36], 4));
  const bool plausible_magic = (h.magic & 0xFF00) == 0xD000 || (h.magic & 0xFF00) == 0xD100;
  if (!plausible_magic || (h.info & kXlpLongHeader) == 0 || h.timeline == 0 ||
      !IsValidSegmentSize(h.segment_size) || h.block_size < 1024 || h.block_size > 32768 ||
      (h.block_size & (h.block_size - 1)) != 0) {
    return std::nullopt;
  }
  return h;
}

std::optional<WalLongHeader> ReadWalLongHeader(int fd) {
  std::array<uint8_t, kWalLongHeaderSize> head{};
  if (pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) {
    return std::nullopt;
  }
  return ParseWalLongHeader(head);
}

std::optional<std::string> SegmentHeaderMismatch(const WalLongHeader& h, const WalFileName& name,
                                                 uint64_t file_size) {
  const std::string header_segment =
      SegmentFileName(h.timeline, h.page_address / h.segment_size, h.segment_size);
  // The header's timeline may be older than the name's: when a new timeline
  // starts inside a segment (promotion, a PITR target), PostgreSQL begins the
  // new timeline's file with a copy of the old one's pages, headers included.
  if (h.timeline > name.timeline || h.page_address % h.segment_size != 0 ||
      header_segment.substr(8) != name.text.substr(8, 16)) {
    return fmt::format("the WAL header describes segment {} (timeline {}), not {}",
                       header_segment, h.timeline, name.text.substr(0, 24));
  }
  if (name.kind == WalFileKind::kSegment && file_size != h.segment_size) {
    return fmt::format("{} bytes, but the cluster's segment size is {} bytes", file_size,
                       h.segment_size);
  }
  if (name.kind == WalFileKind::kPartial && file_size > h.segment_size) {
    return fmt::format("{} bytes, larger than the segment size {}", file_size, h.segment_size);
  }
  return std::nullopt;
}

std::optional<std::string> WalContentMismatch(Bytes head, uint64_t file_size,
                                              const WalFileName& name, uint64_t system_id) {
  const auto header = ParseWalLongHeader(head);
  if (!header) return "no valid WAL long page header";
  if (header->system_id != system_id) {
    return fmt::format("WAL of cluster {}, not {}", header->system_id, system_id);
  }
  return SegmentHeaderMismatch(*header, name, file_size);
}

void CheckSegmentHeader(const WalLongHeader& h, const WalFileName& name, uint64_t file_size,
                        const std::string& path) {
  if (auto mismatch = SegmentHeaderMismatch(h, name, file_size)) {
    Fail(ErrorCode::kNotWal, "{}: {}", path, *mismatch);
  }
}

std::optional<uint64_t> ReadControlFileSystemId(const std::string& data_dir) {
  const std::string path = data_dir + "/global/pg_control";
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    FailErrno(errno, fmt::format("could not open \"{}\"", path));
  }
  uint8_t buffer[8];
  const ssize_t n = pread(fd, buffer, sizeof buffer, 0);
  const int err = errno;
  close(fd);
  if (n < 0) FailErrno(err, fmt::format("could not read \"{}\"", path));
  if (n != sizeof buffer) Fail(ErrorCode::kLocalIo, "\"{}\" is too short to be pg_control", path);
  return GetLe(buffer, 8);
}

}  // namespace walstore
