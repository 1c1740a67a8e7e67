// Tests for src/lib/backup/copy.cc (a backup copied between repositories:
// verified, re-encoded with the destination's key, read back, record last)
// and SyncBackups (src/lib/archive/repositories.cc: which backups walctl sync
// copies, in which order, and what it refuses).
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/backup/base_backup.h>
#include <walstore/backup/copy.h>
#include <walstore/backup/repository.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/object_format.h>
#include <walstore/repositories.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "backup/test_helpers.h"
#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using namespace walstore::backup;
using walstore::backup::testing::MakeBackup;
using walstore::backup::testing::MakeDeltaOn;
using walstore::test::Contains;
using walstore::test::ReadAll;

namespace {

constexpr uint64_t kSysId = 42;  // MakeBackup's

std::string FreshStoreName() {
  static std::atomic<int> n{0};
  return "copy-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// Forwards to a memory storage; the hooks (when set) run first and may
// throw or change the inner storage: faults a test injects.
class HookedStorage : public walstore::test::ForwardingStorage {
 public:
  using ForwardingStorage::ForwardingStorage;
  std::unique_ptr<ObjectWriter> Create(const std::string& key, const WriteOptions& o) override {
    return std::make_unique<Writer>(*this, key, ForwardingStorage::Create(key, o));
  }
  bool Remove(const std::string& key) override {
    if (on_remove) on_remove(key);
    return ForwardingStorage::Remove(key);
  }
  std::string Describe() const override { return "hooked " + ForwardingStorage::Describe(); }

  std::function<void(const std::string& key)> on_commit;  // before a commit
  std::function<void(const std::string& key)> after_commit;
  std::function<void(const std::string& key)> on_remove;  // before a removal
  bool flip_byte_200 = false;  // writers store something else than they are given

 private:
  class Writer : public ObjectWriter {
   public:
    Writer(HookedStorage& owner, std::string key, std::unique_ptr<ObjectWriter> inner)
        : owner_(owner), key_(std::move(key)), inner_(std::move(inner)) {}
    void Write(Bytes data) override {
      std::string copy(reinterpret_cast<const char*>(data.data()), data.size());
      if (owner_.flip_byte_200 && written_ < 200 && written_ + copy.size() > 200) {
        copy[200 - written_] ^= 0x10;
      }
      written_ += copy.size();
      inner_->Write(AsBytes(copy));
    }
    CommitResult Commit() override {
      if (owner_.on_commit) owner_.on_commit(key_);
      const CommitResult result = inner_->Commit();
      if (owner_.after_commit) owner_.after_commit(key_);
      return result;
    }
    void RewriteHead(Bytes head) override { inner_->RewriteHead(head); }

   private:
    HookedStorage& owner_;
    std::string key_;
    std::unique_ptr<ObjectWriter> inner_;
    uint64_t written_ = 0;
  };
};

// Two memory repositories with their own keys and compression.
struct Fixture {
  Fixture() : first(FreshStoreName()), second(FreshStoreName()) {
    top.system_id = kSysId;
    top.chunk_size = 4096;
    Config a = top;
    a.repo_url = "memory://" + first;
    a.key = walstore::test::SequenceKey(1);
    Config b = top;
    b.repo_url = "memory://" + second;
    b.key = walstore::test::SequenceKey(2);
    b.compression = CompressionSpec{Codec::kNone, 0};
    top.repositories = {a, b};
  }
  ~Fixture() {
    ResetMemoryStorage(first);
    ResetMemoryStorage(second);
    for (const std::string& name : more) ResetMemoryStorage(name);
  }
  // Adds a memory repository with key `key_seed` after the others; its index.
  int AddRepository(int key_seed) {
    more.push_back(FreshStoreName());
    Config c = top.repositories[0];
    c.repo_url = "memory://" + more.back();
    c.key = walstore::test::SequenceKey(key_seed);
    top.repositories.push_back(c);
    return static_cast<int>(top.repositories.size()) - 1;
  }
  std::unique_ptr<Storage> Open(int i) { return OpenStorage(top.repositories[i]); }
  RepositorySet Set() { return RepositorySet(top); }
  // A set whose repository 2 is `hooked` (which must outlive the set).
  RepositorySet SetWith(HookedStorage*& hooked) {
    return RepositorySet(top, [this, &hooked](const Config& config) -> std::unique_ptr<Storage> {
      auto storage = OpenStorage(config);
      if (config.repo_url != top.repositories[1].repo_url) return storage;
      auto wrapped = std::make_unique<HookedStorage>(std::move(storage));
      hooked = wrapped.get();
      return wrapped;
    });
  }
  const Config& config(int i) const { return top.repositories[i]; }

  // Stores `record` with generated objects (content depends on `seed`) in
  // repository i; fills the record's objects.  Its WAL (stand-ins under the
  // WAL keys, the same in each) goes to every repository, as walpush
  // archives to all, unless `wal_everywhere` is false (then to i only).
  // Returns the stored record.
  BackupRecord Store(int i, BackupRecord record, const std::string& seed = "x",
                     bool wal_everywhere = true) {
    for (int r = 0; r < static_cast<int>(top.repositories.size()); ++r) {
      if (r != i && !wal_everywhere) continue;
      auto repository = Open(r);
      for (const std::string& name : RequiredWal(record)) {
        const std::string key = WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
        if (!repository->Stat(key)) WriteSmallObject(*repository, config(r), key, "WAL " + name);
      }
    }
    auto storage = Open(i);
    const auto put = [&](const std::string& name, const std::string& data) {
      BackupObject o = WriteSmallObject(*storage, config(i),
                                        BackupObjectKey(kSysId, record.label, name), data);
      return o;
    };
    std::string tar;
    for (int n = 0; n < 3000; ++n) tar += record.label + seed + std::to_string(n);
    record.archives = {put(record.type == BackupType::kFull ? "base.tar" : "base.delta", tar)};
    record.manifest = put(kManifestName, "manifest of " + record.label + seed);
    record.blockmap = put(kBlockMapName, "blockmap of " + record.label + seed);
    record.compression = ToString(config(i).compression);
    record.key_id = config(i).key->IdHex();
    WriteSmallObject(*storage, config(i), BackupObjectKey(kSysId, record.label, kRecordName),
                     ToJson(record).dump());
    return record;
  }
  // Pushes WAL segment `segno` (content by `seed`) into repository i; its key.
  std::string PushWal(int i, uint64_t segno, uint64_t seed = 3) {
    return PushWalAs(i, config(i), segno, seed);
  }
  // The same, pushed with `as` (another key, none, ...) into repository i.
  std::string PushWalAs(int i, const Config& as, uint64_t segno, uint64_t seed = 3) {
    const std::string name = SegmentFileName(1, segno, kSegSize);
    const std::string path = dir / name;
    walstore::test::WriteFile(path, walstore::test::MakeSegment(1, segno, kSegSize, kSysId, seed));
    PushWalFile(*Open(i), as, path);
    return WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
  }
  // Every key under the quarantine of repository i.
  std::vector<std::string> Quarantine(int i) {
    std::vector<std::string> keys;
    Open(i)->List("42/damaged/", [&](const ObjectInfo& info) { keys.push_back(info.key); });
    return keys;
  }
  // Pushes segment `segno` (the same content) into both repositories.
  std::string PushWalToBoth(uint64_t segno) {
    const std::string key = PushWal(0, segno);
    PushWal(1, segno);
    return key;
  }
  // Flips one byte in the middle of object `key` of repository i.
  void Damage(int i, const std::string& key) {
    auto storage = Open(i);
    std::string raw = ReadAll(*storage->OpenRead(key));
    raw[raw.size() / 2] ^= 0x01;
    storage->Remove(key);
    auto w = storage->Create(key);
    w->Write(AsBytes(raw));
    REQUIRE(w->Commit() == CommitResult::kCreated);
  }
  std::string Raw(int i, const std::string& key) {
    auto in = Open(i)->OpenRead(key);
    REQUIRE_MESSAGE(in != nullptr, key, " is missing");
    return ReadAll(*in);
  }
  std::vector<BackupRecord> Load(int i) { return LoadBackups(*Open(i), config(i), kSysId); }

  std::string first, second;
  std::vector<std::string> more;  // AddRepository's
  Config top;
  walstore::test::TempDir dir;
  static constexpr uint32_t kSegSize = 1u << 20;
};

const BackupRecord* Find(const std::vector<BackupRecord>& records, const std::string& label) {
  for (const auto& r : records) {
    if (r.label == label) return &r;
  }
  return nullptr;
}

// CheckHeldObjects --repair with repository 2 behind a HookedStorage that
// `arm` sets up (after the listing).
HeldCheckReport RepairWithHook(Fixture& fx, const std::function<void(HookedStorage&)>& arm) {
  HookedStorage* hooked = nullptr;
  auto set = fx.SetWith(hooked);
  const RepositoryListing listing = ListRepositories(set, kSysId);
  REQUIRE(hooked != nullptr);
  arm(*hooked);
  return CheckHeldObjects(set, listing, kSysId, true, "T", fx.dir.path());
}

}  // namespace

TEST_SUITE("backup_copy") {
  TEST_CASE("a copied backup is the same backup under the destination's key and compression") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    auto from = fx.Open(0);
    auto to = fx.Open(1);
    const BackupRecord copy =
        CopyBackup({*from, fx.config(0)}, {*to, fx.config(1)}, kSysId, full);
    const auto loaded = fx.Load(1);
    REQUIRE(loaded.size() == 1);
    CHECK(SameBackup(loaded[0], full));
    CHECK(loaded[0].key_id == fx.config(1).key->IdHex());
    CHECK(loaded[0].key_id != full.key_id);
    CHECK(loaded[0].compression == "none");
    CHECK(loaded[0].stored_size() == copy.stored_size());
    // Every object decodes with the destination's key, not with the source's.
    for (const BackupObject* object : RecordObjects(loaded[0])) {
      const std::string key = BackupObjectKey(kSysId, "full1", object->name);
      CHECK(VerifyStoredObject({*to, fx.config(1)}, key, *object) == object->stored_size);
      CHECK_CODE(VerifyStoredObject({*to, fx.config(0)}, key, *object), ErrorCode::kWrongKey);
    }
  }

