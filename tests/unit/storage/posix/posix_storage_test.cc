// Tests for src/lib/storage/posix: the shared storage contract plus file-system facts.
#include <doctest/doctest.h>

#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/storage.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "storage/posix/posix_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::ListKeys;
using walstore::test::ListTree;
using walstore::test::ObjectContent;
using walstore::test::PutObject;
using walstore::test::TempDir;

TEST_SUITE("storage_posix") {
  TEST_CASE("storage contract") {
    TempDir dir;
    walstore::test::RunStorageContract([&] { return OpenPosixStorage(dir / "repo"); });
  }

  TEST_CASE("the root is created on first write, not on open") {
    TempDir dir;
    const std::string root = dir / "does/not/exist/yet";
    auto s = OpenPosixStorage(root);
    CHECK_FALSE(s->Stat("a/b").has_value());
    CHECK(ListKeys(*s, "").empty());
    CHECK(PutObject(*s, "a/b", "content") == CommitResult::kCreated);
    CHECK(walstore::test::Exists(root));
    CHECK(walstore::test::ReadFile(root + "/a/b") == "content");
  }

  TEST_CASE("objects are files under the root at their key") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    const std::string key = "7312/wal/0000000100000000/000000010000000000000001";
    const std::string content = walstore::test::RandomString(100000, 3);
    REQUIRE(PutObject(*s, key, content) == CommitResult::kCreated);
    CHECK(walstore::test::ReadFile(dir / key) == content);
    auto info = s->Stat(key);
    REQUIRE(info.has_value());
    CHECK(info->size == content.size());
    CHECK(info->modified > 0);
    // Nothing else is left in the directory tree (no temporaries).
    CHECK(walstore::test::Join(ListTree(dir.path())) == walstore::test::Join({"7312", "7312/wal", "7312/wal/0000000100000000",
                                                           "7312/wal/0000000100000000/000000010000000000000001"}));
  }

  TEST_CASE("a file placed under the root is visible") {
    TempDir dir;
    walstore::test::WriteFile(dir / "x/y", "hand made");
    auto s = OpenPosixStorage(dir.path());
    CHECK(ObjectContent(*s, "x/y") == "hand made");
    CHECK(walstore::test::Join(ListKeys(*s, "")) == walstore::test::Join({"x/y"}));
    CHECK(PutObject(*s, "x/y", "other") == CommitResult::kAlreadyExists);
    CHECK(walstore::test::ReadFile(dir / "x/y") == "hand made");
  }

  TEST_CASE("temporary files are neither listed nor visible, and an abandoned write leaves no file under the key") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    REQUIRE(PutObject(*s, "d/kept", "k") == CommitResult::kCreated);
    {
      auto w = s->Create("d/pending");
      w->Write(AsBytes(walstore::test::RandomString(50000, 1)));
      CHECK(walstore::test::Join(ListKeys(*s, "")) == walstore::test::Join({"d/kept"}));
      CHECK(walstore::test::Join(ListKeys(*s, "d/")) == walstore::test::Join({"d/kept"}));
      CHECK_FALSE(s->Stat("d/pending").has_value());
      CHECK_FALSE(walstore::test::Exists(dir / "d/pending"));
    }
    CHECK_FALSE(walstore::test::Exists(dir / "d/pending"));
    CHECK(walstore::test::Join(ListKeys(*s, "")) == walstore::test::Join({"d/kept"}));
    // The abandoned temporary was cleaned up by the writer's destructor.
    CHECK(walstore::test::Join(ListTree(dir / "d")) == walstore::test::Join({"kept"}));
  }

  TEST_CASE("the published file is a regular file with a single link") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    REQUIRE(PutObject(*s, "f", "abc") == CommitResult::kCreated);
    struct stat st;
    REQUIRE(::stat((dir / "f").c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_nlink == 1);  // the temporary link is gone
  }

  TEST_CASE("a directory at a key is not an object") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    REQUIRE(PutObject(*s, "a/b", "x") == CommitResult::kCreated);
    CHECK_FALSE(s->Stat("a").has_value());
    CHECK(s->OpenRead("a") == nullptr);
  }

  TEST_CASE("a process killed mid-write leaves no visible object and does not block the key") {
    TempDir dir;
    const std::string root = dir / "repo";
    {
      auto s = OpenPosixStorage(root);
      REQUIRE(PutObject(*s, "seg/other", "x") == CommitResult::kCreated);
    }
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto s = OpenPosixStorage(root);
      auto w = s->Create("seg/000000010000000000000001");
      const std::string data(1 << 20, 'k');
      w->Write(AsBytes(data));
      ::_exit(9);  // killed before Commit(): no destructor runs
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    auto s = OpenPosixStorage(root);
    CHECK_FALSE(s->Stat("seg/000000010000000000000001").has_value());
    CHECK(s->OpenRead("seg/000000010000000000000001") == nullptr);
    CHECK(walstore::test::Join(ListKeys(*s, "")) == "seg/other");
    CHECK_FALSE(walstore::test::Exists(root + "/seg/000000010000000000000001"));
    // A later write of the same key succeeds.
    CHECK(PutObject(*s, "seg/000000010000000000000001", "real") == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "seg/000000010000000000000001") == "real");
  }

  TEST_CASE("a key that looks like a temporary file is refused or listed, never hidden") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    const std::string key = "b/.x.walstore-tmp.1.2";
    const std::string outcome = walstore::test::ThrownCode([&] { ValidateKey(key); });
    if (outcome == "no exception") {
      REQUIRE(PutObject(*s, key, "v") == CommitResult::kCreated);
      CHECK(s->Stat(key).has_value());
      CHECK(walstore::test::Join(ListKeys(*s, "b/")) == key);
    } else {
      CHECK(outcome == "kInternal");
      CHECK_CODE(s->Create(key), ErrorCode::kInternal);
    }
  }

  TEST_CASE("OpenStorage by URL") {
    TempDir dir;
    Config c;
    c.repo_url = "file://" + dir.path() + "/repo";
    auto s = OpenStorage(c);
    REQUIRE(s != nullptr);
    CHECK(PutObject(*s, "k", "v") == CommitResult::kCreated);
    CHECK(walstore::test::ReadFile(dir / "repo/k") == "v");
    CHECK(walstore::test::Contains(s->Describe(), dir.path() + "/repo"));
    for (const char* bad : {"", "ftp://host/x", "file://relative/path", "nonsense"}) {
      CAPTURE(std::string(bad));
      c.repo_url = bad;
      CHECK_CODE(OpenStorage(c), ErrorCode::kConfig);
    }
  }

  TEST_CASE("an unwritable root is a clear error, not a crash") {
    if (::geteuid() == 0) {
      MESSAGE("skipped as root: permissions do not apply");
      return;
    }
    TempDir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0500) == 0);
    auto s = OpenPosixStorage(dir / "repo");
    CHECK_CODE(PutObject(*s, "k", "v"), ErrorCode::kLocalIo);
    ::chmod(dir.path().c_str(), 0700);
  }
}
