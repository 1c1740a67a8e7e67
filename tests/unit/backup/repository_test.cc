// Tests for src/lib/backup/repository.cc: backup records (backup.json) are objects like any
// other, authenticated when a key is configured and bound to their label; and restore.cc's
// restore_command carries allow_plaintext_objects when only the environment set it.
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include <walstore/backup/repository.h>
#include <walstore/backup/restore.h>
#include "storage/memory/memory_storage.h"
#include "test_helpers.h"
#include "test_util.h"

using namespace walstore;
using namespace walstore::backup;
using walstore::test::CodeName;
using walstore::test::Contains;
using walstore::test::ThrownCode;
using walstore::test::ThrownMessage;

namespace {

constexpr uint64_t kSysId = 7322222222222222222ull;

Key RecordKey() { return walstore::test::SequenceKey(0x30); }

std::string RecordText(const std::string& label, double start) {
  BackupRecord r;
  r.label = label;
  r.complete = true;
  r.system_id = kSysId;
  r.timeline = 1;
  r.stop_timeline = 1;
  r.start_lsn = 0x3000028;
  r.stop_lsn = 0x3000100;
  r.start_time = start;
  r.stop_time = start + 10;
  r.segment_size = 16u << 20;
  r.wal_start = "000000010000000000000003";
  r.wal_stop = "000000010000000000000003";
  return ToJson(r).dump(2) + "\n";
}

struct Repo {
  Repo() {
    ResetMemoryStorage("backup-records");
    storage = OpenMemoryStorage("backup-records");
    keyed.repo_url = "memory://backup-records";
    keyed.key = RecordKey();
    plain = keyed;
    plain.key.reset();
  }
  ~Repo() { ResetMemoryStorage("backup-records"); }
  std::string Raw(const std::string& key) {
    auto in = storage->OpenRead(key);
    REQUIRE(in != nullptr);
    return walstore::test::ReadAll(*in);
  }
  void PutRaw(const std::string& key, const std::string& bytes) {
    auto w = storage->Create(key);
    w->Write(AsBytes(bytes));
    REQUIRE(w->Commit() == CommitResult::kCreated);
  }
  std::unique_ptr<Storage> storage;
  Config keyed;
  Config plain;
};

}  // namespace

