// Tests for src/lib/backup/base_backup.cc: what can be tested without a server.
#include <walstore/backup/base_backup.h>

#include <doctest/doctest.h>
#include <walstore/error.h>

#include <cstdint>
#include <nlohmann/json.hpp>

#include "storage/memory/memory_storage.h"
#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

TEST_SUITE("backup_base_backup") {
  TEST_CASE("ChooseReference: the newest fitting backup, refused when its chain is broken") {
    BackupRecord f1 = testing::MakeBackup("f1", 100, 2);
    f1.pg_version = 150004;
    f1.blockmap.name = kBlockMapName;
    f1.blockmap.sha256 = std::string(64, 'a');
    BackupRecord i1 = testing::MakeDeltaOn(f1, "i1", 200, 4, BackupType::kIncr);
    i1.pg_version = 150004;
    BackupRecord i2 = testing::MakeDeltaOn(i1, "i2", 300, 6, BackupType::kIncr);
    i2.pg_version = 150004;
    CHECK(ChooseReference({f1, i1, i2}, BackupType::kIncr, 150010).label == "i2");
    CHECK(ChooseReference({f1, i1, i2}, BackupType::kDiff, 150010).label == "f1");
    // i1 was pruned while i2 ran (review finding 1): i2 is never a reference,
    // and neither is an older backup in its place.
    const std::vector<BackupRecord> broken = {f1, i2};
    const auto error = test::ThrownError([&] { ChooseReference(broken, BackupType::kIncr, 150010); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kCorrupt);
    CHECK(test::Contains(error->what(), "i2"));
    CHECK(test::Contains(error->hint(), "take a full backup"));
    CHECK_CODE(ChooseReference({f1, i1}, BackupType::kIncr, 160000), ErrorCode::kUsage);
    CHECK_CODE(ChooseReference({}, BackupType::kDiff, 150010), ErrorCode::kUsage);
  }

  TEST_CASE("RecheckChain: a diff or incr whose chain was pruned meanwhile is never recorded") {
    ResetMemoryStorage("recheck-chain");
    auto storage = OpenMemoryStorage("recheck-chain");
    Config config;
    config.repo_url = "memory://recheck-chain";
    BackupRecord f1 = testing::MakeBackup("f1", 100, 2);
    f1.blockmap.name = kBlockMapName;
    f1.blockmap.sha256 = std::string(64, 'a');
    const BackupRecord i1 = testing::MakeDeltaOn(f1, "i1", 200, 4, BackupType::kIncr);
    const BackupRecord i2 = testing::MakeDeltaOn(i1, "i2", 300, 6, BackupType::kIncr);
    auto record_key = [](const BackupRecord& r) {
      return BackupObjectKey(r.system_id, r.label, kRecordName);
    };
    for (const BackupRecord& r : {f1, i1}) {
      WriteSmallObject(*storage, config, record_key(r), ToJson(r).dump());
    }
    const std::string delta_key = BackupObjectKey(i2.system_id, i2.label, "base.delta");
    WriteSmallObject(*storage, config, delta_key, "delta");
    RecheckChain(*storage, config, i2);  // the chain is whole
    CHECK(storage->Stat(delta_key));
    // A prune removed f1 and i1 (the running i2 had no record yet).
    storage->Remove(record_key(i1));
    storage->Remove(record_key(f1));
    CHECK_CODE(RecheckChain(*storage, config, i2), ErrorCode::kVerifyFailed);
    CHECK_FALSE(storage->Stat(delta_key));
    ResetMemoryStorage("recheck-chain");
  }

  TEST_CASE("ParseGucBytes reads a size as SHOW prints it; anything else is kPostgres") {
    CHECK(ParseGucBytes("16MB") == 16u << 20);
    CHECK(ParseGucBytes("8kB") == 8u << 10);
    CHECK(ParseGucBytes("1GB") == uint64_t{1} << 30);
    CHECK(ParseGucBytes("2TB") == uint64_t{2} << 40);
    CHECK(ParseGucBytes("4096") == 4096u);
    CHECK(ParseGucBytes("4096B") == 4096u);
    for (const char* bad : {"", "MB", "kB", "16XB", "16 MB", "-16MB", "+16MB", "16mb",
                            "99999999999999999999999MB", "16777216TB", "0x10MB"}) {
      CAPTURE(bad);
      CHECK_CODE(ParseGucBytes(bad), ErrorCode::kPostgres);
    }
  }
}

}  // namespace
}  // namespace walstore::backup
