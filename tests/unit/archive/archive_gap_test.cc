// Tests for src/lib/archive/archive_gap.cc: walfetch never answers "missing"
// for a segment when later WAL of its timeline is archived (a hole), except
// where PostgreSQL will not end recovery on it (standby mode, the segment in
// pg_wal); and Storage::ListObjectsAfter, which it is built on, for the memory
// and posix backends.
#include "archive/archive_gap.h"

#include <doctest/doctest.h>
#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/repositories.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <walstore/config.h>

#include <atomic>
#include <ctime>
#include <string>

#include "storage/memory/memory_storage.h"
#include "storage/posix/posix_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::CaptureStderr;
using walstore::test::Contains;
using walstore::test::Join;
using walstore::test::PutObject;
using walstore::test::TempDir;
using walstore::test::ThrownMessage;
using walstore::test::WriteFile;

namespace {

constexpr uint64_t kSysId = 7312;

std::string FreshStoreName() {
  static std::atomic<int> n{0};
  return "archive-gap-test-" + std::to_string(n++);
}

std::string Keys(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> keys;
  for (const auto& object : objects) keys.push_back(object.key);
  return Join(keys);
}

std::string KeyOf(const std::string& name) {
  return WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
}

// Two memory repositories (only the first is used unless `two`), and a data
// directory to run in.
struct Fixture {
  explicit Fixture(bool two = false) {
    top.system_id = kSysId;
    top.prefetch = 0;
    for (int i = 0; i < (two ? 2 : 1); ++i) {
      names.push_back(FreshStoreName());
      Config c = top;
      c.repo_url = "memory://" + names.back();
      top.repositories.push_back(c);
    }
  }
  ~Fixture() {
    for (const auto& name : names) ResetMemoryStorage(name);
  }
  void Put(size_t repo, const std::string& name) {
    REQUIRE(PutObject(*OpenMemoryStorage(names[repo]), KeyOf(name), "x") == CommitResult::kCreated);
  }
  // What RefuseArchiveGap does for `missing`: "" when it returns, else the error's code name.
  std::string Check(const std::string& missing) {
    RepositorySet set(top);
    try {
      // An hour on: every object is older than kHoleSettleSeconds.
      RefuseArchiveGap(set, kSysId, ParseWalFileNameOrThrow(missing), dir.path(),
                       std::time(nullptr) + 3600);
    } catch (const Error& error) {
      last_error = error.what();
      return InfoFor(error.code()).name;
    }
    return "";
  }
  Config top;
  std::vector<std::string> names;
  TempDir dir;
  std::string last_error;
};

}  // namespace

