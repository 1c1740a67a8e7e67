// A streaming tar reader for the archives BASE_BACKUP sends (ustar, with pax
// extended headers and GNU long names/links for other producers).
//
// Memory is one 512-byte header block plus what pax/GNU headers carry; file
// data flows straight from the source to the caller.  The header checksum of
// every block is checked, so damage is reported (Error kCorrupt) instead of
// extracting garbage.  A stream that ends at a header boundary is complete
// (PostgreSQL 15 sends no end-of-archive blocks); zero blocks also end it.
#pragma once

#include <walstore/stream.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace walstore::backup {

struct TarEntry {
  enum class Type { kFile, kDirectory, kSymlink, kHardLink, kOther };
  Type type = Type::kFile;
  std::string path;         // as stored, without a trailing '/' for directories
  std::string link_target;  // kSymlink, kHardLink
  uint64_t size = 0;        // data bytes (kFile)
  uint32_t mode = 0;        // permission bits
  std::time_t mtime = 0;
  char typeflag = '0';
};

class TarReader : public ReadStream {
 public:
  // `what` names the archive in error messages.
  TarReader(ReadStream& source, std::string what);

  // The next entry; skips whatever of the current entry's data was not read.
  // nullopt at the end of the archive.
  std::optional<TarEntry> Next();

  // Reads the current entry's data; returns 0 at the end of the entry.
  size_t Read(MutableBytes out) override;

  // Bytes consumed from the source so far.
  uint64_t offset() const { return offset_; }

 private:
  bool ReadBlock(uint8_t* block);  // false at a clean end of stream
  void Skip(uint64_t bytes);
  std::string ReadSmallData(uint64_t size);

  ReadStream& source_;
  std::string what_;
  uint64_t remaining_ = 0;  // data bytes of the current entry not yet read
  uint64_t padding_ = 0;    // padding after the current entry's data
  uint64_t offset_ = 0;
  bool ended_ = false;
};

// Parses a tar numeric field (octal, or GNU base-256 when the high bit of
// the first byte is set).  Exposed for tests.
uint64_t ParseTarNumber(const uint8_t* field, size_t size);

}  // namespace walstore::backup