  TEST_CASE("a damaged source object: nothing is published, no record") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    const std::string key = BackupObjectKey(kSysId, "full1", "base.tar");
    fx.Damage(0, key);
    auto from = fx.Open(0);
    auto to = fx.Open(1);
    CHECK_CODE(CopyBackup({*from, fx.config(0)}, {*to, fx.config(1)}, kSysId, full),
               ErrorCode::kCorrupt);
    CHECK(fx.Load(1).empty());
    CHECK_FALSE(to->Stat(key).has_value());
  }

  TEST_CASE("an unencrypted object a keyed source only tolerates is never re-encrypted (F7)") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    auto from = fx.Open(0);
    const std::string key = BackupObjectKey(kSysId, "full1", "base.tar");
    const std::string data = *ReadSmallObject(*from, fx.config(0), key);
    from->Remove(key);
    Config plain = fx.config(0);
    plain.key.reset();
    WriteSmallObject(*from, plain, key, data);  // same plaintext, unencrypted
    fx.top.repositories[0].allow_plaintext_objects = true;
    auto to = fx.Open(1);
    CHECK_CODE(CopyBackup({*from, fx.config(0)}, {*to, fx.config(1)}, kSysId, full),
               ErrorCode::kUnauthenticated);
    CHECK(fx.Load(1).empty());
    CHECK_FALSE(to->Stat(key).has_value());
  }

  TEST_CASE("a source object that decodes but is not what the record names is refused") {
    Fixture fx;
    BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    full.manifest.sha256 = std::string(64, '0');  // a record that does not match its object
    auto from = fx.Open(0);
    auto to = fx.Open(1);
    try {
      CopyBackup({*from, fx.config(0)}, {*to, fx.config(1)}, kSysId, full);
      FAIL("copied");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kCorrupt);
      CHECK(Contains(e.what(), "backup_manifest"));
      CHECK(Contains(e.what(), "its backup record names"));
    }
    CHECK(fx.Load(1).empty());
  }

  TEST_CASE("a destination that stores something else: the read-back fails, no record") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    auto from = fx.Open(0);
    HookedStorage to(fx.Open(1));
    to.flip_byte_200 = true;
    CHECK_CODE(CopyBackup({*from, fx.config(0)}, {to, fx.config(1)}, kSysId, full),
               ErrorCode::kCorrupt);
    CHECK(fx.Load(1).empty());
  }

  TEST_CASE("what an interrupted copy left under the label is kept when intact, never removed") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    {
      auto set = fx.Set();
      REQUIRE(SyncBackups(set, kSysId, false).copied[1] == 1);
    }
    auto to = fx.Open(1);
    const std::string tar = BackupObjectKey(kSysId, "full1", "base.tar");
    const std::string tar_before = fx.Raw(1, tar);
    // The record is gone (an interrupted copy or prune, a record moved aside
    // by hand); a stray object lies under the label.
    to->Remove(BackupObjectKey(kSysId, "full1", kRecordName));
    WriteSmallObject(*to, fx.config(1), BackupObjectKey(kSysId, "full1", "stray"), "stray");
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.problems.empty());
    CHECK(report.copied[1] == 1);
    const auto loaded = fx.Load(1);
    REQUIRE(loaded.size() == 1);
    CHECK(SameBackup(loaded[0], full));
    CHECK(fx.Raw(1, tar) == tar_before);  // kept, not copied again
    CHECK(to->Stat(BackupObjectKey(kSysId, "full1", "stray")).has_value());
  }

  TEST_CASE("a record-less label's intact objects survive a damaged source (F0)") {
    Fixture fx;
    fx.Store(0, MakeBackup("full1", 100, 2));
    {
      auto set = fx.Set();
      REQUIRE(SyncBackups(set, kSysId, false).copied[1] == 1);
    }
    const std::string tar = BackupObjectKey(kSysId, "full1", "base.tar");
    const std::string manifest = BackupObjectKey(kSysId, "full1", kManifestName);
    fx.Open(1)->Remove(BackupObjectKey(kSysId, "full1", kRecordName));
    const std::string tar_before = fx.Raw(1, tar);
    const std::string manifest_before = fx.Raw(1, manifest);
    fx.Damage(0, tar);
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false, /*all=*/true);
    // The destination's intact objects are kept (the damaged source is not
    // even read): the record is back, nothing was removed.
    CHECK(report.problems.empty());
    CHECK(report.copied[1] == 1);
    CHECK(fx.Load(1).size() == 1);
    CHECK(fx.Raw(1, tar) == tar_before);
    CHECK(fx.Raw(1, manifest) == manifest_before);
    // Record and manifest lost, the source's manifest damaged: the copy fails
    // and base.tar is still there.
    fx.Open(1)->Remove(BackupObjectKey(kSysId, "full1", kRecordName));
    fx.Open(1)->Remove(manifest);
    fx.Damage(0, manifest);
    auto again = fx.Set();
    const BackupSyncReport failed = SyncBackups(again, kSysId, false, /*all=*/true);
    CHECK(failed.copied[1] == 0);
    REQUIRE(failed.problems.size() == 1);
    CHECK(fx.Raw(1, tar) == tar_before);
  }

  TEST_CASE("an object under the label that is not this backup's is moved aside, not deleted") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    auto to = fx.Open(1);
    const std::string tar = BackupObjectKey(kSysId, "full1", "base.tar");
    WriteSmallObject(*to, fx.config(1), tar, "partial");
    const std::string before = fx.Raw(1, tar);
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.problems.empty());
    CHECK(report.copied[1] == 1);
    REQUIRE(fx.Load(1).size() == 1);
    CHECK(SameBackup(fx.Load(1)[0], full));
    std::vector<std::string> aside;
    to->List("42/damaged/", [&](const ObjectInfo& info) { aside.push_back(info.key); });
    REQUIRE(aside.size() == 1);
    CHECK(Contains(aside[0], "/backup/full1/base.tar"));
    CHECK(fx.Raw(1, aside[0]) == before);
  }

  TEST_CASE("an object removed under a copy's feet: the copy is not reported done (F4)") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    auto from = fx.Open(0);
    HookedStorage to(fx.Open(1));
    const std::string tar = BackupObjectKey(kSysId, "full1", "base.tar");
    // A concurrent writer removes base.tar just as the record is written.
    to.on_commit = [&](const std::string& key) {
      if (key == BackupObjectKey(kSysId, "full1", kRecordName)) to.inner().Remove(tar);
    };
    try {
      CopyBackup({*from, fx.config(0)}, {to, fx.config(1)}, kSysId, full);
      FAIL("reported copied");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kCorrupt);
      CHECK(Contains(e.what(), "vanished"));
    }
  }

  TEST_CASE("sync copies a chain oldest first, whatever the labels' order") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("z-full", 100, 2));
    BackupRecord incr = MakeDeltaOn(full, "a-incr", 200, 4, BackupType::kIncr);
    incr = fx.Store(0, incr);
    REQUIRE(ChainProblem(fx.Load(0), incr).empty());
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.problems.empty());
    CHECK(report.copied[1] == 2);
    CHECK(report.copied[0] == 0);
    const auto loaded = fx.Load(1);
    REQUIRE(loaded.size() == 2);
    CHECK(ChainProblem(loaded, *Find(loaded, "a-incr")).empty());
    // Again: nothing to copy, nothing wrong (identical backups are skipped).
    auto again = fx.Set();
    const BackupSyncReport second = SyncBackups(again, kSysId, false);
    CHECK(second.problems.empty());
    CHECK(second.copied[1] == 0);
    CHECK(second.listed[1] == 2);
  }

  TEST_CASE("a label holding another backup in the destination is a conflict, untouched") {
    Fixture fx;
    fx.Store(0, MakeBackup("dup", 100, 2), "one");
    const BackupRecord theirs = fx.Store(1, MakeBackup("dup", 100, 2), "two");
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    REQUIRE(report.problems.size() == 2);  // reported for each direction
    CHECK(Contains(report.problems[0].message, "conflict"));
    CHECK(report.problems[0].name == "dup");
    CHECK(report.copied[0] + report.copied[1] == 0);
    CHECK(SameBackup(fx.Load(1).at(0), theirs));
  }

  TEST_CASE("sync does not undo a repository's prune of backups; --all does") {
    Fixture fx;
    fx.Store(0, MakeBackup("f1", 100, 2));
    const BackupRecord f2 = MakeBackup("f2", 300, 6);
    fx.Store(0, f2);
    fx.Store(1, f2);
    {
      auto set = fx.Set();
      const BackupSyncReport report = SyncBackups(set, kSysId, false);
      CHECK(report.problems.empty());
      CHECK(report.copied[1] == 0);
      CHECK(report.below_horizon[1] == 1);
      CHECK(fx.Load(1).size() == 1);
    }
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false, /*all=*/true);
    CHECK(report.copied[1] == 1);
    CHECK(fx.Load(1).size() == 2);
  }

  TEST_CASE("an incr whose chain is not in the destination is refused and reported") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("f1", 100, 2));
    fx.Store(0, MakeDeltaOn(full, "i1", 300, 6, BackupType::kIncr));
    fx.Store(1, MakeBackup("f-mid", 200, 4));  // f1 is below repository 2's horizon
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.below_horizon[1] == 1);
    CHECK(report.copied[1] == 0);
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].name == "i1");
    CHECK(Contains(report.problems[0].message, "reference chain"));
    CHECK(Find(fx.Load(1), "i1") == nullptr);
  }

  TEST_CASE("dry run copies nothing and counts the chain") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("f1", 100, 2));
    fx.Store(0, MakeDeltaOn(full, "i1", 300, 6, BackupType::kIncr));
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, /*dry_run=*/true);
    CHECK(report.problems.empty());
    CHECK(report.copied[1] == 2);
    CHECK(fx.Load(1).empty());
  }

  TEST_CASE("only_label copies that backup only") {
    Fixture fx;
    fx.Store(0, MakeBackup("f1", 100, 2));
    fx.Store(0, MakeBackup("f2", 300, 6));
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false, false, "f2");
    CHECK(report.copied[1] == 1);
    const auto loaded = fx.Load(1);
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].label == "f2");
  }

  TEST_CASE("--verify reports a damaged copy; --repair moves it aside and replaces it") {
    Fixture fx;
    const std::string wal = fx.PushWal(0, 3);
    fx.PushWal(1, 3);
    const std::string ok_wal = fx.PushWal(0, 4);
    fx.PushWal(1, 4);
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    {
      auto set = fx.Set();
      REQUIRE(SyncBackups(set, kSysId, false).copied[1] == 1);
    }
    const std::string tar = BackupObjectKey(kSysId, "full1", "base.tar");
    fx.Damage(1, wal);
    fx.Damage(1, tar);
    const std::string damaged_wal = fx.Raw(1, wal);
    {
      auto set = fx.Set();
      const HeldCheckReport report = CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, false, "T1", fx.dir.path());
      REQUIRE(report.problems.size() == 2);
      for (const auto& problem : report.problems) {
        CHECK(problem.repository == 1);
        CHECK((problem.name == wal || problem.name == tar));
        CHECK(Contains(problem.message, "damaged"));
        CHECK(Contains(problem.message, "--repair"));
        // Damage fails walctl sync --verify even in a best_effort repository.
        CHECK(problem.fails_always);
      }
      CHECK(report.checked[1] == 6);  // 3 WAL + base.tar, manifest, blockmap
      CHECK(report.repaired[1] == 0);
      CHECK(fx.Raw(1, wal) == damaged_wal);  // untouched without --repair
    }
    auto set = fx.Set();
    const HeldCheckReport report = CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T2", fx.dir.path());
    CHECK(report.problems.empty());
    CHECK(report.repaired[1] == 2);
    CHECK(report.repaired[0] == 0);
    REQUIRE(report.moved_aside.size() == 2);
    auto storage = fx.Open(1);
    const std::string aside = "42/damaged/T2/" + wal.substr(3);
    CHECK(fx.Raw(1, aside) == damaged_wal);
    CHECK(storage->Stat("42/damaged/T2/" + tar.substr(3)).has_value());
    // The replacements decode with repository 2's own key.
    CHECK(DecodeStoredObject({*storage, fx.config(1)}, wal).sha256 ==
          DecodeStoredObject({*fx.Open(0), fx.config(0)}, wal).sha256);
    CHECK_NOTHROW(VerifyStoredObject({*storage, fx.config(1)}, tar, full.archives[0]));
    // The quarantine is no WAL and no backup; it is listed on its own.
    CHECK(ListWal(*storage, kSysId).size() == 3);
    const Quarantine kept = ListQuarantine(*storage, kSysId);
    CHECK(kept.objects == 2);
    CHECK(kept.bytes == fx.Raw(1, aside).size() +
                            fx.Raw(1, "42/damaged/T2/" + tar.substr(3)).size());
    CHECK(ListQuarantine(*fx.Open(0), kSysId).objects == 0);
    CHECK(fx.Load(1).size() == 1);
    (void)ok_wal;
  }

  TEST_CASE("an object damaged in every repository is left alone") {
    Fixture fx;
    const std::string wal = fx.PushWal(0, 3);
    fx.PushWal(1, 3);
    fx.Damage(0, wal);
    fx.Damage(1, wal);
    const std::string before0 = fx.Raw(0, wal);
    const std::string before1 = fx.Raw(1, wal);
    auto set = fx.Set();
    const HeldCheckReport report = CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T", fx.dir.path());
    CHECK(report.problems.size() == 2);
    CHECK(Contains(report.problems[0].message, "no repository holds an intact copy"));
    CHECK(report.moved_aside.empty());
    CHECK(fx.Raw(0, wal) == before0);
    CHECK(fx.Raw(1, wal) == before1);
  }

  TEST_CASE("two intact but different copies are a conflict, never repaired") {
    Fixture fx;
    const std::string wal = fx.PushWal(0, 3, 3);
    fx.PushWal(1, 3, 99);
    const std::string before = fx.Raw(1, wal);
    auto set = fx.Set();
    const HeldCheckReport report = CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T", fx.dir.path());
    REQUIRE(report.problems.size() == 1);
    CHECK(Contains(report.problems[0].message, "conflict"));
    CHECK(report.moved_aside.empty());
    CHECK(fx.Raw(1, wal) == before);
  }

  TEST_CASE("a repair whose replacement fails leaves the damaged object in place (F1)") {
    Fixture fx;
    const std::string wal = fx.PushWalToBoth(3);
    fx.Damage(1, wal);
    const std::string damaged = fx.Raw(1, wal);
    int commits = 0;
    const HeldCheckReport report = RepairWithHook(fx, [&](HookedStorage& hooked) {
      hooked.on_commit = [&](const std::string& key) {
        if (key == wal && commits++ == 0) Fail(ErrorCode::kLocalIo, "no space left on device");
      };
    });
    REQUIRE(report.problems.size() == 1);
    CHECK(Contains(report.problems[0].message, "no space left"));
    CHECK(report.repaired[1] == 0);
    CHECK(fx.Raw(1, wal) == damaged);  // damaged, not missing
  }

  TEST_CASE("a repair never leaves the damaged object absent, not even between two steps (R10-5)") {
    Fixture fx;
    const std::string wal = fx.PushWalToBoth(3);
    fx.Damage(1, wal);
    const std::string damaged = fx.Raw(1, wal);
    int steps = 0;
    HookedStorage* storage = nullptr;
    // Before every write and removal the repair makes, a walfetch reading
    // repository 2 would find the segment (damaged or repaired), never "missing".
    const auto present = [&](const std::string&) {
      ++steps;
      CHECK_MESSAGE(storage->inner().Stat(wal).has_value(), wal, " absent at step ", steps);
    };
    const HeldCheckReport report = RepairWithHook(fx, [&](HookedStorage& hooked) {
      storage = &hooked;
      hooked.on_commit = present;
      hooked.after_commit = present;
      hooked.on_remove = present;
    });
    CHECK(report.problems.empty());
    CHECK(report.repaired[1] == 1);
    CHECK(steps >= 5);  // staged, aside, replaced: before and after each; the staged removal
    REQUIRE(report.moved_aside.size() == 1);
    CHECK(fx.Raw(1, "42/damaged/T/" + wal.substr(3)) == damaged);
    CHECK(fx.Raw(1, wal) != damaged);
    CHECK(DecodeStoredObject({*fx.Open(1), fx.config(1)}, wal).sha256 ==
          DecodeStoredObject({*fx.Open(0), fx.config(0)}, wal).sha256);
  }

  TEST_CASE("a backup object missing where its record names it is repaired (F1)") {
    Fixture fx;
    const BackupRecord full = fx.Store(0, MakeBackup("full1", 100, 2));
    {
      auto set = fx.Set();
      REQUIRE(SyncBackups(set, kSysId, false).copied[1] == 1);
    }
    const std::string tar = BackupObjectKey(kSysId, "full1", "base.tar");
    auto storage = fx.Open(1);
    storage->Remove(tar);
    auto set = fx.Set();
    const HeldCheckReport report = CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T", fx.dir.path());
    CHECK(report.problems.empty());
    CHECK(report.repaired[1] == 1);
    CHECK(report.moved_aside.empty());
    CHECK_NOTHROW(VerifyStoredObject({*storage, fx.config(1)}, tar, full.archives[0]));
  }

  TEST_CASE("a wrong key is no damage: reported, never repaired (F2)") {
    Fixture fx;
    const std::string wal = fx.PushWalToBoth(3);
    const std::string before = fx.Raw(1, wal);
    fx.top.repositories[1].key = walstore::test::SequenceKey(7);  // the operator's mistake
    auto set = fx.Set();
    const HeldCheckReport report = CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T", fx.dir.path());
    REQUIRE(report.problems.size() == 1);
    CHECK(Contains(report.problems[0].message, "could not check"));
    CHECK(Contains(report.problems[0].message, "wrong_key"));
    CHECK(report.moved_aside.empty());
    CHECK(report.repaired[1] == 0);
    CHECK(fx.Raw(1, wal) == before);
  }

  TEST_CASE("a transient read error is no damage: reported, never repaired (F2)") {
    Fixture fx;
    const std::string wal = fx.PushWalToBoth(3);
    const std::string before = fx.Raw(1, wal);
    int reads = 0;
    const HeldCheckReport report = RepairWithHook(fx, [&](HookedStorage& hooked) {
      hooked.on_open = [&](const std::string& key) {
        if (key == wal && reads++ == 0) Fail(ErrorCode::kStorageTransient, "503 Slow Down");
      };
    });
    REQUIRE(report.problems.size() == 1);
    CHECK(Contains(report.problems[0].message, "could not check"));
    CHECK(report.moved_aside.empty());
    CHECK(fx.Raw(1, wal) == before);
  }

  TEST_CASE("an object that verifies when it is to be moved aside is left alone (F2)") {
    Fixture fx;
    const std::string wal = fx.PushWalToBoth(3);
    const std::string before = fx.Raw(1, wal);
    auto from = fx.Open(0);
    auto to = fx.Open(1);
    const StoredDigest digest = DecodeStoredObject({*from, fx.config(0)}, wal);
    BackupObject expected;
    expected.size = digest.size;
    expected.sha256 = digest.sha256;
    CHECK_CODE(ReplaceDamagedObject({*from, fx.config(0)}, {*to, fx.config(1)}, kSysId, wal,
                                    expected, "T"),
               ErrorCode::kConflict);
    CHECK(fx.Raw(1, wal) == before);
    CHECK_FALSE(to->Stat("42/damaged/T/" + wal.substr(3)).has_value());
  }

  TEST_CASE("a backup is not recorded where its WAL is missing (F3)") {
    Fixture fx;
    fx.Store(0, MakeBackup("full1", 100, 2), "x", /*wal_everywhere=*/false);
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.copied[1] == 0);
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].repository == 1);
    CHECK(Contains(report.problems[0].message, "lacks 1 of the 1 WAL files"));
    CHECK(fx.Load(1).empty());
  }

  TEST_CASE("only_label copies its backup whatever the horizon (F8)") {
    Fixture fx;
    fx.Store(1, MakeBackup("later", 500, 8));  // a clock ahead there
    fx.Store(0, MakeBackup("new", 300, 6));
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false, false, "new");
    CHECK(report.problems.empty());
    CHECK(report.copied[1] == 1);
    CHECK(Find(fx.Load(1), "new") != nullptr);
  }

  TEST_CASE("a repository whose backups cannot be listed is a problem, the others go on (F5, F6)") {
    Fixture fx;
    fx.Store(0, MakeBackup("full1", 100, 2));
    fx.Store(1, MakeBackup("other", 50, 1));
    fx.Damage(1, BackupObjectKey(kSysId, "other", kRecordName));
    // A third repository, unreachable.
    Config broken = fx.top.repositories[0];
    broken.repo_url = "memory://" + fx.second;
    broken.key = walstore::test::SequenceKey(9);
    fx.top.repositories.push_back(broken);
    auto set = fx.Set();
    const RepositoryListing listing = ListRepositories(set, kSysId);
    REQUIRE(listing.errors.size() == 2);  // repository 2's and 3's backups
    CHECK(listing.errors[0].repository == 1);
    CHECK(listing.errors[0].name == "backups");
    CHECK(Contains(listing.errors[0].message, "backup.json"));
    CHECK(listing.backups_failed[1]);
    CHECK_FALSE(listing.wal_failed[1]);
    CHECK(listing.wal[1].size() == 2);  // its WAL is still listed
    CHECK_NOTHROW(SyncBackups(set, listing, kSysId, false, false));
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.problems.size() == 2);
    CHECK(report.copied[1] == 0);
    CHECK(report.problems[0].repository == 1);
  }

  TEST_CASE("WAL a backup to be copied needs is copied whatever the horizon (F3)") {
    Fixture fx;
    constexpr uint64_t seg = Fixture::kSegSize;
    BackupRecord full = MakeBackup("full1", 100, 2);
    full.segment_size = seg;
    full.start_lsn = 2 * seg + 40;
    full.stop_lsn = 3 * seg - 100;
    full.wal_start = full.wal_stop = SegmentFileName(1, 2, seg);
    fx.PushWal(0, 2);
    fx.PushWal(0, 5);
    fx.PushWal(1, 5);  // repository 2 added later: walpush filled it from segment 5 on
    fx.Store(0, full, "x", /*wal_everywhere=*/false);
    auto set = fx.Set();
    const RepositoryListing listing = ListRepositories(set, kSysId);
    const SyncReport wal = SyncWal(set, listing, kSysId, fx.dir.path(), false, false);
    CHECK(wal.problems.empty());
    CHECK(wal.copied[1] == 1);
    CHECK(wal.below_horizon[1] == 0);
    const BackupSyncReport backups = SyncBackups(set, listing, kSysId, false, false);
    CHECK(backups.problems.empty());
    CHECK(backups.copied[1] == 1);
  }
  TEST_CASE("a WAL repair takes its source through walfetch's checks: another segment's bytes "
            "are no replacement (F10)") {
    Fixture fx;
    const std::string wal = fx.PushWalToBoth(3);
    // Repository 1's object for segment 3 holds segment 4 (an operator's cp
    // from a wrong directory), stored and bound under segment 3's name: it
    // decodes, but is not segment 3.
    const std::string other = fx.dir / SegmentFileName(1, 4, Fixture::kSegSize);
    walstore::test::WriteFile(
        other, walstore::test::MakeSegment(1, 4, Fixture::kSegSize, kSysId, 3));
    fx.Open(0)->Remove(wal);
    REQUIRE(StoreFileObject(*fx.Open(0), fx.config(0), other, wal).commit ==
            CommitResult::kCreated);
    fx.Damage(1, wal);
    const std::string damaged = fx.Raw(1, wal);
    auto set = fx.Set();
    const HeldCheckReport report =
        CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T", fx.dir.path());
    CHECK(report.repaired[1] == 0);
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].repository == 1);
    CHECK(Contains(report.problems[0].message, "does not hold 000000010000000000000003"));
    CHECK(Contains(report.problems[0].message, "[misplaced]"));
    CHECK(fx.Raw(1, wal) == damaged);  // left as it was: nothing replaced, nothing moved
    CHECK(fx.Quarantine(1).empty());
  }

  TEST_CASE("--repair never takes an unencrypted copy out of a keyed repository: it repairs "
            "from an authenticated one (F7 rule at the source)") {
    Fixture fx;
    const int third = fx.AddRepository(3);
    // Repository 1 (key, allow_plaintext_objects during a migration) holds
    // segments 3 and 4 unencrypted; repository 3 holds 3 authenticated.
    Config plain = fx.config(0);
    plain.key.reset();
    const std::string wal = fx.PushWalAs(0, plain, 3);
    const std::string wal4 = fx.PushWalAs(0, plain, 4);
    fx.PushWal(1, 3);
    fx.PushWal(1, 4);
    fx.PushWal(third, 3);
    fx.top.repositories[0].allow_plaintext_objects = true;
    fx.Damage(1, wal);
    fx.Damage(1, wal4);
    const std::string damaged4 = fx.Raw(1, wal4);
    auto set = fx.Set();
    const HeldCheckReport report =
        CheckHeldObjects(set, ListRepositories(set, kSysId), kSysId, true, "T", fx.dir.path());
    CHECK(report.repaired[1] == 1);  // segment 3, from repository 3
    CHECK(report.repaired[0] == 0);
    CHECK(DecodeStoredObject({*fx.Open(1), fx.config(1)}, wal).sha256 ==
          DecodeStoredObject({*fx.Open(third), fx.config(third)}, wal).sha256);
    // Segment 4: the only intact copy is the unencrypted one; nothing is
    // repaired from it, and the report says why.
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].name == wal4);
    CHECK(Contains(report.problems[0].message, "unencrypted"));
    CHECK(fx.Raw(1, wal4) == damaged4);
  }
  TEST_CASE("two sources holding different backups under one label: a conflict, nothing "
            "copied for it (F11)") {
    Fixture fx;
    const int third = fx.AddRepository(3);
    fx.Store(0, MakeBackup("L", 100, 2), "one");
    fx.Store(third, MakeBackup("L", 100, 2), "two");  // the label reused there
    fx.Store(0, MakeBackup("M", 200, 4));
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    CHECK(report.copied[1] == 1);  // M only
    CHECK(Find(fx.Load(1), "L") == nullptr);
    CHECK(Find(fx.Load(1), "M") != nullptr);
    bool reported = false;
    for (const auto& problem : report.problems) {
      CHECK(problem.name == "L");
      if (problem.repository == 1) {
        reported = true;
        CHECK(Contains(problem.message, "hold different backups under this label"));
      }
    }
    CHECK(reported);
    // The copy never falls back to the other holder's backup either: with
    // the first holder's copy damaged, still nothing.
    fx.Damage(0, BackupObjectKey(kSysId, "L", "base.tar"));
    auto again = fx.Set();
    CHECK(SyncBackups(again, kSysId, false).copied[1] == 0);
    CHECK(Find(fx.Load(1), "L") == nullptr);
  }
  TEST_CASE("WAL is copied only for backups SyncBackups will copy: not for an incr whose chain "
            "is not there (one rule for both)") {
    Fixture fx;
    constexpr uint64_t seg = Fixture::kSegSize;
    const auto on_segment = [&](BackupRecord record, uint64_t n) {
      record.segment_size = seg;
      record.start_lsn = n * seg + 40;
      record.stop_lsn = (n + 1) * seg - 100;
      record.wal_start = record.wal_stop = SegmentFileName(1, n, seg);
      return record;
    };
    // Repository 1: full f1 (WAL 2) and incr i1 on it (WAL 4).  Repository 2
    // pruned: only a full f2 that started before i1, and WAL from 6 on.
    fx.PushWal(0, 2);
    const BackupRecord f1 = fx.Store(0, on_segment(MakeBackup("f1", 100, 2), 2), "x", false);
    fx.PushWal(0, 4);
    fx.Store(0, on_segment(MakeDeltaOn(f1, "i1", 300, 4, BackupType::kIncr), 4), "x", false);
    fx.PushWal(1, 6);
    fx.Store(1, on_segment(MakeBackup("f2", 200, 6), 6), "x", false);
    auto set = fx.Set();
    const RepositoryListing listing = ListRepositories(set, kSysId);
    const SyncReport wal = SyncWal(set, listing, kSysId, fx.dir.path(), false, false);
    CHECK(wal.problems.empty());
    CHECK(wal.copied[1] == 0);         // not i1's segment 4: i1 is not copied there
    CHECK(wal.below_horizon[1] == 2);  // 2 and 4
    CHECK_FALSE(fx.Open(1)->Stat(WalObjectKey(kSysId, ParseWalFileNameOrThrow(
                                                          SegmentFileName(1, 4, seg)))));
    const BackupSyncReport backups = SyncBackups(set, listing, kSysId, false, false);
    CHECK(backups.copied[1] == 0);
    REQUIRE(backups.problems.size() == 1);
    CHECK(backups.problems[0].repository == 1);
    CHECK(backups.problems[0].name == "i1");
    CHECK(Contains(backups.problems[0].message, "reference chain"));
  }
  TEST_CASE("copies from an encrypted into a keyless repository: one WARNING naming it (F13)") {
    Fixture fx;
    fx.Store(0, MakeBackup("full1", 100, 2));
    {
      auto set = fx.Set();
      CHECK(UnencryptedCopiesWarning(set, {0, 1}).empty());  // both keyed
    }
    fx.top.repositories[1].key.reset();  // a per-table key forgotten
    auto set = fx.Set();
    const BackupSyncReport report = SyncBackups(set, kSysId, false);
    REQUIRE(report.copied[1] == 1);
    const std::string warning = UnencryptedCopiesWarning(set, report.copied);
    CHECK(Contains(warning, "repository 2 (memory://" + fx.second + ") has no encryption key"));
    CHECK(Contains(warning, "stored unencrypted"));
    CHECK(UnencryptedCopiesWarning(set, {1, 0}).empty());  // nothing went into it
  }
}
