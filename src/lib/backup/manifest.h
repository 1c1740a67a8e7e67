// PostgreSQL's backup manifest (version 1, as BASE_BACKUP ... MANIFEST 'yes'
// sends it): the files of a base backup with sizes and checksums, the WAL
// ranges it needs, and a SHA-256 of the manifest itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace walstore::backup {

struct ManifestFile {
  std::string path;  // relative to the data directory ("pg_tblspc/<oid>/..." for tablespaces)
  uint64_t size = 0;
  std::string algorithm;  // "CRC32C", "SHA256", ... or "" (none)
  std::string checksum;   // lower-case hex
};

struct ManifestWalRange {
  uint32_t timeline = 0;
  uint64_t start_lsn = 0;
  uint64_t end_lsn = 0;
};

struct BackupManifest {
  std::vector<ManifestFile> files;
  std::vector<ManifestWalRange> wal_ranges;
};

// Parses a manifest and checks its "Manifest-Checksum" (SHA-256 of the text
// up to the newline before that line).  Throws Error(kCorrupt) naming `what`
// (kUnsupportedFormat for a manifest version other than 1).
BackupManifest ParseManifest(std::string_view text, const std::string& what);

// Tracks which manifest files were seen while restoring.
class ManifestChecker {
 public:
  explicit ManifestChecker(const BackupManifest& manifest);
  // The manifest entry for `path`, or nullptr when the manifest has none.
  const ManifestFile* Find(const std::string& path) const;
  // Checks a restored file against its entry and marks it seen.  Throws
  // Error(kCorrupt) with the path, expected and actual size / checksum.
  void Check(const ManifestFile& entry, uint64_t size, const std::string& checksum_hex);
  // Manifest files not checked yet.
  std::vector<std::string> Unseen() const;
  size_t checked() const { return checked_; }

 private:
  const BackupManifest& manifest_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<bool> seen_;
  size_t checked_ = 0;
};

}  // namespace walstore::backup
