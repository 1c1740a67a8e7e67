// Tests for src/lib/common/file_util.cc: AtomicFileWriter's temp files.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <walstore/cli.h>
#include <walstore/storage.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "storage/posix/posix_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::ListTree;
using walstore::test::ReadFile;
using walstore::test::TempDir;

TEST_SUITE("file_util") {
  TEST_CASE("writers of one destination each get their own hidden temp file") {
    TempDir dir;
    const std::string dest = dir.path() + "/000000010000000000000001";
    std::vector<std::unique_ptr<AtomicFileWriter>> writers;
    for (int i = 0; i < 20; ++i) {
      writers.push_back(std::make_unique<AtomicFileWriter>(dest, 0600, false));
    }
    const auto names = ListTree(dir.path());
    CHECK(names.size() == writers.size());
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == writers.size());
    for (const auto& name : names) {
      CHECK(name.rfind(".000000010000000000000001" + std::string(kTempMarker), 0) == 0);
    }
    const std::string text = "the last writer wins";
    writers.back()->Write(AsBytes(text));
    CHECK(writers.back()->Publish(true));
    writers.clear();  // the others are discarded, their temp files removed
    CHECK(ListTree(dir.path()) == std::vector<std::string>{"000000010000000000000001"});
    CHECK(ReadFile(dest) == text);
  }

  TEST_CASE("temp file names carry the writer's PID") {
    CHECK(TempFileOwner(".000000010000000000000001.walstore-tmp.1234.0123456789ab") == 1234);
    CHECK(TempFileOwner(".backup.json.walstore-tmp.99.ab") == 99);
    CHECK_FALSE(TempFileOwner("000000010000000000000001"));
    CHECK_FALSE(TempFileOwner(".walstore-tmp.12.ab"));       // no name before the marker
    CHECK_FALSE(TempFileOwner(".x.walstore-tmp.12"));         // no random part
    CHECK_FALSE(TempFileOwner(".x.walstore-tmp.abc.0123"));   // no PID
    CHECK_FALSE(TempFileOwner(".x.walstore-tmp.0.0123"));
    CHECK_FALSE(TempFileOwner("x.walstore-tmp.12.0123"));     // not hidden
  }

  TEST_CASE("stale temp files: a dead PID's unwritten for a minute go; live, fresh and others stay") {
    TempDir dir;
    const pid_t dead = fork();
    if (dead == 0) _exit(0);
    REQUIRE(waitpid(dead, nullptr, 0) == dead);
    const pid_t live = getpid();
    auto make = [&](const std::string& name, int age_seconds) {
      const std::string path = dir / name;
      test::WriteFile(path, "partial");
      const struct timeval times[2] = {{std::time(nullptr) - age_seconds, 0},
                                       {std::time(nullptr) - age_seconds, 0}};
      REQUIRE(utimes(path.c_str(), times) == 0);
      return path;
    };
    const auto temp = [](pid_t pid, const char* hex) {
      return fmt::format(".000000010000000000000001{}{}.{}", kTempMarker, pid, hex);
    };
    make(temp(dead, "000000000001"), 120);   // dead and old: goes
    make(temp(dead, "000000000002"), 10);    // dead but fresh: another host's, maybe
    make(temp(live, "000000000003"), 120);   // alive
    make(temp(live, "000000000004"), 3 * 86400);
    make("000000010000000000000001", 3 * 86400);  // an object, however old
    make(".hidden", 3 * 86400);
    const auto stale = FindStaleTempFiles(dir.path());
    REQUIRE(stale.size() == 1);
    CHECK(stale[0].path == dir / temp(dead, "000000000001"));
    CHECK(stale[0].size == 7);
    // With an age limit for any owner, the very old live one counts too.
    CHECK(FindStaleTempFiles(dir.path(), 86400).size() == 2);

    CHECK(RemoveStaleTempFiles(dir.path()) == 1);
    const std::vector<std::string> left = {".000000010000000000000001" + std::string(kTempMarker) +
                                               std::to_string(dead) + ".000000000002",
                                           ".000000010000000000000001" + std::string(kTempMarker) +
                                               std::to_string(live) + ".000000000003",
                                           ".000000010000000000000001" + std::string(kTempMarker) +
                                               std::to_string(live) + ".000000000004",
                                           ".hidden", "000000010000000000000001"};
    auto sorted = left;
    std::sort(sorted.begin(), sorted.end());
    CHECK(ListTree(dir.path()) == sorted);

    // The next writer in that directory removes a dead writer's leftover by itself.
    make(temp(dead, "000000000005"), 120);
    AtomicFileWriter writer(dir / "000000010000000000000002", 0600, false);
    CHECK_FALSE(test::Exists(dir / temp(dead, "000000000005")));
    CHECK(test::Exists(dir / temp(dead, "000000000002")));
  }

  TEST_CASE("SIGTERM, SIGINT and SIGHUP remove the temp files being written, then end the process") {
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      INFO("signal " << sig);
      TempDir dir;
      int ready[2];
      REQUIRE(pipe(ready) == 0);
      const pid_t child = fork();
      if (child == 0) {
        close(ready[0]);
        // As walpush starts from PostgreSQL (this test may run under nohup,
        // and an ignored signal stays ignored).
        signal(sig, SIG_DFL);
        InstallTempFileSignalCleanup();
        AtomicFileWriter one(dir / "a", 0600, false);
        AtomicFileWriter two(dir / "b", 0600, false);
        one.Write(AsBytes(std::string(1 << 20, 'x')));
        (void)!write(ready[1], "r", 1);
        for (;;) pause();
      }
      close(ready[1]);
      char byte = 0;
      REQUIRE(read(ready[0], &byte, 1) == 1);
      close(ready[0]);
      CHECK(ListTree(dir.path()).size() == 2);  // both temp files exist mid-write
      REQUIRE(kill(child, sig) == 0);
      int status = 0;
      REQUIRE(waitpid(child, &status, 0) == child);
      CHECK(WIFSIGNALED(status));
      CHECK(WTERMSIG(status) == sig);  // the default action still ends it
      CHECK(ListTree(dir.path()).empty());
    }
  }

  TEST_CASE("a file repository lists and removes leftovers in every directory") {
    TempDir dir;
    const pid_t dead = fork();
    if (dead == 0) _exit(0);
    REQUIRE(waitpid(dead, nullptr, 0) == dead);
    auto storage = OpenPosixStorage(dir.path());
    test::PutObject(*storage, "7/wal/0000000100000000/000000010000000000000001", "object");
    const std::string deep = dir / fmt::format("7/wal/0000000100000000/.x{}{}.00aa", kTempMarker, dead);
    const std::string top = dir / fmt::format(".y{}{}.00bb", kTempMarker, getpid());
    test::WriteFile(deep, "12345");
    test::WriteFile(top, "1");
    for (const auto& path : {deep, top}) {
      const struct timeval old[2] = {{std::time(nullptr) - 2 * 86400, 0},
                                     {std::time(nullptr) - 2 * 86400, 0}};
      REQUIRE(utimes(path.c_str(), old) == 0);
    }
    auto leftovers = storage->ListLeftovers(3 * 86400);  // only the dead writer's
    REQUIRE(leftovers);
    REQUIRE(leftovers->size() == 1);
    CHECK(leftovers->front().location == deep);
    CHECK(leftovers->front().size == 5);
    leftovers = storage->ListLeftovers(86400);  // a day: the live one's too
    REQUIRE(leftovers);
    REQUIRE(leftovers->size() == 2);
    for (const auto& leftover : *leftovers) CHECK(storage->RemoveLeftover(leftover));
    CHECK_FALSE(storage->RemoveLeftover(leftovers->front()));  // gone already
    CHECK_FALSE(test::Exists(deep));
    CHECK_FALSE(test::Exists(top));
    CHECK(test::ObjectContent(*storage, "7/wal/0000000100000000/000000010000000000000001") ==
          "object");
    Leftover not_temp{"x", 0, 0, dir / "7/wal/0000000100000000/000000010000000000000001", ""};
    CHECK_THROWS_AS(storage->RemoveLeftover(not_temp), Error);
  }
}
