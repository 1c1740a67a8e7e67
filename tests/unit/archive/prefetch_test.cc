// Tests for the read-ahead worker of src/lib/archive/prefetch.cc
// (RunPrefetchWorker): it fetches kPrefetchParallelFetches segments of its
// window at a time, names every segment in flight in "fetching", publishes
// each when it is complete, and stops claiming segments after a miss.  (The
// waiting walfetch's side is in spool_test.cc.)
#include <doctest/doctest.h>
#include <walstore/archive.h>
#include <walstore/prefetch.h>
#include <walstore/repositories.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::Exists;
using walstore::test::MakeSegment;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

namespace {

constexpr uint64_t kSysId = 7312345678901234568ull;
constexpr uint32_t kSegSize = 1u << 20;

using HookedReads = walstore::test::ForwardingStorage;

// A memory repository holding segments of timeline 1, a data directory
// beside it, and a worker over them for the window after segment 1.
struct Window {
  Window() : store("prefetch-test-" + std::to_string(::getpid())) {
    ResetMemoryStorage(store);
    config.repo_url = "memory://" + store;
    config.compression = CompressionSpec{Codec::kLz4, 0};
    config.system_id = kSysId;
    config.prefetch = 6;
    storage = std::make_unique<HookedReads>(OpenMemoryStorage(store));
    std::filesystem::create_directories(dir / "pg_wal");
  }
  ~Window() { ResetMemoryStorage(store); }
  static std::string Name(uint64_t segment) { return SegmentFileName(1, segment, kSegSize); }
  void Archive(uint64_t segment) {
    const std::string path = dir / ("staged/" + Name(segment));
    WriteFile(path, MakeSegment(1, segment, kSegSize, kSysId, 5));
    PushWalFile(*storage, config, path);
  }
  int Run(std::chrono::milliseconds linger = std::chrono::milliseconds(0)) {
    RepositorySet set(config, *storage);
    return RunPrefetchWorker(set, kSysId, ParseWalFileNameOrThrow(Name(1)), kSegSize, Dest(),
                             linger);
  }
  std::string Dest() const { return dir / "pg_wal/RECOVERYXLOG"; }
  // What walfetch does once it restored `segment` (served from the spool):
  // names it in "wanted" and starts a worker unless one runs.  Should one
  // start after all, it is this test program with a filter that runs no
  // test.
  bool Asked(uint64_t segment, const Config& reader) {
    std::filesystem::remove(Spool() + "/" + Name(segment));  // moved onto %p
    return StartPrefetchWorker(reader, kSysId, ParseWalFileNameOrThrow(Name(segment)), Dest(),
                               {"--test-case=no such test"});
  }
  std::string Spool() const { return dir / "pg_wal/.walstore-prefetch"; }
  bool Spooled(uint64_t segment) const {
    return Exists(Spool() + "/" + Name(segment)) &&
           ReadFile(Spool() + "/" + Name(segment)) == MakeSegment(1, segment, kSegSize, kSysId, 5);
  }
  TempDir dir;
  std::string store;
  Config config;
  std::unique_ptr<HookedReads> storage;
};

// The segment a WAL object key names, or 0 for other keys.
uint64_t SegmentOf(const std::string& key) {
  for (uint64_t segment = 2; segment < 10; ++segment) {
    if (key.ends_with(Window::Name(segment))) return segment;
  }
  return 0;
}

// Lets reads pass only once `count` of them wait together (or after 3 s,
// so that a worker fetching one at a time ends the test instead of hanging
// it); records the most that ever waited together and what "fetching" said
// then.
struct Rendezvous {
  explicit Rendezvous(size_t count) : count(count) {}
  void Arrive(const std::string& spool) {
    std::unique_lock lock(mutex);
    ++waiting;
    most_together = std::max(most_together, waiting);
    if (waiting >= count) {
      fetching_when_met = ReadFile(spool + "/fetching");
      met.notify_all();
    } else {
      met.wait_for(lock, std::chrono::seconds(3), [&] { return waiting >= count; });
    }
  }
  const size_t count;
  std::mutex mutex;
  std::condition_variable met;
  size_t waiting = 0;
  size_t most_together = 0;
  std::string fetching_when_met;
};

using Clock = std::chrono::steady_clock;

// Waits up to 20 s for `done`.
bool Eventually(const std::function<bool()>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TEST_SUITE("prefetch") {
  TEST_CASE("the worker has two segments in flight at once and names both in \"fetching\"") {
    static_assert(kPrefetchParallelFetches == 2);
    Window w;
    for (uint64_t s = 2; s <= 7; ++s) w.Archive(s);
    Rendezvous first_two(2);
    w.storage->on_open = [&](const std::string& key) {
      const uint64_t segment = SegmentOf(key);
      if (segment == 2 || segment == 3) first_two.Arrive(w.Spool());
    };
    CHECK(w.Run() == 6);
    CHECK(first_two.most_together == 2);
    // Both in flight, in window order, one a line.
    CHECK(first_two.fetching_when_met == Window::Name(2) + "\n" + Window::Name(3) + "\n");
    for (uint64_t s = 2; s <= 7; ++s) CHECK(w.Spooled(s));
    CHECK_FALSE(Exists(w.Spool() + "/fetching"));  // nothing in flight once it ended
  }

  TEST_CASE("a miss stops the window; the segment in flight beside it is still spooled") {
    Window w;
    for (uint64_t s : {2, 3, 5, 6, 7}) w.Archive(s);  // 4 is missing
    // The miss of 4 is answered only once 5 is in flight beside it.
    Rendezvous four_and_five(2);
    w.storage->on_open = [&](const std::string& key) {
      const uint64_t segment = SegmentOf(key);
      if (segment == 4 || segment == 5) four_and_five.Arrive(w.Spool());
    };
    CHECK(w.Run() == 3);
    CHECK(four_and_five.most_together == 2);
    CHECK(w.Spooled(2));
    CHECK(w.Spooled(3));
    CHECK_FALSE(Exists(w.Spool() + "/" + Window::Name(4)));
    CHECK(w.Spooled(5));  // verified and complete: harmless, walfetch checks it by name
    CHECK_FALSE(Exists(w.Spool() + "/" + Window::Name(6)));  // nothing claimed after the miss
    CHECK_FALSE(Exists(w.Spool() + "/" + Window::Name(7)));
  }

  TEST_CASE("an error in one fetch stops the window and is thrown; nothing partial is spooled") {
    Window w;
    for (uint64_t s = 2; s <= 7; ++s) w.Archive(s);
    Rendezvous three_and_four(2);
    w.storage->on_open = [&](const std::string& key) {
      const uint64_t segment = SegmentOf(key);
      if (segment == 3 || segment == 4) three_and_four.Arrive(w.Spool());
      if (segment == 3) throw Error(ErrorCode::kNetwork, "connection reset");
    };
    CHECK_CODE(w.Run(), ErrorCode::kNetwork);
    CHECK(three_and_four.most_together == 2);
    CHECK(w.Spooled(2));
    CHECK_FALSE(Exists(w.Spool() + "/" + Window::Name(3)));
    CHECK(w.Spooled(4));
    for (uint64_t s : {5, 6, 7}) CHECK_FALSE(Exists(w.Spool() + "/" + Window::Name(s)));
    CHECK_FALSE(Exists(w.Spool() + "/fetching"));
  }

  TEST_CASE("a lingering worker follows walfetch's calls, then ends after its idle limit") {
    Window w;
    w.config.prefetch = 2;
    for (uint64_t s = 2; s <= 5; ++s) w.Archive(s);
    int fetched = -1;
    Clock::time_point ended;
    std::thread worker([&] {
      fetched = w.Run(std::chrono::milliseconds(1500));
      ended = Clock::now();
    });
    REQUIRE(Eventually([&] { return w.Spooled(2) && w.Spooled(3); }));
    // walfetch of 2: the running worker is not doubled, it moves its window.
    CHECK_FALSE(w.Asked(2, w.config));
    CHECK(Eventually([&] { return w.Spooled(4); }));
    CHECK_FALSE(w.Asked(3, w.config));
    CHECK(Eventually([&] { return w.Spooled(5); }));
    const auto last_call = Clock::now();
    worker.join();
    CHECK(fetched == 4);
    const double idle = std::chrono::duration<double>(ended - last_call).count();
    CHECK(idle >= 1.0);  // it waited for more calls ...
    CHECK(idle < 10);    // ... and not much longer than its limit
    CHECK(ReadFile(w.Spool() + "/wanted").starts_with(Window::Name(3) + "\n"));
  }

  TEST_CASE("a lingering worker ends at once when walfetch reads with other settings") {
    Window w;
    w.config.prefetch = 2;
    for (uint64_t s = 2; s <= 5; ++s) w.Archive(s);
    std::thread worker([&] { w.Run(std::chrono::seconds(30)); });
    REQUIRE(Eventually([&] { return w.Spooled(2) && w.Spooled(3); }));
    Config other = w.config;
    other.s3.endpoint = "https://elsewhere.example";  // another store behind the same URL
    const auto start = Clock::now();
    w.Asked(2, other);
    worker.join();
    CHECK(SecondsSince(start) < 10);  // far below its 30 s
    CHECK_FALSE(Exists(w.Spool() + "/" + Window::Name(4)));
  }

  TEST_CASE("a miss ends the worker without lingering") {
    Window w;
    w.config.prefetch = 3;
    w.Archive(2);  // 3 is missing
    const auto start = Clock::now();
    CHECK(w.Run(std::chrono::seconds(30)) == 1);
    CHECK(SecondsSince(start) < 10);
  }
}
