// Tests for src/lib/archive/spool.cc and the spool side of prefetch.cc: a
// spool that is a symbolic link or not private is never used or cleaned, a
// spooled segment that vanishes before walfetch moves it is fetched from the
// repository instead, and a walfetch asked for the segment the read-ahead
// worker is fetching waits for that copy (bounded; not for a dead worker).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <walstore/archive.h>
#include <walstore/prefetch.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "archive/spool.h"
#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::Exists;
using walstore::test::MakeSegment;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

namespace {

constexpr uint64_t kSysId = 7312345678901234567ull;
constexpr uint32_t kSegSize = 1u << 20;

void MakeOld(const std::string& path) {
  const struct timeval old[2] = {{std::time(nullptr) - 3600, 0}, {std::time(nullptr) - 3600, 0}};
  REQUIRE(lutimes(path.c_str(), old) == 0);
}

// pg_wal with a read-ahead spool beside it and a memory repository holding
// segment 1.
struct Recovery {
  Recovery() : store("spool-test-" + std::to_string(::getpid())) {
    ResetMemoryStorage(store);
    config.repo_url = "memory://" + store;
    config.compression = CompressionSpec{Codec::kLz4, 0};
    config.system_id = kSysId;
    config.prefetch = 2;
    std::filesystem::create_directories(dir / "pg_wal");
    auto storage = OpenMemoryStorage(store);
    PushWalFile(*storage, config, Staged());
  }
  ~Recovery() { ResetMemoryStorage(store); }
  std::string Staged() const {
    const std::string path = dir / ("staged/" + name);
    WriteFile(path, segment);
    return path;
  }
  std::string Spool() const { return dir / "pg_wal/.walstore-prefetch"; }
  // The spool as walfetch makes it: a private directory.
  std::string PrivateSpool() const {
    std::filesystem::create_directories(Spool());
    REQUIRE(chmod(Spool().c_str(), 0700) == 0);
    return Spool();
  }
  // A spooled copy of segment 1 that passes every check, in `spool_dir`.
  void SpoolSegment(const std::string& spool_dir) const {
    WriteFile(spool_dir + "/origin", SpoolOriginText(config, kSysId));
    WriteFile(spool_dir + "/" + name, segment);
  }
  TempDir dir;
  std::string store;
  Config config;
  std::string name = SegmentFileName(1, 1, kSegSize);
  std::string segment = MakeSegment(1, 1, kSegSize, kSysId, 3);
};

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A read-ahead worker as the waiting walfetch sees it: it holds the spool's
// lock and names the segment it is fetching; Spool() publishes its copy,
// Die() lets go of the lock (as a killed process does).
struct FakeWorker {
  explicit FakeWorker(const Recovery& r, const std::string& fetching)
      : recovery(r), spool(r.PrivateSpool(), true), lock(std::make_unique<SpoolLock>(spool)) {
    REQUIRE(lock->held());
    WriteFile(r.Spool() + "/origin", SpoolOriginText(r.config, kSysId));
    WriteFile(r.Spool() + "/fetching", fetching + "\n");
  }
  void Spool() const {  // temp file + rename, as the worker publishes
    WriteFile(recovery.Spool() + "/tmp.part", recovery.segment);
    std::filesystem::rename(recovery.Spool() + "/tmp.part", recovery.Spool() + "/" + recovery.name);
  }
  void Die() { lock.reset(); }
  const Recovery& recovery;
  SpoolDir spool;
  std::unique_ptr<SpoolLock> lock;
};

// FetchWalFile of segment 1 into pg_wal/RECOVERYXLOG while, 300 ms into
// it, another thread does what the worker does (`worker_step`); the result
// and how long the call took, in seconds.
std::pair<FetchResult, double> FetchAfter(const Recovery& r, const std::function<void()>& worker_step) {
  auto storage = OpenMemoryStorage(r.store);
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    worker_step();
  });
  const auto start = Clock::now();
  const FetchResult fetched = FetchWalFile(*storage, r.config, r.name, r.dir / "pg_wal/RECOVERYXLOG");
  const double waited = SecondsSince(start);
  later.join();
  return {fetched, waited};
}

}  // namespace