TEST_SUITE("backup_repository") {
  TEST_CASE("RestoreChain: the full backup, each delta in order, the backup itself") {
    using walstore::backup::testing::MakeDeltaOn;
    BackupRecord full = walstore::backup::testing::MakeBackup("full1", 100, 2);
    full.blockmap.name = kBlockMapName;
    full.blockmap.sha256 = std::string(64, 'f');
    BackupRecord diff = MakeDeltaOn(full, "diff1", 200, 4, BackupType::kDiff);
    BackupRecord incr = MakeDeltaOn(diff, "incr1", 300, 6, BackupType::kIncr);
    const std::vector<BackupRecord> records = {full, diff, incr};
    std::vector<std::string> labels;
    for (const auto* r : RestoreChain(records, records[2])) labels.push_back(r->label);
    CHECK(labels == std::vector<std::string>{"full1", "diff1", "incr1"});
    CHECK(RestoreChain(records, records[0]).size() == 1);

    // A backup of the chain gone (a prune that ignored chains) or not what was recorded.
    const std::vector<BackupRecord> without_full = {diff, incr};
    CHECK(ThrownCode([&] { RestoreChain(without_full, without_full[1]); }) ==
          CodeName(ErrorCode::kCorrupt));
    CHECK(Contains(ThrownMessage([&] { RestoreChain(without_full, without_full[1]); }),
                   "needs backup full1 of its chain"));
    BackupRecord wrong = incr;
    wrong.chain = {"diff1", "full1"};
    wrong.reference = "full1";
    CHECK(ThrownCode([&] { RestoreChain(records, wrong); }) == CodeName(ErrorCode::kCorrupt));
    BackupRecord skipping = incr;
    skipping.chain = {"full1", "full1"};
    skipping.reference = "full1";
    CHECK(ThrownCode([&] { RestoreChain(records, skipping); }) == CodeName(ErrorCode::kCorrupt));
  }

  TEST_CASE("RestoreChain refuses a link re-created under the label its successor refers to") {
    using walstore::backup::testing::MakeDeltaOn;
    BackupRecord full = walstore::backup::testing::MakeBackup("full1", 100, 2);
    full.blockmap.name = kBlockMapName;
    full.blockmap.sha256 = std::string(64, 'f');
    const BackupRecord incr = MakeDeltaOn(full, "incr1", 200, 4, BackupType::kIncr);
    CHECK(RestoreChain({full, incr}, incr).size() == 2);
    // full1 was removed and a new full taken under the same label: another
    // block map, another start.
    BackupRecord again = walstore::backup::testing::MakeBackup("full1", 300, 6);
    again.blockmap.name = kBlockMapName;
    again.blockmap.sha256 = std::string(64, 'e');
    const std::vector<BackupRecord> records = {incr, again};
    CHECK(ThrownCode([&] { RestoreChain(records, incr); }) == CodeName(ErrorCode::kCorrupt));
    CHECK(Contains(ThrownMessage([&] { RestoreChain(records, incr); }), "label was reused"));
    CHECK(Contains(ChainProblem(records, incr), "label was reused"));
    // The same block map but another start LSN is refused too.
    again.blockmap.sha256 = full.blockmap.sha256;
    CHECK(ThrownCode([&] { RestoreChain({incr, again}, incr); }) ==
          CodeName(ErrorCode::kCorrupt));
    again.start_lsn = full.start_lsn;
    CHECK(ChainProblem({incr, again}, incr).empty());
  }

  TEST_CASE("DiscoverSystemId: the one top-level directory named by a 64-bit number") {
    Repo repo;
    CHECK_CODE(DiscoverSystemId(*repo.storage, repo.plain, ""), ErrorCode::kConfig);  // empty
    repo.PutRaw(std::to_string(kSysId) + "/wal/x", "x");
    // All digits but no 64-bit number, a name with a sign, a plain object: none is a cluster.
    repo.PutRaw("123456789012345678901234567890/wal/x", "x");
    repo.PutRaw("+42/wal/x", "x");
    repo.PutRaw("42", "x");
    CHECK(DiscoverSystemId(*repo.storage, repo.plain, "") == kSysId);
    repo.PutRaw("43/wal/x", "x");
    auto error = test::ThrownError([&] { DiscoverSystemId(*repo.storage, repo.plain, ""); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kConfig);
    CHECK(Contains(error->what(), "several clusters (43, " + std::to_string(kSysId) + ")"));
  }

  TEST_CASE("ListWal lists WAL objects only where walfetch looks; others are misplaced") {
    Repo repo;
    const WalFileName seg = ParseWalFileNameOrThrow("000000010000000000000005");
    const WalFileName hist = ParseWalFileNameOrThrow("00000002.history");
    const std::string wal = std::to_string(kSysId) + "/wal/";
    repo.PutRaw(WalObjectKey(kSysId, seg), "a");
    repo.PutRaw(WalObjectKey(kSysId, hist), "h");
    // Named like WAL, but where no restore looks: another timeline's directory, the top of
    // wal/, a directory of its own.
    const std::vector<std::string> stray = {wal + "0000000200000000/000000010000000000000006",
                                            wal + "000000010000000000000007",
                                            wal + "elsewhere/000000010000000000000008"};
    for (const auto& key : stray) repo.PutRaw(key, "x");
    repo.PutRaw(wal + "0000000100000000/not-wal", "x");  // not named like WAL: not listed at all
    std::vector<WalObject> misplaced_objects;
    const auto listed = ListWal(*repo.storage, kSysId, &misplaced_objects);
    std::vector<std::string> misplaced;
    for (const auto& w : misplaced_objects) misplaced.push_back(w.key);
    std::vector<std::string> names;
    for (const auto& w : listed) names.push_back(w.name.text);
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"000000010000000000000005", "00000002.history"});
    std::sort(misplaced.begin(), misplaced.end());
    std::vector<std::string> expected = stray;
    std::sort(expected.begin(), expected.end());
    CHECK(misplaced == expected);
    CHECK(ListWal(*repo.storage, kSysId).size() == 2);  // without the out-parameter too
  }

  TEST_CASE("with a key, backup.json is encrypted and read back") {
    Repo repo;
    const std::string key = BackupObjectKey(kSysId, "old", kRecordName);
    WriteSmallObject(*repo.storage, repo.keyed, key, RecordText("old", 1000));
    const std::string raw = repo.Raw(key);
    MemoryReadStream in{std::string_view(raw)};
    CHECK(ReadObjectHeader(in, key).cipher == Cipher::kAes256Gcm);
    const auto records = LoadBackups(*repo.storage, repo.keyed, kSysId);
    REQUIRE(records.size() == 1);
    CHECK(records[0].label == "old");
  }

  TEST_CASE("a forged unencrypted backup.json under a key is refused, never skipped or used") {
    Repo repo;
    WriteSmallObject(*repo.storage, repo.keyed, BackupObjectKey(kSysId, "old", kRecordName),
                     RecordText("old", 1000));
    // Someone who can write to the bucket but has no key adds a newer "latest".
    WriteSmallObject(*repo.storage, repo.plain, BackupObjectKey(kSysId, "forged", kRecordName),
                     RecordText("forged", 2000));
    const auto err =
        walstore::test::ThrownError([&] { LoadBackups(*repo.storage, repo.keyed, kSysId); });
    REQUIRE(err.has_value());
    CHECK(CodeName(err->code()) == std::string("kUnauthenticated"));
    CHECK(Contains(err->what(), "forged/backup.json"));
    CHECK(Contains(err->hint(), "allow_plaintext_objects"));
    // The migration setting reads it (a repository written before encryption was turned on).
    repo.keyed.allow_plaintext_objects = true;
    const auto records = LoadBackups(*repo.storage, repo.keyed, kSysId);
    CHECK(SelectBackup(records, "latest").label == "forged");
  }

  TEST_CASE("a backup.json copied to another label is refused") {
    Repo repo;
    const std::string a = BackupObjectKey(kSysId, "a", kRecordName);
    WriteSmallObject(*repo.storage, repo.keyed, a, RecordText("a", 1000));
    repo.PutRaw(BackupObjectKey(kSysId, "b", kRecordName), repo.Raw(a));
    CHECK_CODE(LoadBackups(*repo.storage, repo.keyed, kSysId), ErrorCode::kMisplaced);
  }

  TEST_CASE("a backup.json that speaks of another label or cluster is refused") {
    // Restore reads the objects the record's label and system id name: a
    // record describing another backup (a version 1 record, which decodes
    // under any name, copied here, or one written under
    // allow_plaintext_objects) must not stand in for this label's.
    Repo repo;
    WriteSmallObject(*repo.storage, repo.keyed, BackupObjectKey(kSysId, "a", kRecordName),
                     RecordText("a", 1000));
    SUBCASE("another label") {
      WriteSmallObject(*repo.storage, repo.keyed, BackupObjectKey(kSysId, "b", kRecordName),
                       RecordText("a", 2000));
    }
    SUBCASE("another cluster") {
      std::string text = RecordText("b", 2000);
      const std::string id = std::to_string(kSysId);
      text.replace(text.find(id), id.size(), std::to_string(kSysId + 1));
      WriteSmallObject(*repo.storage, repo.keyed, BackupObjectKey(kSysId, "b", kRecordName), text);
    }
    const auto err =
        walstore::test::ThrownError([&] { LoadBackups(*repo.storage, repo.keyed, kSysId); });
    REQUIRE(err.has_value());
    CHECK(CodeName(err->code()) == std::string("kMisplaced"));
    CHECK(Contains(err->what(), "/b/backup.json describes backup"));
  }

  TEST_CASE("restore_command repeats allow_plaintext_objects that came from the environment") {
    Config config;
    config.repo_url = "file:///var/lib/walstore";
    CHECK_FALSE(Contains(MakeRestoreCommand(config, "/usr/bin/walfetch"), "ALLOW_PLAINTEXT"));
    config.allow_plaintext_objects = true;
    const std::string command = MakeRestoreCommand(config, "/usr/bin/walfetch");
    CHECK(command.rfind("WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 ", 0) == 0);
    CHECK(Contains(command, "/usr/bin/walfetch"));
  }

  TEST_CASE("restore_command for a [[repository]] table: the file's tables, its settings kept") {
    // One table whose S3 endpoint is its own (with one table the command
    // named the URL, and walfetch then used the top-level settings), and the
    // same with two tables.
    walstore::test::TempDir dir;
    for (const bool two : {false, true}) {
      CAPTURE(two);
      walstore::test::WriteFile(dir / "walstore.toml",
                std::string(two ? "[[repository]]\nurl = \"file:///local\"\n" : "") +
                    "[[repository]]\nurl = \"s3://bucket/prod\"\n"
                    "[repository.s3]\nendpoint = \"http://minio:9000\"\n");
      ConfigOverrides overrides;
      overrides.config_path = dir / "walstore.toml";
      overrides.repo_url = two ? "2" : "1";
      Config all = LoadConfig(overrides, walstore::test::MapEnv({}));
      REQUIRE(all.repositories.size() == 1);
      const Config table = all.repositories[0];
      const std::string command = MakeRestoreCommand(table, "/usr/bin/walfetch");
      CHECK(Contains(command, " --config "));
      CHECK_FALSE(Contains(command, "--repo"));
      CHECK_FALSE(Contains(command, "s3://"));
      // What walfetch reads from that command line: the file's tables, endpoint included.
      const Config fetched =
          LoadConfig(dir / "walstore.toml", walstore::test::MapEnv({}));
      REQUIRE(fetched.repositories.size() == (two ? 2u : 1u));
      CHECK(fetched.repositories.back().s3.endpoint == "http://minio:9000");
    }
    // The single-repository form: no --repo at all.
    walstore::test::WriteFile(dir / "one.toml", "repository = \"file:///var/lib/walstore\"\n");
    const Config one = LoadConfig(dir / "one.toml", walstore::test::MapEnv({}));
    CHECK_FALSE(Contains(MakeRestoreCommand(one.repositories[0], "/usr/bin/walfetch"), "--repo"));
  }
}