TEST_SUITE("archive_gap") {
  TEST_CASE("a later segment of the timeline makes the miss a hole: archive_gap, naming both") {
    Fixture f;
    f.Put(0, "000000010000000000000001");
    f.Put(0, "000000010000000000000002");
    f.Put(0, "000000010000000000000005");
    CHECK(f.Check("000000010000000000000003") == "archive_gap");
    CHECK(Contains(f.last_error, "000000010000000000000003 is in no repository"));
    CHECK(Contains(f.last_error, "holds 000000010000000000000005, later WAL of the same timeline"));
    CHECK(f.Check("000000010000000000000004") == "archive_gap");
    // The end of the archive is no hole.
    CHECK(f.Check("000000010000000000000006").empty());
    CHECK(f.Check("0000000100000001000000AB").empty());
  }

  TEST_CASE("a hole across the timeline's directories (another log number) is found") {
    Fixture f;
    f.Put(0, "0000000100000000000000FE");
    f.Put(0, "000000010000000200000007");
    CHECK(f.Check("0000000100000000000000FF") == "archive_gap");
    CHECK(f.Check("000000010000000100000000") == "archive_gap");
    CHECK(f.Check("000000010000000200000008").empty());
  }

  TEST_CASE("no hole: other timelines, .partial, .backup and history files after the miss") {
    Fixture f;
    f.Put(0, "000000010000000000000001");
    // A promotion archives the .partial of the segment it never finished.
    f.Put(0, "000000010000000000000002.partial");
    f.Put(0, "000000010000000000000002.00000028.backup");
    f.Put(0, "00000002.history");
    f.Put(0, "000000020000000000000002");
    f.Put(0, "000000020000000000000003");
    f.Put(0, "000000110000000000000009");  // timeline 0x11 shares no directory prefix with 1
    CHECK(f.Check("000000010000000000000002").empty());
    CHECK(f.Check("000000010000000000000003").empty());
    // Timeline 2 before its first segment here: PostgreSQL does not ask for
    // it, but were it asked, later WAL of timeline 2 is a hole.
    CHECK(f.Check("000000020000000000000001") == "archive_gap");
    CHECK(f.Check("000000020000000000000004").empty());
  }

  TEST_CASE("a later .partial or .backup proves the timeline went past the miss") {
    Fixture f;
    f.Put(0, "000000010000000000000005.partial");
    CHECK(f.Check("000000010000000000000004") == "archive_gap");
    Fixture g;
    g.Put(0, "000000010000000000000005.00000028.backup");
    CHECK(g.Check("000000010000000000000004") == "archive_gap");
  }

  TEST_CASE("many .partial / .backup files before the later segment: still found (paged)") {
    Fixture f;
    for (int i = 0; i < 40; ++i) f.Put(0, fmt::format("000000010000000000000003.{:08X}.backup", i));
    f.Put(0, "000000010000000000000004");
    CHECK(f.Check("000000010000000000000003") == "archive_gap");
  }

  TEST_CASE("only segments count: history, .partial and .backup requests are never refused") {
    Fixture f;
    f.Put(0, "000000010000000000000005");
    CHECK(f.Check("000000010000000000000003.partial").empty());
    CHECK(f.Check("000000010000000000000003.00000028.backup").empty());
    CHECK(f.Check("00000003.history").empty());
  }

  TEST_CASE("standby mode waits with a WARNING; the segment in pg_wal is read from there") {
    Fixture f;
    f.Put(0, "000000010000000000000005");
    WriteFile(f.dir / "pg_wal/000000010000000000000003", "local copy");
    CHECK(f.Check("000000010000000000000003").empty());
    CHECK(f.Check("000000010000000000000004") == "archive_gap");
    WriteFile(f.dir / "standby.signal", "");
    CaptureStderr capture;
    CHECK(f.Check("000000010000000000000004").empty());
    CHECK(Contains(capture.Text(), "WARNING:  000000010000000000000004 is in no repository, but "));
    CHECK(Contains(capture.Text(), "this standby waits for 000000010000000000000004"));
  }

  TEST_CASE("several repositories: a later segment in any of them is a hole") {
    Fixture f(true);
    f.Put(0, "000000010000000000000001");
    f.Put(1, "000000010000000000000004");
    CHECK(f.Check("000000010000000000000002") == "archive_gap");
    CHECK(Contains(f.last_error, "repository 2"));
    CHECK(f.Check("000000010000000000000005").empty());
  }

  TEST_CASE("later WAL stored in the last 10 minutes (push-ahead's window) proves a hole only "
            "once older, or beyond push-ahead's reach") {
    TempDir dir;
    auto storage = OpenPosixStorage(dir / "repo");
    storage->Initialize(false);
    const std::time_t now = std::time(nullptr);
    const auto later = [&](const std::string& name) {
      return FindLaterWal(*storage, kSysId, ParseWalFileNameOrThrow(name), now);
    };
    for (int i = 5; i <= 8; ++i) {
      REQUIRE(PutObject(*storage, KeyOf(fmt::format("0000000100000000000000{:02X}", i)), "x") ==
              CommitResult::kCreated);
    }
    LaterWal fresh = later("000000010000000000000004");
    CHECK(fresh.first == "000000010000000000000005");
    CHECK_FALSE(fresh.proof);
    // Aged past kHoleSettleSeconds: the first later segment proves it.
    const std::string path = dir / ("repo/" + KeyOf("000000010000000000000007"));
    struct timespec times[2] = {{now - kHoleSettleSeconds - 5, 0}, {now - kHoleSettleSeconds - 5, 0}};
    REQUIRE(utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
    CHECK(later("000000010000000000000004").proof == "000000010000000000000007");
    CHECK(later("000000010000000000000007").first == "000000010000000000000008");
    CHECK_FALSE(later("000000010000000000000007").proof);
    {
      // Nothing proves it yet: a WARNING, and "missing" stands.
      Config top;
      top.system_id = kSysId;
      top.repo_url = "file://" + dir / "repo";
      RepositorySet set(top, *storage);
      CaptureStderr capture;
      RefuseArchiveGap(set, kSysId, ParseWalFileNameOrThrow("000000010000000000000007"), dir.path(),
                       now);
      CHECK(Contains(capture.Text(), "WARNING:  000000010000000000000007 is in no repository, but "));
      CHECK(Contains(capture.Text(), "stored in the last 10 minutes"));
    }
    // More fresh later segments than push-ahead stores ahead: a hole.
    for (int i = 9; i <= 9 + kMaxPushAhead; ++i) {
      REQUIRE(PutObject(*storage, KeyOf(SegmentFileName(1, i, 16u << 20)), "x") ==
              CommitResult::kCreated);
    }
    CHECK(later("000000010000000000000007").proof == SegmentFileName(1, 7 + kMaxPushAhead + 1, 16u << 20));
  }

  TEST_CASE("FetchWalFile of a segment in the hole: archive_gap, the file after it: missing") {
    Fixture f;
    // Just stored, but more later segments than push-ahead stores ahead.
    for (int i = 5; i <= 5 + kMaxPushAhead; ++i) f.Put(0, SegmentFileName(1, i, 16u << 20));
    const auto storage = OpenMemoryStorage(f.names[0]);
    walstore::test::ScopedChdir in_data_dir(f.dir.path());  // where walfetch runs
    CHECK_CODE(FetchWalFile(*storage, f.top, "000000010000000000000004", f.dir / "d"),
               ErrorCode::kArchiveGap);
    CHECK(FetchWalFile(*storage, f.top, SegmentFileName(1, 6 + kMaxPushAhead, 16u << 20),
                       f.dir / "d")
              .outcome == FetchOutcome::kMissing);
  }
}

TEST_SUITE("storage_list_objects_after") {
  void CheckListObjectsAfter(Storage& s) {
    for (const char* key : {"a/b/1", "a/b/2", "a/b.x", "a/c/1", "a/c/d/1", "a0", "b/1"}) {
      REQUIRE(PutObject(s, key, "x") == CommitResult::kCreated);
    }
    CHECK(Keys(s.ListObjectsAfter("a", "", 100)) == "a/b.x,a/b/1,a/b/2,a/c/1,a/c/d/1,a0");
    CHECK(Keys(s.ListObjectsAfter("a/", "a/b/1", 100)) == "a/b/2,a/c/1,a/c/d/1");
    CHECK(Keys(s.ListObjectsAfter("a/", "a/b/1", 2)) == "a/b/2,a/c/1");
    CHECK(Keys(s.ListObjectsAfter("a/", "a/b.x", 1)) == "a/b/1");
    CHECK(Keys(s.ListObjectsAfter("a/c", "a/b/9", 100)) == "a/c/1,a/c/d/1");
    CHECK(s.ListObjectsAfter("a/", "a/c/d/1", 100).empty());
    CHECK(s.ListObjectsAfter("z/", "", 100).empty());
  }

  TEST_CASE("memory") {
    const std::string name = FreshStoreName();
    CheckListObjectsAfter(*OpenMemoryStorage(name));
    ResetMemoryStorage(name);
  }

  TEST_CASE("posix: in key order, whatever the directory order") {
    TempDir dir;
    auto s = OpenPosixStorage(dir / "repo");
    s->Initialize(false);
    CheckListObjectsAfter(*s);
  }
}
