// Tests for src/lib/archive/best_effort_record.cc: a best-effort miss is
// never forgotten, counted once, cleared only for what the repository holds,
// and the record stays walpush's after a rewrite by root.
#include <walstore/best_effort_record.h>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

namespace {

const std::string kA = "000000010000000000000001";
const std::string kB = "000000010000000000000002";
const std::string kSpaced = "file:///mnt/wal archive";
const std::string kS3 = "s3://bucket/offsite";

}  // namespace

TEST_SUITE("best_effort_record") {
  TEST_CASE("one line parser: the URL is the rest of the line, spaces included") {
    const auto line = ParseBestEffortLine("1700000000 " + kA + " network " + kSpaced);
    REQUIRE(line.has_value());
    CHECK(line->time == 1700000000);
    CHECK(line->name == kA);
    CHECK(line->error == "network");
    CHECK(line->url == kSpaced);
    CHECK_FALSE(ParseBestEffortLine("x " + kA + " network " + kS3).has_value());
    CHECK_FALSE(ParseBestEffortLine("1700000000 " + kA + " network").has_value());
    CHECK_FALSE(ParseBestEffortLine("").has_value());
  }

  TEST_CASE("a URL with spaces is counted and cleared") {
    TempDir dir;
    RecordBestEffortMiss(dir.path(), kSpaced, kA, "network");
    const auto misses = ReadBestEffortMisses(dir.path());
    REQUIRE(misses.count(kSpaced) == 1);
    CHECK(misses.at(kSpaced).count == 1);
    ClearBestEffortMisses(dir.path(), kSpaced, {kA});
    CHECK(ReadBestEffortMisses(dir.path()).empty());
  }

  TEST_CASE("a WAL file recorded several times counts once") {
    TempDir dir;
    RecordBestEffortMiss(dir.path(), kS3, kA, "network");
    RecordBestEffortMiss(dir.path(), kS3, kA, "network");
    RecordBestEffortMiss(dir.path(), kS3, kB, "auth");
    const auto misses = ReadBestEffortMisses(dir.path());
    REQUIRE(misses.count(kS3) == 1);
    CHECK(misses.at(kS3).count == 2);
    CHECK(misses.at(kS3).last_name == kB);
    CHECK(misses.at(kS3).last_error == "auth");
  }

  TEST_CASE("clearing removes only what the repository now holds") {
    // B was recorded after sync listed the repository: it was not copied and
    // must stay; another repository's lines stay too.
    TempDir dir;
    RecordBestEffortMiss(dir.path(), kS3, kA, "network");
    RecordBestEffortMiss(dir.path(), kS3, kB, "network");
    RecordBestEffortMiss(dir.path(), kSpaced, kA, "network");
    ClearBestEffortMisses(dir.path(), kS3, {kA, "000000010000000000000009"});
    const auto misses = ReadBestEffortMisses(dir.path());
    REQUIRE(misses.count(kS3) == 1);
    CHECK(misses.at(kS3).count == 1);
    CHECK(misses.at(kS3).last_name == kB);
    CHECK(misses.count(kSpaced) == 1);
    // And the record takes appends after the rewrite.
    RecordBestEffortMiss(dir.path(), kS3, "000000010000000000000003", "network");
    CHECK(ReadBestEffortMisses(dir.path()).at(kS3).count == 2);
  }

  TEST_CASE("an append waiting for a rewrite lands in the rewritten record") {
    TempDir dir;
    RecordBestEffortMiss(dir.path(), kS3, kA, "network");
    const std::string path = dir / kBestEffortRecordName;
    // Stand in for a rewrite in progress: hold the lock, then rename a new
    // record over the old one.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX) == 0);
    std::thread appender([&] { RecordBestEffortMiss(dir.path(), kS3, kB, "network"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // it opened the old file
    WriteFile(dir / "new", "1700000000 " + kA + " network " + kS3 + "\n");
    REQUIRE(::rename((dir / "new").c_str(), path.c_str()) == 0);
    ::close(fd);  // the rewrite is done
    appender.join();
    CHECK(Contains(ReadFile(path), " " + kB + " "));
    CHECK(ReadBestEffortMisses(dir.path()).at(kS3).count == 2);
  }

  TEST_CASE("an unreadable record is an error, not \"no misses\"") {
    TempDir dir;
    ::mkdir((dir / kBestEffortRecordName).c_str(), 0700);  // a directory in its place
    CHECK_THROWS_AS(ReadBestEffortMisses(dir.path()), Error);
  }

  TEST_CASE("a rewrite keeps the record's owner") {
    if (geteuid() != 0) {
      MESSAGE("skipped: needs root (chown)");
      return;
    }
    TempDir dir;
    RecordBestEffortMiss(dir.path(), kS3, kA, "network");
    RecordBestEffortMiss(dir.path(), kS3, kB, "network");
    const std::string path = dir / kBestEffortRecordName;
    REQUIRE(::chown(path.c_str(), 4321, 4322) == 0);
    ClearBestEffortMisses(dir.path(), kS3, {kA});
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(st.st_uid == 4321u);
    CHECK(st.st_gid == 4322u);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(Contains(ReadFile(path), kB));
  }
}
