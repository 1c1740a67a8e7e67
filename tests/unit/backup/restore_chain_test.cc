// Tests for restoring and verifying a chain (src/lib/backup/restore.cc): a
// full backup and an incr staged in a memory repository, restored by
// RunRestore and verified by VerifyBackupContents.  The reassembled files are
// checked against the restored backup's own block map, so wrong data fails
// the restore even when the manifest carries no checksums (MANIFEST_CHECKSUMS
// NONE); verify --full compares the delta's blocks with the block maps.
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/backup/base_backup.h>
#include <walstore/backup/inventory.h>
#include <walstore/backup/restore.h>
#include <walstore/backup/verify.h>
#include <walstore/config.h>
#include <walstore/wal_name.h>

#include <nlohmann/json.hpp>
#include <string>

#include "backup/delta.h"
#include "backup/tar_reader.h"
#include "storage/memory/memory_storage.h"
#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

constexpr uint64_t kSysId = 7344444444444444444ull;
const std::string kBlockA(kDeltaBlockSize, 'a');
const std::string kBlockB(kDeltaBlockSize, 'b');
const std::string kBlockC(kDeltaBlockSize, 'c');

struct ChainRepo {
  ChainRepo() {
    ResetMemoryStorage("restore-chain");
    storage = OpenMemoryStorage("restore-chain");
    config.repo_url = "memory://restore-chain";
  }
  ~ChainRepo() { ResetMemoryStorage("restore-chain"); }

  BackupObject Put(const std::string& label, const std::string& name, const std::string& data) {
    BackupObject object =
        WriteSmallObject(*storage, config, BackupObjectKey(kSysId, label, name), data);
    object.name = name;
    return object;
  }
  // Scans `tar` (against `reference`, or as a full backup) and stores the
  // backup: its tar or delta (`tamper` may change the delta first), block
  // map, manifest (no checksums), WAL and record.
  void Store(BackupRecord& record, const testing::TarBuilder& tar, const BlockMap* reference,
             const std::vector<std::pair<std::string, size_t>>& files,
             const std::function<void(std::string&)>& tamper = {},
             const std::function<void(std::string&)>& tamper_map = {}) {
    record.system_id = kSysId;
    StringWriteStream map_out, delta_out;
    BlockMapWriter map(map_out);
    MemoryReadStream in(tar.out);
    TarReader reader(in, "base.tar");
    const bool full = record.type == BackupType::kFull;
    ScanArchive(reader, "", map, reference, full ? nullptr : &delta_out);
    map.Finish();
    std::string delta = delta_out.data();
    if (tamper) tamper(delta);
    record.archives.push_back(full ? Put(record.label, "base.tar", tar.out)
                                   : Put(record.label, "base.delta", delta));
    std::string blockmap = map_out.data();
    if (tamper_map) tamper_map(blockmap);
    record.blockmap = Put(record.label, kBlockMapName, blockmap);
    record.manifest = Put(record.label, kManifestName, testing::ManifestFor(files));
    record.manifest_checksums = "NONE";
    for (const auto& name : RequiredWal(record)) {
      const std::string key = WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
      if (!storage->Stat(key)) WriteSmallObject(*storage, config, key, "placeholder");
    }
    WriteSmallObject(*storage, config, BackupObjectKey(kSysId, record.label, kRecordName),
                     ToJson(record).dump());
  }

  std::unique_ptr<Storage> storage;
  Config config;
};

testing::TarBuilder FullTar() {
  testing::TarBuilder tar;
  tar.Add("PG_VERSION", "15\n");
  tar.Add("base", "", '5');
  tar.Add("base/1", "", '5');
  tar.Add("base/1/100", kBlockA + kBlockB);
  return tar;
}

using Tamper = std::function<void(std::string&)>;