TEST_SUITE("spool") {
  TEST_CASE("walfetch asked for the segment the worker is fetching waits for that copy") {
    Recovery r;
    FakeWorker worker(r, r.name);
    const auto [fetched, waited] = FetchAfter(r, [&] { worker.Spool(); });
    CHECK(fetched.prefetched);  // the worker's copy, not a second fetch from the repository
    CHECK(ReadFile(r.dir / "pg_wal/RECOVERYXLOG") == r.segment);
    CHECK(waited >= 0.25);
    CHECK(waited < 10);
  }

  TEST_CASE("a worker that dies mid-fetch ends the wait at once; walfetch fetches itself") {
    Recovery r;
    FakeWorker worker(r, r.name);
    const auto [fetched, waited] = FetchAfter(r, [&] { worker.Die(); });
    CHECK(fetched.outcome == FetchOutcome::kRestored);
    CHECK_FALSE(fetched.prefetched);
    CHECK(ReadFile(r.dir / "pg_wal/RECOVERYXLOG") == r.segment);
    CHECK(waited >= 0.25);
    CHECK(waited < 10);  // far below kPrefetchMaxWait
  }

  TEST_CASE("a stuck worker is waited for at most max_wait, and later calls do not wait") {
    Recovery r;
    FakeWorker worker(r, r.name);
    const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
    const WalFileName name = ParseWalFileNameOrThrow(r.name);
    auto start = Clock::now();
    CHECK(TakePrefetchedSegment(r.config, kSysId, name, dest, std::chrono::milliseconds(300)) == 0);
    const double first = SecondsSince(start);
    CHECK(first >= 0.25);
    CHECK(first < 10);
    CHECK(Exists(r.Spool() + "/stalled"));
    start = Clock::now();
    CHECK(TakePrefetchedSegment(r.config, kSysId, name, dest, std::chrono::seconds(20)) == 0);
    CHECK(SecondsSince(start) < 5);
    CHECK_FALSE(Exists(dest));
  }

  // With two segments in flight, "fetching" names both, one a line; the
  // segment asked for is the second of them.
  std::string TwoInFlight(const Recovery& r) { return SegmentFileName(1, 0, kSegSize) + "\n" + r.name; }

  TEST_CASE("asked for either of two segments in flight, walfetch waits for the worker's copy") {
    Recovery r;
    FakeWorker worker(r, TwoInFlight(r));
    const auto [fetched, waited] = FetchAfter(r, [&] { worker.Spool(); });
    CHECK(fetched.prefetched);  // not fetched a second time
    CHECK(ReadFile(r.dir / "pg_wal/RECOVERYXLOG") == r.segment);
    CHECK(waited >= 0.25);
    CHECK(waited < 10);
  }

  TEST_CASE("a worker killed with two in flight: its partial copy is never served, walfetch fetches") {
    Recovery r;
    FakeWorker worker(r, TwoInFlight(r));
    // What a killed fetch leaves: a temp file beside the name, never the name.
    WriteFile(r.Spool() + "/" + r.name + ".tmp", r.segment.substr(0, 1000));
    const auto [fetched, waited] = FetchAfter(r, [&] { worker.Die(); });
    CHECK(fetched.outcome == FetchOutcome::kRestored);
    CHECK_FALSE(fetched.prefetched);
    CHECK(ReadFile(r.dir / "pg_wal/RECOVERYXLOG") == r.segment);
    CHECK(waited >= 0.25);  // it waited for the worker while it lived
    CHECK(waited < 10);     // and not a moment after
  }

  TEST_CASE("a stuck worker with two in flight is waited for at most max_wait") {
    Recovery r;
    FakeWorker worker(r, TwoInFlight(r));
    const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
    const auto start = Clock::now();
    CHECK(TakePrefetchedSegment(r.config, kSysId, ParseWalFileNameOrThrow(r.name), dest,
                                std::chrono::milliseconds(300)) == 0);
    CHECK(SecondsSince(start) >= 0.25);
    CHECK(SecondsSince(start) < 10);
    CHECK(Exists(r.Spool() + "/stalled"));
  }

  TEST_CASE("no wait when the worker fetches another segment or no worker runs") {
    Recovery r;
    const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
    const WalFileName name = ParseWalFileNameOrThrow(r.name);
    {
      FakeWorker worker(r, SegmentFileName(1, 2, kSegSize));
      const auto start = Clock::now();
      CHECK(TakePrefetchedSegment(r.config, kSysId, name, dest, std::chrono::seconds(20)) == 0);
      CHECK(SecondsSince(start) < 5);
    }
    FakeWorker dead(r, r.name);
    dead.Die();
    const auto start = Clock::now();
    CHECK(TakePrefetchedSegment(r.config, kSysId, name, dest, std::chrono::seconds(20)) == 0);
    CHECK(SecondsSince(start) < 5);
    CHECK_FALSE(Exists(r.Spool() + "/stalled"));
  }

  TEST_CASE("a spool that is a symlink, not ours or writable by others is unsafe; absent is not") {
    TempDir tmp;
    CHECK(SpoolDir(tmp / "none", false).state() == SpoolDir::State::kAbsent);
    CHECK(SpoolDir(tmp / "made", true).state() == SpoolDir::State::kUsable);
    std::filesystem::create_directories(tmp / "elsewhere");
    std::filesystem::create_directory_symlink(tmp / "elsewhere", tmp / "link");
    const SpoolDir link(tmp / "link", true);
    CHECK(link.state() == SpoolDir::State::kUnsafe);
    CHECK(test::Contains(link.problem(), "symbolic link"));
    std::filesystem::create_directories(tmp / "open");
    for (mode_t mode : {0770, 0702, 0777}) {
      REQUIRE(chmod((tmp / "open").c_str(), mode) == 0);
      CHECK(SpoolDir(tmp / "open", false).state() == SpoolDir::State::kUnsafe);
    }
    WriteFile(tmp / "file", "");
    CHECK(SpoolDir(tmp / "file", true).state() == SpoolDir::State::kUnsafe);
  }

  TEST_CASE("operations go through the descriptor: swapping the spool for a link changes nothing") {
    TempDir tmp;
    std::filesystem::create_directories(tmp / "elsewhere");
    const SpoolDir spool(tmp / "spool", true);
    REQUIRE(spool.usable());
    REQUIRE(std::rename((tmp / "spool").c_str(), (tmp / "moved").c_str()) == 0);
    std::filesystem::create_directory_symlink(tmp / "elsewhere", tmp / "spool");
    spool.Write("state", "x");
    CHECK(ReadFile(tmp / "moved/state") == "x");
    CHECK(test::ListTree(tmp / "elsewhere").empty());
  }

  TEST_CASE("walpush does not clean a read-ahead spool that is a symlink or not private") {
    Recovery r;
    const std::string victim_dir = r.dir / "victim";
    std::filesystem::create_directories(victim_dir);
    WriteFile(victim_dir + "/old-file", "precious");
    MakeOld(victim_dir + "/old-file");
    SUBCASE("a symlink") {
      std::filesystem::create_directory_symlink(victim_dir, r.Spool());
      RemoveStalePrefetch(r.dir / ("pg_wal/" + r.name));
      CHECK(ReadFile(victim_dir + "/old-file") == "precious");
    }
    SUBCASE("group-writable") {
      std::filesystem::create_directories(r.Spool());
      WriteFile(r.Spool() + "/old-file", "precious");
      MakeOld(r.Spool() + "/old-file");
      REQUIRE(chmod(r.Spool().c_str(), 0770) == 0);
      RemoveStalePrefetch(r.dir / ("pg_wal/" + r.name));
      CHECK(ReadFile(r.Spool() + "/old-file") == "precious");
    }
    SUBCASE("private: old files go (the clean-up still works)") {
      r.PrivateSpool();
      WriteFile(r.Spool() + "/old-file", "stale");
      MakeOld(r.Spool() + "/old-file");
      RemoveStalePrefetch(r.dir / ("pg_wal/" + r.name));
      CHECK_FALSE(Exists(r.Spool() + "/old-file"));
    }
  }

  TEST_CASE("walfetch neither serves from nor takes files out of a symlinked spool") {
    Recovery r;
    const std::string victim_dir = r.dir / "victim";
    std::filesystem::create_directories(victim_dir);
    REQUIRE(chmod(victim_dir.c_str(), 0700) == 0);
    r.SpoolSegment(victim_dir);
    std::filesystem::create_directory_symlink(victim_dir, r.Spool());
    auto storage = OpenMemoryStorage(r.store);
    const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
    const FetchResult fetched = FetchWalFile(*storage, r.config, r.name, dest);
    CHECK(fetched.outcome == FetchOutcome::kRestored);
    CHECK_FALSE(fetched.prefetched);
    CHECK(ReadFile(dest) == r.segment);
    CHECK(ReadFile(victim_dir + "/" + r.name) == r.segment);  // left where it was
  }

  TEST_CASE("a spooled segment that vanishes before the rename is fetched from the repository") {
    Recovery r;
    r.SpoolSegment(r.PrivateSpool());
    auto storage = OpenMemoryStorage(r.store);
    const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
    int calls = 0;
    SpoolDir::SetBeforeMoveOutHookForTesting([&](const std::string& name) {
      ++calls;
      CHECK(name == r.name);
      REQUIRE(std::remove((r.Spool() + "/" + name).c_str()) == 0);  // another walfetch took it
    });
    FetchResult fetched;
    CHECK_NOTHROW(fetched = FetchWalFile(*storage, r.config, r.name, dest));
    SpoolDir::SetBeforeMoveOutHookForTesting(nullptr);
    CHECK(calls == 1);
    CHECK(fetched.outcome == FetchOutcome::kRestored);
    CHECK_FALSE(fetched.prefetched);
    CHECK(ReadFile(dest) == r.segment);
  }

  TEST_CASE("without interference the spooled segment is served") {
    Recovery r;
    r.SpoolSegment(r.PrivateSpool());
    auto storage = OpenMemoryStorage(r.store);
    const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
    const FetchResult fetched = FetchWalFile(*storage, r.config, r.name, dest);
    CHECK(fetched.prefetched);
    CHECK(ReadFile(dest) == r.segment);
    CHECK_FALSE(Exists(r.Spool() + "/" + r.name));
  }

  TEST_CASE("a segment spooled under other reader settings is not served: removed key, endpoint") {
    for (int change = 0; change < 3; ++change) {
      CAPTURE(change);
      Recovery r;
      Config worker_config = r.config;  // what the worker read with
      if (change == 0) {
        // An old key the operator has since removed (it leaked): what it authenticated goes.
        std::array<uint8_t, 32> bytes{};
        bytes.fill(0x5a);
        worker_config.old_keys.emplace_back(bytes);
      } else if (change == 1) {
        worker_config.s3.endpoint = "https://old-store.example:9000";  // same URL, other store
      } else {
        worker_config.allow_plaintext_objects = true;  // a finished migration
      }
      REQUIRE(SpoolOriginText(worker_config, kSysId) != SpoolOriginText(r.config, kSysId));
      WriteFile(r.PrivateSpool() + "/" + r.name, r.segment);
      WriteFile(r.Spool() + "/origin", SpoolOriginText(worker_config, kSysId));
      auto storage = OpenMemoryStorage(r.store);
      const std::string dest = r.dir / "pg_wal/RECOVERYXLOG";
      const FetchResult fetched = FetchWalFile(*storage, r.config, r.name, dest);
      CHECK(fetched.outcome == FetchOutcome::kRestored);
      CHECK_FALSE(fetched.prefetched);  // from the repository, with today's settings
      CHECK(ReadFile(dest) == r.segment);
      CHECK_FALSE(Exists(r.Spool() + "/" + r.name));  // the other origin's copy is gone
    }
  }
}
