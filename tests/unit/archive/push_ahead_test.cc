// Tests for src/lib/archive/push_ahead.cc: the worker's plan, and the worker and walpush's side
// of push-ahead in one process (the detached process itself: tests/integration/core/push_ahead.sh).
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/push_ahead.h>
#include <walstore/wal_name.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "archive/spool.h"
#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::MakeSegment;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

namespace {

constexpr uint64_t kSysId = 7312345678901234567ull;
constexpr uint32_t kSegSize = 1u << 20;

std::string Seg(uint64_t n) { return SegmentFileName(1, n, kSegSize); }

// A pg_wal with segments 1..count, each .ready, in a memory repository.
struct PgWal {
  explicit PgWal(int count) : store("push-ahead-test-" + std::to_string(::getpid())) {
    ResetMemoryStorage(store);
    config.repo_url = "memory://" + store;
    config.compression = CompressionSpec{Codec::kLz4, 0};
    config.chunk_size = 64u << 10;
    config.push_ahead = 2;
    for (int i = 1; i <= count; ++i) {
      WriteFile(Path(i), MakeSegment(1, static_cast<uint64_t>(i), kSegSize, kSysId, 7));
      WriteFile(dir / ("pg_wal/archive_status/" + Seg(static_cast<uint64_t>(i)) + ".ready"), "");
    }
  }
  ~PgWal() { ResetMemoryStorage(store); }
  std::string Path(int i) const { return dir / ("pg_wal/" + Seg(static_cast<uint64_t>(i))); }
  std::string Marker(int i) const {
    return dir / ("pg_wal/.walstore-push/" + Seg(static_cast<uint64_t>(i)) + ".pushed");
  }
  void Done(int i) const {
    const std::string status = dir / ("pg_wal/archive_status/" + Seg(static_cast<uint64_t>(i)));
    REQUIRE(std::rename((status + ".ready").c_str(), (status + ".done").c_str()) == 0);
  }
  // walpush %p as walpush runs it, but never starting a worker process.
  PushResult Push(int i) {
    return PushWalFileWithPushAhead([this] { return OpenMemoryStorage(store); }, config, Path(i),
                                    {});
  }
  TempDir dir;
  std::string store;
  Config config;
};

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string Sha256Hex(const std::string& data) {
  Sha256 hash;
  hash.Update(AsBytes(data));
  return ToHex(hash.Final());
}

}  // namespace

