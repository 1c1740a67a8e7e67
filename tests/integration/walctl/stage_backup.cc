// Test helper: stores a hand-made base backup in a repository through the
// library, as walctl backup would store one, so that the real walctl restore
// can be run against tars no PostgreSQL would send (restore_hostile.sh).
//
//   stage_backup REPO_URL SYSTEM_ID LABEL MANIFEST_FILE BASE_TAR [OID=PATH=TAR ...]
//
// Writes the tars and the manifest (lz4, not encrypted), the WAL segment the
// backup needs (placeholder content: restore only checks that it exists) and
// the backup record.  Backups staged into one repository share the segment.
#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/storage.h>
#include <walstore/wal_name.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include <walstore/backup/repository.h>

using namespace walstore;
using namespace walstore::backup;

namespace {

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: stage_backup REPO_URL SYSTEM_ID LABEL MANIFEST BASE_TAR [OID=PATH=TAR ...]\n");
    return 2;
  }
  try {
    Config config;
    config.repo_url = argv[1];
    config.compression = CompressionSpec{Codec::kLz4, 0};
    const uint64_t system_id = std::stoull(argv[2]);
    const std::string label = argv[3];
    auto storage = OpenStorage(config);

    constexpr uint64_t kSegment = 16u << 20;
    BackupRecord record;
    record.label = label;
    record.complete = true;
    record.system_id = system_id;
    record.pg_version = 150004;
    record.timeline = record.stop_timeline = 1;
    record.segment_size = kSegment;
    record.start_lsn = 2 * kSegment + 40;
    record.stop_lsn = 2 * kSegment + 4096;
    record.start_time = 1795000000;
    record.stop_time = 1795000060;
    record.wal_start = record.wal_stop = SegmentFileName(1, 2, kSegment);
    record.manifest_checksums = "NONE";
    record.compression = "lz4";

    auto store = [&](const std::string& name, const std::string& data) {
      BackupObject object =
          WriteSmallObject(*storage, config, BackupObjectKey(system_id, label, name), data);
      object.name = name;
      return object;
    };
    record.manifest = store(kManifestName, ReadFileOrDie(argv[4]));
    record.archives.push_back(store("base.tar", ReadFileOrDie(argv[5])));
    for (int i = 6; i < argc; ++i) {
      const std::string spec = argv[i];
      const size_t first = spec.find('='), second = spec.find('=', first + 1);
      BackupObject tablespace =
          store(spec.substr(0, first) + ".tar", ReadFileOrDie(spec.substr(second + 1)));
      tablespace.tablespace_oid = static_cast<uint32_t>(std::stoul(spec.substr(0, first)));
      tablespace.tablespace_path = spec.substr(first + 1, second - first - 1);
      record.archives.push_back(tablespace);
    }
    const std::string wal_key = WalObjectKey(system_id, ParseWalFileNameOrThrow(record.wal_start));
    if (!storage->Stat(wal_key)) WriteSmallObject(*storage, config, wal_key, "placeholder");
    WriteSmallObject(*storage, config, BackupObjectKey(system_id, label, kRecordName),
                     ToJson(record).dump(2) + "\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stage_backup: %s\n", e.what());
    return 1;
  }
}
