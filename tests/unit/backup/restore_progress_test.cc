// Tests for the progress RunRestore (src/lib/backup/restore.cc) reports
// through RestoreOptions::progress: a backup staged in a memory repository
// is restored, and the callback must see growing byte counts and end with
// one finished call at exactly the manifest's size.
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/backup/base_backup.h>
#include <walstore/backup/restore.h>
#include <walstore/backup/util.h>
#include <walstore/config.h>
#include <walstore/crypto.h>
#include <walstore/wal_name.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/memory/memory_storage.h"
#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

constexpr uint64_t kSysId = 7333333333333333333ull;

using testing::ManifestFor;

// A backup "b1" of three files (base/16384: 2.5 MB) in `storage`;
// returns the bytes of its files.
uint64_t StageBackup(Storage& storage, const Config& config) {
  const std::string big(2'500'000, 'x');
  testing::TarBuilder tar;
  tar.Add("PG_VERSION", "15\n");
  tar.Add("base/", "", '5');
  tar.Add("base/16384", big);
  tar.Add("global_file", std::string(1000, 'g'));
  const std::string manifest =
      ManifestFor({{"PG_VERSION", 3}, {"base/16384", big.size()}, {"global_file", 1000}});
  BackupRecord record = testing::MakeBackup("b1", 1795000000, 3);
  record.system_id = kSysId;
  auto store = [&](const std::string& name, const std::string& data) {
    BackupObject object =
        WriteSmallObject(storage, config, BackupObjectKey(kSysId, "b1", name), data);
    object.name = name;
    return object;
  };
  record.manifest = store(kManifestName, manifest);
  record.archives.push_back(store("base.tar", tar.out));
  for (const auto& name : RequiredWal(record)) {
    WriteSmallObject(storage, config, WalObjectKey(kSysId, ParseWalFileNameOrThrow(name)),
                     "placeholder");
  }
  WriteSmallObject(storage, config, BackupObjectKey(kSysId, "b1", kRecordName),
                   ToJson(record).dump());
  return 3 + big.size() + 1000;
}

size_t ThreadsNow() {
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                           std::filesystem::directory_iterator()));
}

TEST_SUITE("backup_restore_progress") {
  TEST_CASE("restore decodes with RestoreOptions::jobs, whatever parallel says (resolved once)") {
    ResetMemoryStorage("restore-jobs");
    auto storage = OpenMemoryStorage("restore-jobs");
    Config config;
    config.repo_url = "memory://restore-jobs";
    config.chunk_size = 64 * 1024;  // the archive has dozens of records: room for every lane
    StageBackup(*storage, config);
    // The most threads alive while the archive is extracted (the decoder's
    // lanes, its hasher and the read-ahead thread are all running then).
    auto restore_with = [&](int parallel, int jobs) {
      config.parallel = parallel;
      test::TempDir dir;
      RestoreOptions options;
      options.backup = "b1";
      options.target_dir = dir / "data";
      options.restore_command = "false";
      options.jobs = jobs;
      size_t most = 0;
      options.progress = [&](const Progress&) { most = std::max(most, ThreadsNow()); };
      const RestoreResult result = RunRestore(*storage, config, kSysId, options);
      // The count logged ("decoding with N jobs"); 0 (what walctl passes):
      // resolved from the configuration, once.
      CHECK(result.jobs == (jobs > 0 ? jobs : WalctlJobs(config)));
      return most;
    };
    const size_t one = restore_with(/*parallel=*/5, /*jobs=*/1);
    const size_t four = restore_with(/*parallel=*/1, /*jobs=*/4);
    CHECK(one > 0);
    CHECK(four == one + 4);  // four decoder lanes; a serial decoder has none
    CHECK(restore_with(/*parallel=*/3, /*jobs=*/0) == one + 3);  // walctl restore --jobs 3
    ResetMemoryStorage("restore-jobs");
  }

  TEST_CASE("restore reports growing byte counts and one final call at 100 %") {
    ResetMemoryStorage("restore-progress");
    auto storage = OpenMemoryStorage("restore-progress");
    Config config;
    config.repo_url = "memory://restore-progress";
    // Three files, one of them several read buffers (1 MiB) long.
    const uint64_t total = StageBackup(*storage, config);

    test::TempDir dir;
    RestoreOptions options;
    options.backup = "b1";
    options.target_dir = dir / "data";
    options.restore_command = "false";
    std::vector<Progress> calls;
    options.progress = [&](const Progress& p) { calls.push_back(p); };
    RestoreResult result = RunRestore(*storage, config, kSysId, options);

    CHECK(result.bytes == total);
    REQUIRE(calls.size() >= 4);  // the big file alone takes three reads
    for (size_t i = 0; i < calls.size(); ++i) {
      CHECK(calls[i].total_bytes == total);
      if (i > 0) CHECK(calls[i].done_bytes >= calls[i - 1].done_bytes);
      CHECK(calls[i].finished == (i + 1 == calls.size()));
    }
    CHECK(calls.front().done_bytes > 0);
    CHECK(calls.front().done_bytes < total);
    CHECK(calls.back().done_bytes == total);
    ResetMemoryStorage("restore-progress");
  }
}

}  // namespace
}  // namespace walstore::backup
