#include "backup/manifest.h"

#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/number.h>

#include <nlohmann/json.hpp>

#include <walstore/backup/util.h>

namespace walstore::backup {
namespace {

std::string HexDecode(const std::string& hex, const std::string& what) {
  if (hex.size() % 2 != 0) Fail(ErrorCode::kCorrupt, "{}: bad Encoded-Path", what);
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out += static_cast<char>(ParseNumber<uint8_t>(std::string_view(hex).substr(i, 2),
                                                  ErrorCode::kCorrupt, what + ": Encoded-Path", 16));
  }
  return out;
}

void CheckManifestChecksum(std::string_view text, const std::string& expected,
                           const std::string& what) {
  size_t last = text.rfind('\n');
  size_t penultimate = last == std::string_view::npos || last == 0 ? std::string_view::npos
                                                                   : text.rfind('\n', last - 1);
  if (penultimate == std::string_view::npos) {
    Fail(ErrorCode::kCorrupt, "{}: manifest too short for a checksum", what);
  }
  std::string actual = ToHex(Sha256Of(AsBytes(text.substr(0, penultimate + 1))));
  if (actual != expected) {
    Fail(ErrorCode::kCorrupt, "{}: manifest checksum mismatch (manifest says {}, content is {})",
         what, expected, actual);
  }
}

}  // namespace

BackupManifest ParseManifest(std::string_view text, const std::string& what) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    Fail(ErrorCode::kCorrupt, "{}: backup manifest is not valid JSON", what);
  }
  if (doc.value("PostgreSQL-Backup-Manifest-Version", 0) != 1) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: unsupported backup manifest version", what);
  }
  if (!doc.contains("Manifest-Checksum") || !doc["Manifest-Checksum"].is_string()) {
    Fail(ErrorCode::kCorrupt, "{}: backup manifest has no Manifest-Checksum", what);
  }
  CheckManifestChecksum(text, doc["Manifest-Checksum"].get<std::string>(), what);

  BackupManifest manifest;
  for (const auto& f : doc.value("Files", nlohmann::json::array())) {
    ManifestFile file;
    if (f.contains("Path")) {
      file.path = f["Path"].get<std::string>();
    } else if (f.contains("Encoded-Path")) {
      file.path = HexDecode(f["Encoded-Path"].get<std::string>(), what);
    } else {
      Fail(ErrorCode::kCorrupt, "{}: manifest file entry without a path", what);
    }
    file.size = f.value("Size", uint64_t{0});
    file.algorithm = f.value("Checksum-Algorithm", std::string());
    file.checksum = f.value("Checksum", std::string());
    manifest.files.push_back(std::move(file));
  }
  for (const auto& w : doc.value("WAL-Ranges", nlohmann::json::array())) {
    manifest.wal_ranges.push_back({w.value("Timeline", 0u),
                                   ParseLsn(w.value("Start-LSN", std::string("0/0"))),
                                   ParseLsn(w.value("End-LSN", std::string("0/0")))});
  }
  return manifest;
}

ManifestChecker::ManifestChecker(const BackupManifest& manifest)
    : manifest_(manifest), seen_(manifest.files.size(), false) {
  for (size_t i = 0; i < manifest.files.size(); ++i) index_[manifest.files[i].path] = i;
}

const ManifestFile* ManifestChecker::Find(const std::string& path) const {
  auto it = index_.find(path);
  return it == index_.end() ? nullptr : &manifest_.files[it->second];
}

void ManifestChecker::Check(const ManifestFile& entry, uint64_t size,
                            const std::string& checksum_hex) {
  if (size != entry.size) {
    Fail(ErrorCode::kCorrupt, "{}: size {} differs from the backup manifest's {}", entry.path, size,
         entry.size);
  }
  if (!entry.algorithm.empty() && checksum_hex != entry.checksum) {
    Fail(ErrorCode::kCorrupt, "{}: {} checksum {} differs from the backup manifest's {}",
         entry.path, entry.algorithm, checksum_hex, entry.checksum);
  }
  size_t i = index_.at(entry.path);
  if (!seen_[i]) ++checked_;
  seen_[i] = true;
}

std::vector<std::string> ManifestChecker::Unseen() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < seen_.size(); ++i) {
    if (!seen_[i]) out.push_back(manifest_.files[i].path);
  }
  return out;
}

}  // namespace walstore::backup
