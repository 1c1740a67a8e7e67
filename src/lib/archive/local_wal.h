// Internal: a local WAL file walpush is about to archive, opened and checked,
// shared by PushWalFile (archive.cc) and the push-ahead worker
// (push_ahead.cc).
#pragma once

#include <sys/stat.h>
#include <walstore/archive.h>
#include <walstore/wal_file.h>

#include <array>
#include <cstdint>
#include <string>

#include "common/file_util.h"

namespace walstore {

// An open local file to store: its stat at open and first bytes, read before
// any encoding so that a bad file is refused before anything is written.
struct LocalFile {
  explicit LocalFile(const std::string& path);
  // Throws kLocalIo when the file is no longer what was opened (size, mtime
  // or ctime changed): it was written while being read.
  void CheckUnchanged() const;

  std::string path;
  FileReader reader;
  struct stat stat_at_open {};
  // statx birth time in ns; 0 where the file system does not record one.
  // With inode, size and timestamps it tells a file from one recreated under
  // the same name (an inode number is often reused at once).
  int64_t birth_time_ns = 0;
  uint64_t size = 0;
  std::array<uint8_t, kWalLongHeaderSize> head{};
  size_t head_size = 0;
};

// %p opened and validated: the name, and for segments and .partial files
// the size and long page header; the system id learnt from the header (or
// config / pg_control for files without one), and the repository key.
struct WalFileToPush {
  WalFileToPush(const Config& config, const std::string& path);

  WalFileName name;  // parsed first: a bad name is refused before any open
  LocalFile file;
  uint64_t system_id = 0;
  std::string key;
};

// Encodes and publishes `wal` with test before overwrite (see PushWalFile).
// May be called once per repository with the same `wal`: each call reads
// the open file from its start, and each checks that it is still the file
// opened (stat at open), so every repository gets the same file.
PushResult PushOpenedWalFile(Storage& storage, const Config& config, WalFileToPush& wal);

}  // namespace walstore
