// Builders shared by the backup unit tests.
#pragma once

#include <fmt/format.h>
#include <walstore/crypto.h>
#include <walstore/wal_name.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <walstore/backup/repository.h>

namespace walstore::backup::testing {

inline constexpr uint64_t kSeg = 16u << 20;

// A complete backup record on `timeline` starting in segment `start_seg`.
inline BackupRecord MakeBackup(const std::string& label, double start_time, uint64_t start_seg,
                               uint32_t timeline = 1, bool complete = true) {
  BackupRecord b;
  b.label = label;
  b.complete = complete;
  b.system_id = 42;
  b.timeline = b.stop_timeline = timeline;
  b.segment_size = kSeg;
  b.start_lsn = start_seg * kSeg + 40;
  b.stop_lsn = (start_seg + 1) * kSeg - 100;
  b.start_time = start_time;
  b.stop_time = start_time + 60;
  b.wal_start = SegmentFileName(timeline, start_seg, kSeg);
  b.wal_stop = SegmentFileName(timeline, b.stop_segno(), kSeg);
  return b;
}

// A diff or incr compared with `reference` (its chain: the reference's and it).
inline BackupRecord MakeDeltaOn(const BackupRecord& reference, const std::string& label,
                                double start_time, uint64_t start_seg, BackupType type) {
  BackupRecord b = MakeBackup(label, start_time, start_seg);
  b.type = type;
  b.reference = reference.label;
  b.chain = reference.chain;
  b.chain.push_back(reference.label);
  b.reference_blockmap_sha256 = reference.blockmap.sha256;
  b.reference_start_lsn = reference.start_lsn;
  b.blockmap.name = kBlockMapName;
  b.blockmap.sha256 = std::string(63, '0') + static_cast<char>('a' + start_seg % 6);
  return b;
}

// A backup manifest listing `files` (path, size) without checksums, as
// MANIFEST_CHECKSUMS NONE makes it.
inline std::string ManifestFor(const std::vector<std::pair<std::string, size_t>>& files) {
  std::string list;
  for (const auto& [path, size] : files) {
    if (!list.empty()) list += ",\n";
    list += fmt::format("{{ \"Path\": \"{}\", \"Size\": {}, \"Last-Modified\": "
                        "\"2026-11-21 10:00:00 GMT\" }}",
                        path, size);
  }
  std::string body = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n" + list +
                     "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", "
                     "\"End-LSN\": \"0/3000100\" }\n],\n";
  return body + "\"Manifest-Checksum\": \"" + ToHex(Sha256Of(AsBytes(body))) + "\"}\n";
}

inline WalObject Wal(const std::string& name) {
  WalObject w;
  w.name = ParseWalFileNameOrThrow(name);
  w.key = "42/wal/" + name;
  return w;
}

inline WalObject Seg(uint32_t timeline, uint64_t segno) {
  return Wal(SegmentFileName(timeline, segno, kSeg));
}

// A minimal ustar archive writer (512-byte blocks).
class TarBuilder {
 public:
  void Add(const std::string& name, const std::string& data, char type = '0',
           const std::string& link = "", const std::string& prefix = "") {
    char h[512] = {};
    std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
    std::snprintf(h + 100, 8, "%07o", type == '5' ? 0700 : 0600);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011o", static_cast<unsigned>(data.size()));
    std::snprintf(h + 136, 12, "%011o", 0);
    h[156] = type;
    std::memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memcpy(h + 345, prefix.data(), std::min<size_t>(prefix.size(), 155));
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out.append(h, 512);
    out += data;
    out.append((512 - data.size() % 512) % 512, '\0');
  }
  void AddPax(const std::string& record_key, const std::string& value) {
    std::string body = " " + record_key + "=" + value + "\n";
    size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len) ++len;
    Add("PaxHeader", std::to_string(len) + body, 'x');
  }
  std::string out;
};

}  // namespace walstore::backup::testing
