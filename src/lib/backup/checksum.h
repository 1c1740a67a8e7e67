// File checksums as PostgreSQL's backup manifest writes them: CRC32C (the
// default), SHA224, SHA256, SHA384, SHA512, or NONE.  The manifest prints a
// checksum as lower-case hex of the checksum's bytes in memory order (for
// CRC32C that is the little-endian uint32).
#pragma once

#include <walstore/stream.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace walstore::backup {

// CRC-32C (Castagnoli), as PostgreSQL's pg_crc32c: init ~0, final ~crc.
// Uses SSE4.2 when the CPU has it.
uint32_t Crc32cExtend(uint32_t crc, const uint8_t* data, size_t size);
inline uint32_t Crc32c(const uint8_t* data, size_t size) {
  return ~Crc32cExtend(0xFFFFFFFFu, data, size);
}

class FileChecksum {
 public:
  virtual ~FileChecksum() = default;
  virtual void Update(Bytes data) = 0;
  // Lower-case hex, as in the manifest.  Call once.
  virtual std::string FinalHex() = 0;
};

// `algorithm` as in the manifest's "Checksum-Algorithm" (case-insensitive).
// nullptr for "NONE" or "".  Throws Error(kUnsupportedFormat) for others.
std::unique_ptr<FileChecksum> MakeFileChecksum(std::string_view algorithm);

}  // namespace walstore::backup