TEST_SUITE("push_ahead") {
  TEST_CASE("the plan: the oldest push_ahead + 1 .ready segments in order, less marked or claimed") {
    const std::vector<std::string> ready = {Seg(5), Seg(3), Seg(4), Seg(7), Seg(6)};
    CHECK(PushAheadPlan(ready, {}, 2) == std::vector<std::string>{Seg(3), Seg(4), Seg(5)});
    CHECK(PushAheadPlan(ready, {Seg(3)}, 2) == std::vector<std::string>{Seg(4), Seg(5)});
    CHECK(PushAheadPlan(ready, {Seg(3), Seg(4), Seg(5)}, 2).empty());
    CHECK(PushAheadPlan(ready, {Seg(4)}, 8) ==
          std::vector<std::string>{Seg(3), Seg(5), Seg(6), Seg(7)});
    CHECK(PushAheadPlan({}, {}, 8).empty());
    CHECK(PushAheadPlan(ready, {}, 0) == std::vector<std::string>{Seg(3)});
    // A later timeline sorts after: PostgreSQL archives in name order too.
    const std::string tli2 = SegmentFileName(2, 1, kSegSize);
    CHECK(PushAheadPlan({tli2, Seg(9)}, {}, 1) == std::vector<std::string>{Seg(9), tli2});
  }

  TEST_CASE("the worker pushes the window and marks it; walpush takes the markers") {
    PgWal wal(5);
    const PushResult first = wal.Push(1);
    CHECK(first.outcome == PushOutcome::kStored);
    // No worker runs (none is started here): walpush leaves no claim behind.
    CHECK_FALSE(Exists(wal.dir / ("pg_wal/.walstore-push/" + Seg(1) + ".claim")));
    wal.Done(1);
    auto storage = OpenMemoryStorage(wal.store);
    // A worker now: the window is the oldest push_ahead + 1 = 3 .ready segments, 2..4.
    CHECK(RunPushAheadWorker(*storage, wal.config, wal.Path(1)) == 3);
    CHECK(Exists(wal.Marker(2)));
    CHECK(Exists(wal.Marker(3)));
    CHECK(Exists(wal.Marker(4)));
    CHECK_FALSE(Exists(wal.Marker(5)));
    CHECK(storage->Stat(WalObjectKey(kSysId, ParseWalFileNameOrThrow(Seg(4)))).has_value());
    const std::string marker = ReadFile(wal.Marker(2));
    CHECK(marker.find("repository=memory://" + wal.store + "\n") == 0);
    CHECK(marker.find("segment=" + Seg(2) + "\n") != std::string::npos);

    // The next walpush takes the marker: no repository needed, same checksum as a push.
    const PushResult second = wal.Push(2);
    CHECK(second.outcome == PushOutcome::kPushedAhead);
    CHECK(second.key == WalObjectKey(kSysId, ParseWalFileNameOrThrow(Seg(2))));
    CHECK(second.plaintext_size == kSegSize);
    CHECK(second.stored_size > 0);
    CHECK(ToHex(second.sha256) == Sha256Hex(ReadFile(wal.Path(2))));
    CHECK_FALSE(Exists(wal.Marker(2)));  // used once
    CHECK_FALSE(Exists(wal.dir / ("pg_wal/.walstore-push/" + Seg(2) + ".claim")));
    wal.Done(2);

    // A marker for a file that is no longer the same (rewritten: another inode) is not trusted.
    const std::string content = ReadFile(wal.Path(3));
    REQUIRE(std::remove(wal.Path(3).c_str()) == 0);
    WriteFile(wal.Path(3), content);
    const PushResult third = wal.Push(3);
    CHECK(third.outcome == PushOutcome::kAlreadyArchived);
    CHECK_FALSE(Exists(wal.Marker(3)));
  }

  TEST_CASE("the worker stops at a file it must not archive, leaving no marker for it") {
    PgWal wal(3);
    WriteFile(wal.Path(2), std::string(kSegSize, 'x'));  // not WAL
    wal.Push(1);
    wal.Done(1);
    auto storage = OpenMemoryStorage(wal.store);
    CHECK_CODE(RunPushAheadWorker(*storage, wal.config, wal.Path(1)), ErrorCode::kNotWal);
    CHECK_FALSE(Exists(wal.Marker(2)));  // (the other uploader may have pushed segment 3)
    CHECK_CODE(wal.Push(2), ErrorCode::kNotWal);
  }

  TEST_CASE("a worker of other settings stops, and its markers do not count") {
    PgWal wal(4);
    wal.Push(1);  // publishes this configuration's settings
    wal.Done(1);
    Config other = wal.config;
    other.compression = CompressionSpec{Codec::kZstd, 3};
    auto storage = OpenMemoryStorage(wal.store);
    CHECK(RunPushAheadWorker(*storage, other, wal.Path(1)) == 0);  // stops at once
    CHECK_FALSE(Exists(wal.Marker(2)));
    // Markers written under the old settings are not trusted by the new ones.
    CHECK(RunPushAheadWorker(*storage, wal.config, wal.Path(1)) == 3);
    REQUIRE(Exists(wal.Marker(2)));
    std::swap(wal.config, other);
    CHECK(wal.Push(2).outcome == PushOutcome::kAlreadyArchived);
    CHECK_FALSE(Exists(wal.Marker(2)));
  }

  TEST_CASE("walpush does not wait for a worker another walpush already waited for in vain") {
    PgWal wal(3);
    wal.Push(1);
    wal.Done(1);
    const std::string spool = wal.dir / "pg_wal/.walstore-push";
    // A live worker (this test holds its lock) with segment 2 in its plan that never comes.
    const SpoolDir spool_dir(spool, false);
    const SpoolLock stuck_worker(spool_dir);
    REQUIRE(stuck_worker.held());
    WriteFile(spool + "/plan", Seg(2) + "\n" + Seg(3) + "\n");
    WriteFile(spool + "/stalled", "");
    const auto start = std::chrono::steady_clock::now();
    CHECK(wal.Push(2).outcome == PushOutcome::kStored);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }

  TEST_CASE("a spool that is not this user's private directory: warning, plain push") {
    PgWal wal(2);
    const std::string spool = wal.dir / "pg_wal/.walstore-push";
    SUBCASE("a symlink") {
      std::filesystem::create_directories(wal.dir / "elsewhere");
      std::filesystem::create_directory_symlink(wal.dir / "elsewhere", spool);
    }
    SUBCASE("writable by others") {
      std::filesystem::create_directories(spool);
      REQUIRE(::chmod(spool.c_str(), 0777) == 0);
    }
    CHECK(MakeSpoolDir(spool) != "");
    CHECK(wal.Push(1).outcome == PushOutcome::kStored);
    CHECK_FALSE(Exists(spool + "/settings"));
    auto storage = OpenMemoryStorage(wal.store);
    CHECK_CODE(RunPushAheadWorker(*storage, wal.config, wal.Path(1)), ErrorCode::kLocalIo);
  }

  TEST_CASE("push_ahead = 0 and files other than segments take the plain path") {
    PgWal wal(2);
    wal.config.push_ahead = 0;
    CHECK(wal.Push(1).outcome == PushOutcome::kStored);
    CHECK_FALSE(Exists(wal.dir / "pg_wal/.walstore-push"));
    auto storage = OpenMemoryStorage(wal.store);
    CHECK(RunPushAheadWorker(*storage, wal.config, wal.Path(1)) == 0);
    wal.config.push_ahead = 2;
    wal.config.system_id = kSysId;
    WriteFile(wal.dir / "pg_wal/00000002.history", "1\t0/3000000\tno recovery target specified\n");
    const PushResult history = PushWalFileWithPushAhead(
        [&] { return OpenMemoryStorage(wal.store); }, wal.config, wal.dir / "pg_wal/00000002.history", {});
    CHECK(history.outcome == PushOutcome::kStored);
    CHECK_FALSE(Exists(wal.dir / "pg_wal/.walstore-push"));
  }
}
