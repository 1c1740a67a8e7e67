#include "backup/manifest.h"

#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/number.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include <walstore/backup/util.h>

#include "backup/json_integer.h"

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

// Typed members of the manifest's JSON objects: absent is the fallback,
// another type (or a number out of range) is kCorrupt naming the member.
const nlohmann::json* Member(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string StringMember(const nlohmann::json& object, const char* key, std::string fallback,
                         const std::string& what) {
  const nlohmann::json* value = Member(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_string()) Fail(ErrorCode::kCorrupt, "{}: manifest {} is not a string", what, key);
  return value->get<std::string>();
}

template <typename T>
T IntegerMember(const nlohmann::json& object, const char* key, const std::string& what) {
  const nlohmann::json* value = Member(object, key);
  if (value == nullptr) return 0;
  const std::optional<T> integer = JsonInteger<T>(*value);
  if (!integer) {
    Fail(ErrorCode::kCorrupt, "{}: manifest {} is not a number from 0 to {}", what, key,
         std::numeric_limits<T>::max());
  }
  return *integer;
}

// The array member `key` of `object`, each element an object; empty when absent.
const nlohmann::json& ArrayOfObjectsMember(const nlohmann::json& object, const char* key,
                                           const std::string& what) {
  static const nlohmann::json empty = nlohmann::json::array();
  const nlohmann::json* value = Member(object, key);
  if (value == nullptr) return empty;
  if (!value->is_array() ||
      !std::all_of(value->begin(), value->end(), [](const auto& e) { return e.is_object(); })) {
    Fail(ErrorCode::kCorrupt, "{}: manifest {} is not a list of objects", what, key);
  }
  return *value;
}

}  // namespace

BackupManifest ParseManifest(std::string_view text, const std::string& what) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    Fail(ErrorCode::kCorrupt, "{}: backup manifest is not valid JSON", what);
  }
  if (IntegerMember<uint32_t>(doc, "PostgreSQL-Backup-Manifest-Version", what) != 1) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: unsupported backup manifest version", what);
  }
  const std::string checksum = StringMember(doc, "Manifest-Checksum", "", what);
  if (checksum.empty()) {
    Fail(ErrorCode::kCorrupt, "{}: backup manifest has no Manifest-Checksum", what);
  }
  CheckManifestChecksum(text, checksum, what);

  BackupManifest manifest;
  for (const auto& f : ArrayOfObjectsMember(doc, "Files", what)) {
    ManifestFile file;
    if (Member(f, "Path") != nullptr) {
      file.path = StringMember(f, "Path", "", what);
    } else if (Member(f, "Encoded-Path") != nullptr) {
      file.path = HexDecode(StringMember(f, "Encoded-Path", "", what), what);
    } else {
      Fail(ErrorCode::kCorrupt, "{}: manifest file entry without a path", what);
    }
    file.size = IntegerMember<uint64_t>(f, "Size", what);
    file.algorithm = StringMember(f, "Checksum-Algorithm", "", what);
    file.checksum = StringMember(f, "Checksum", "", what);
    manifest.files.push_back(std::move(file));
  }
  for (const auto& w : ArrayOfObjectsMember(doc, "WAL-Ranges", what)) {
    manifest.wal_ranges.push_back(
        {IntegerMember<uint32_t>(w, "Timeline", what),
         ParseLsn(StringMember(w, "Start-LSN", "0/0", what)),
         ParseLsn(StringMember(w, "End-LSN", "0/0", what))});
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