// f1, a full, and i1, an incr on f1 that changed block 1 of base/1/100 to
// 'c'.  `tamper_delta` alters i1's delta, `tamper_f1_map` f1's block map, as
// a defect in the delta code (or an altered unencrypted repository) would.
struct Chain {
  Chain(const Tamper& tamper_delta, const Tamper& tamper_f1_map) {
    f1 = testing::MakeBackup("f1", 1795000000, 3);
    repo.Store(f1, FullTar(), nullptr, {{"PG_VERSION", 3}, {"base/1/100", 2 * kDeltaBlockSize}},
               {}, tamper_f1_map);
    StringWriteStream f1_map;
    {
      BlockMapWriter writer(f1_map);
      const testing::TarBuilder tar = FullTar();
      MemoryReadStream in(tar.out);
      TarReader reader(in, "base.tar");
      ScanArchive(reader, "", writer, nullptr, nullptr);
      writer.Finish();
    }
    MemoryReadStream map_in(f1_map.data());
    const BlockMap reference = ReadBlockMap(map_in, "f1 blockmap");

    testing::TarBuilder later;
    later.Add("PG_VERSION", "15\n");
    later.Add("base", "", '5');
    later.Add("base/1", "", '5');
    later.Add("base/1/100", kBlockA + kBlockC);
    i1 = testing::MakeDeltaOn(f1, "i1", 1795000100, 5, BackupType::kIncr);
    repo.Store(i1, later, &reference, {{"PG_VERSION", 3}, {"base/1/100", 2 * kDeltaBlockSize}},
               tamper_delta);
  }
  // Restores i1: the error code ("no exception") and the restored base/1/100.
  std::pair<std::string, std::string> Restore() {
    test::TempDir dir;
    RestoreOptions options;
    options.backup = "i1";
    options.target_dir = dir / "data";
    options.restore_command = "false";
    const std::string code =
        test::ThrownCode([&] { RunRestore(*repo.storage, repo.config, kSysId, options); });
    return {code, code == "no exception" ? test::ReadFile(dir / "data/base/1/100") : ""};
  }
  // verify --full of i1 (against f1).
  std::string Verify() {
    return test::ThrownCode([&] { VerifyBackupContents(*repo.storage, repo.config, i1, &f1, 2); });
  }

  ChainRepo repo;
  BackupRecord f1, i1;
};

// Changes a byte of the stored block 'c' of a delta.
void AlterStoredBlock(std::string& delta) {
  const size_t at = delta.find(kBlockC);
  REQUIRE(at != std::string::npos);
  delta[at + 100] = 'x';
}

}  // namespace

TEST_SUITE("backup_restore_chain") {
  TEST_CASE("an incr restores through its chain to exactly the data it took; verify is clean") {
    Chain chain({}, {});
    const auto [code, data] = chain.Restore();
    CHECK(code == "no exception");
    CHECK(data == kBlockA + kBlockC);
    CHECK(chain.Verify() == "no exception");
  }

  TEST_CASE("reassembled data that differs from the block map fails the restore (no checksums)") {
    // The stored block is not what BASE_BACKUP sent: sizes all match, and the
    // manifest has no checksum to catch it.
    Chain chain(AlterStoredBlock, {});
    CHECK(chain.Restore().first == test::CodeName(ErrorCode::kCorrupt));
  }

  TEST_CASE("verify --full compares a delta's blocks with its block map and its reference's") {
    // A stored block that differs from the backup's own block map.
    CHECK(Chain(AlterStoredBlock, {}).Verify() == test::CodeName(ErrorCode::kCorrupt));
    // An omitted block (block 0, unchanged) whose hash in the reference's block
    // map is not the one the backup's block map has.
    Chain wrong_reference({}, [](std::string& map) {
      const size_t at = map.find("base/1/100");
      REQUIRE(at != std::string::npos);
      map[at + 10 + 8] ^= 1;  // the path, the size, then block 0's hash
    });
    CHECK(wrong_reference.Verify() == test::CodeName(ErrorCode::kCorrupt));
  }

  TEST_CASE("verify: a full's damaged block map does not make its chain unrestorable") {
    Chain chain({}, {});
    const std::string key = BackupObjectKey(kSysId, "f1", kBlockMapName);
    chain.repo.storage->Remove(key);
    WriteSmallObject(*chain.repo.storage, chain.repo.config, key, "damaged");
    const VerifyReport report = RunVerify(
        *chain.repo.storage, chain.repo.config,
        LoadInventory(*chain.repo.storage, chain.repo.config, kSysId), /*full=*/true,
        /*jobs=*/2);
    std::string problems;
    for (const auto& p : report.problems) problems += p + "\n";
    CAPTURE(problems);
    CHECK(test::Contains(problems, "backup f1: its block map is damaged"));
    CHECK_FALSE(test::Contains(problems, "cannot be restored"));
    CHECK_FALSE(test::Contains(problems, "backup i1"));
    // What verify says holds: i1 restores.
    CHECK(chain.Restore().first == "no exception");
  }
}

}  // namespace walstore::backup
