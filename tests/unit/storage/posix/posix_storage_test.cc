// Tests for src/lib/storage/posix: the shared storage contract plus file-system facts.
#include <doctest/doctest.h>

#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/storage.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <future>
#include <string>

#include "storage/memory/memory_storage.h"
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
    walstore::test::RunStorageContract([&] { return OpenPosixStorage(dir.path()); });
  }

  // An unmounted file system: a writer that made the root on the local disk
  // would answer "archived" for segments the real repository never gets.
  TEST_CASE("NormalizeRepositoryUrl: one spelling per repository") {
    CHECK(NormalizeRepositoryUrl("/var/lib/walstore") == "file:///var/lib/walstore");
    CHECK(NormalizeRepositoryUrl("file:///var/lib/walstore/") == "file:///var/lib/walstore");
    CHECK(NormalizeRepositoryUrl("file:///var//lib/./walstore") == "file:///var/lib/walstore");
    CHECK(NormalizeRepositoryUrl("file:///var/lib/x/../walstore") == "file:///var/lib/walstore");
    CHECK(NormalizeRepositoryUrl("file:///") == "file:///");
    CHECK(NormalizeRepositoryUrl("s3://b//p/q/") == "s3://b/p/q");
    CHECK(NormalizeRepositoryUrl("s3://b") == "s3://b");
    CHECK(NormalizeRepositoryUrl("s3://b/") == "s3://b");
    CHECK(NormalizeRepositoryUrl("memory://x/") == "memory://x");
    CHECK_FALSE(NormalizeRepositoryUrl("file://relative").has_value());
    CHECK_FALSE(NormalizeRepositoryUrl("s3:///p").has_value());
    CHECK_FALSE(NormalizeRepositoryUrl("").has_value());
    CHECK(SameRepositoryUrl("/a/b", "file:///a/b/"));
    CHECK_FALSE(SameRepositoryUrl("/a/b", "s3://a/b"));
    CHECK_FALSE(SameRepositoryUrl("s3://b/p", "s3://b/P"));
  }

  TEST_CASE("a missing root is never created by a writer") {
    TempDir dir;
    const std::string root = dir / "nfs/walstore";
    auto s = OpenPosixStorage(root);
    CHECK_CODE(s->PrepareForWrites(), ErrorCode::kNotARepository);
    CHECK_CODE(s->Create("7312/wal/00000002.history"), ErrorCode::kNotARepository);
    CHECK_CODE(PutObject(*s, "k", "v"), ErrorCode::kNotARepository);
    CHECK_FALSE(walstore::test::Exists(dir / "nfs"));
    const auto error = walstore::test::ThrownError([&] { s->PrepareForWrites(); });
    REQUIRE(error.has_value());
    CHECK(walstore::test::Contains(error->what(), "repository \"" + root + "\" does not exist"));
    CHECK(walstore::test::Contains(error->hint(), "mount it"));
    CHECK(walstore::test::Contains(error->hint(), "walctl init --repo file://" + root));
    CHECK(walstore::test::Contains(error->hint(), "install -d -m 0750 " + root));
    // A root that vanished after this Storage made it a repository is not
    // made again either: not at the top, not below.
    std::filesystem::create_directories(root);
    REQUIRE(PutObject(*s, "7312/wal/a", "a") == CommitResult::kCreated);
    std::filesystem::remove_all(root);
    CHECK_CODE(PutObject(*s, "7312/wal/b", "b"), ErrorCode::kNotARepository);
    CHECK_CODE(PutObject(*s, "k", "v"), ErrorCode::kNotARepository);
    CHECK_FALSE(walstore::test::Exists(root));
  }

  TEST_CASE("an existing empty root becomes a repository on the first write") {
    TempDir dir;
    const std::string root = dir / "walstore";
    ::mkdir(root.c_str(), 0750);
    // A concurrent first writer's temp file does not make it non-empty.
    walstore::test::WriteFile(root + "/.walstore-repository.json.walstore-tmp.1.00aa", "");
    auto s = OpenPosixStorage(root);
    CHECK_CODE(s->Stat("a/b"), ErrorCode::kNotARepository);  // readers never adopt
    CHECK_FALSE(walstore::test::Exists(root + "/" + kRepositoryFormatFile));
    CHECK(PutObject(*s, "a/b", "content") == CommitResult::kCreated);
    CHECK(walstore::test::Exists(root + "/" + kRepositoryFormatFile));
    CHECK(walstore::test::ReadFile(root + "/a/b") == "content");
    CHECK_FALSE(OpenPosixStorage(root)->Stat("a/c").has_value());
  }

  TEST_CASE("root writing into another user's repository gives what it creates to that user") {
    if (geteuid() != 0) return;  // only root can write as someone else; CI runs as root
    TempDir dir;
    const std::string root = dir / "walstore";
    ::mkdir(root.c_str(), 0750);
    const uid_t owner = 65534;  // nobody
    const gid_t group = 65533;
    REQUIRE(::chown(root.c_str(), owner, group) == 0);
    auto s = OpenPosixStorage(root);
    CHECK(PutObject(*s, "7312/backup/b1/base.tar", "content") == CommitResult::kCreated);
    for (const std::string path : {root + "/" + kRepositoryFormatFile, root + "/7312",
                                   root + "/7312/backup", root + "/7312/backup/b1",
                                   root + "/7312/backup/b1/base.tar"}) {
      struct stat st {};
      REQUIRE(::stat(path.c_str(), &st) == 0);
      CHECK_MESSAGE(st.st_uid == owner, path);
      CHECK_MESSAGE(st.st_gid == group, path);
    }
    // A repository of root's own: nothing is given away.
    const std::string own = dir / "own";
    ::mkdir(own.c_str(), 0750);
    CHECK(PutObject(*OpenPosixStorage(own), "7312/wal/x", "w") == CommitResult::kCreated);
    struct stat st {};
    REQUIRE(::stat((own + "/7312/wal/x").c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
  }

  TEST_CASE("a non-empty directory that is no repository is refused by writers, not adopted") {
    TempDir dir;
    walstore::test::WriteFile(dir / "home/notes.txt", "x");
    walstore::test::WriteFile(dir / "disk/12/other/file", "x");  // digits, but no wal/backup
    ::mkdir((dir / "mnt").c_str(), 0750);
    ::mkdir((dir / "mnt/lost+found").c_str(), 0700);
    for (const char* name : {"home", "disk", "mnt"}) {
      CAPTURE(std::string(name));
      const std::string root = dir / name;
      auto s = OpenPosixStorage(root);
      CHECK_CODE(s->PrepareForWrites(), ErrorCode::kNotARepository);
      CHECK_CODE(PutObject(*s, "7312/wal/00000002.history", "h"), ErrorCode::kNotARepository);
      CHECK_CODE(s->Initialize(false), ErrorCode::kNotARepository);
      const auto error = walstore::test::ThrownError([&] { s->PrepareForWrites(); });
      REQUIRE(error.has_value());
      CHECK(walstore::test::Contains(error->what(),
                                     root + "\" is not a walstore repository: it is not empty"));
      CHECK(walstore::test::Contains(error->hint(), root + "/walstore"));
      CHECK_FALSE(walstore::test::Exists(root + "/" + kRepositoryFormatFile));
      CHECK_FALSE(walstore::test::Exists(root + "/7312"));
    }
    // The same directory with an earlier build's layout is a repository.
    walstore::test::WriteFile(dir / "home/7312/wal/00000002.history", "h");
    CHECK(PutObject(*OpenPosixStorage(dir / "home"), "7312/wal/00000003.history", "h") ==
          CommitResult::kCreated);
    CHECK(walstore::test::Exists(dir / (std::string("home/") + kRepositoryFormatFile)));
  }

  TEST_CASE("Initialize (walctl init) creates the root, with parents only when asked") {
    TempDir dir;
    const std::string root = dir / "mnt/nfs/walstore";
    auto s = OpenPosixStorage(root);
    CHECK_CODE(s->Initialize(false), ErrorCode::kLocalIo);
    const auto error = walstore::test::ThrownError([&] { s->Initialize(false); });
    REQUIRE(error.has_value());
    CHECK(walstore::test::Contains(error->hint(), "--parents"));
    CHECK_FALSE(walstore::test::Exists(dir / "mnt"));
    CHECK(s->Initialize(true) == InitResult::kCreated);
    struct stat st {};
    REQUIRE(::stat(root.c_str(), &st) == 0);
    const mode_t mask = ::umask(0);
    ::umask(mask);
    CHECK((st.st_mode & 0777) == (0750 & ~mask));
    CHECK(walstore::test::ReadFile(root + "/" + kRepositoryFormatFile) ==
          "{\"walstore_repository_format\":1}\n");
    CHECK(walstore::test::ListTree(root).size() == 1);
    CHECK(s->OpenRead("7312/wal/00000002.history") == nullptr);  // a repository, empty
    // Again, and from a new process: it already is one.
    CHECK(OpenPosixStorage(root)->Initialize(false) == InitResult::kAlreadyRepository);
    CHECK(OpenPosixStorage(root)->Initialize(true) == InitResult::kAlreadyRepository);
    // The parent exists: no --parents needed.
    CHECK(OpenPosixStorage(dir / "mnt/nfs/second")->Initialize(false) == InitResult::kCreated);
    // An existing empty directory (a mount point) is made one.
    ::mkdir((dir / "empty").c_str(), 0750);
    CHECK(OpenPosixStorage(dir / "empty")->Initialize(false) == InitResult::kCreated);
    CHECK(walstore::test::Exists(dir / (std::string("empty/") + kRepositoryFormatFile)));
    // An earlier build's repository already is one; it gets its format file.
    walstore::test::WriteFile(dir / "old/7312/backup/20260101T000000Z/backup.json", "{}");
    CHECK(OpenPosixStorage(dir / "old")->Initialize(false) == InitResult::kAlreadyRepository);
    CHECK(walstore::test::Exists(dir / (std::string("old/") + kRepositoryFormatFile)));
    // A regular file is no repository.
    walstore::test::WriteFile(dir / "file", "x");
    CHECK_CODE(OpenPosixStorage(dir / "file")->Initialize(true), ErrorCode::kNotARepository);
  }

  // Each way a repository can be "not there", seen by every reading call:
  // none may answer "absent" (walfetch would end recovery).
  void CheckNotARepository(const std::string& root, const std::string& expected_message) {
    auto s = OpenPosixStorage(root);
    const std::string key = "7312/wal/0000000100000000/000000010000000000000001";
    CHECK_CODE(s->Stat(key), ErrorCode::kNotARepository);
    CHECK_CODE(s->OpenRead(key), ErrorCode::kNotARepository);
    CHECK_CODE(s->Remove(key), ErrorCode::kNotARepository);
    CHECK_CODE(ListKeys(*s, ""), ErrorCode::kNotARepository);
    CHECK_CODE(ListKeys(*s, "7312/wal/"), ErrorCode::kNotARepository);
    CHECK_CODE(s->ListChildren("", 10), ErrorCode::kNotARepository);
    const std::string message = walstore::test::ThrownMessage([&] { s->OpenRead(key); });
    CHECK(walstore::test::Contains(message, root));
    CHECK(walstore::test::Contains(message, expected_message));
  }

  TEST_CASE("a missing root (an unmounted file system) is not a repository") {
    TempDir dir;
    CheckNotARepository(dir / "mnt/archive", "does not exist");
  }

  TEST_CASE("a root that is a regular file is not a repository") {
    TempDir dir;
    walstore::test::WriteFile(dir / "archive", "not a directory");
    CheckNotARepository(dir / "archive", "is not a directory");
    CheckNotARepository(dir / "archive/below", "does not exist");
  }

  TEST_CASE("a directory without the format file or an earlier layout is not a repository") {
    TempDir dir;
    ::mkdir((dir / "empty").c_str(), 0700);
    CheckNotARepository(dir / "empty", kRepositoryFormatFile);
    walstore::test::WriteFile(dir / "home/notes.txt", "x");
    walstore::test::WriteFile(dir / "home/12/other/file", "x");  // digits, but no wal/backup
    walstore::test::WriteFile(dir / "home/abc/wal/file", "x");   // wal/, but not under digits
    walstore::test::WriteFile(dir / "home/34/wal", "x");         // a file, not a directory
    CheckNotARepository(dir / "home", "is not a walstore repository");
  }

  TEST_CASE("a repository of an earlier build (no format file) is recognised") {
    for (const char* layout : {"7312/wal/0000000100000000/000000010000000000000001",
                               "7312/backup/20260101T000000Z/backup.json"}) {
      CAPTURE(std::string(layout));
      TempDir dir;
      walstore::test::WriteFile(dir / layout, "old object");
      auto s = OpenPosixStorage(dir.path());
      CHECK(s->OpenRead("7312/wal/0000000100000000/000000010000000000000009") == nullptr);
      CHECK_FALSE(s->Stat("9999/wal/00000002.history").has_value());
      CHECK(ObjectContent(*s, layout) == "old object");
      // The first write adds the format file.
      CHECK_FALSE(walstore::test::Exists(dir / kRepositoryFormatFile));
      REQUIRE(PutObject(*s, "7312/wal/00000002.history", "h") == CommitResult::kCreated);
      CHECK(walstore::test::Exists(dir / kRepositoryFormatFile));
    }
  }

  TEST_CASE("the format file: written on first use, never listed, checked when read") {
    TempDir dir;
    ::mkdir((dir / "repo").c_str(), 0750);
    auto s = OpenPosixStorage(dir / "repo");
    s->PrepareForWrites();
    const std::string format = walstore::test::ReadFile(dir / (std::string("repo/") + kRepositoryFormatFile));
    CHECK(format == "{\"walstore_repository_format\":1}\n");
    CHECK(ListKeys(*s, "").empty());
    CHECK(s->ListChildren("", 10).empty());
    REQUIRE(PutObject(*s, "1/wal/x", "x") == CommitResult::kCreated);
    CHECK(walstore::test::Join(ListKeys(*s, "")) == "1/wal/x");
    CHECK(walstore::test::Join(s->ListChildren("", 10)) == "1");
    // A new process on an empty repository: absence is a value.
    CHECK(OpenPosixStorage(dir / "repo")->OpenRead("1/wal/y") == nullptr);
    // A format this build does not know, or a damaged file, is an error.
    walstore::test::WriteFile(dir / (std::string("newer/") + kRepositoryFormatFile),
                              "{\"walstore_repository_format\": 2}");
    CHECK_CODE(OpenPosixStorage(dir / "newer")->OpenRead("1/wal/y"), ErrorCode::kUnsupportedFormat);
    walstore::test::WriteFile(dir / (std::string("damaged/") + kRepositoryFormatFile), "<html>");
    CHECK_CODE(OpenPosixStorage(dir / "damaged")->OpenRead("1/wal/y"),
               ErrorCode::kNotARepository);
    CHECK_CODE(OpenPosixStorage(dir / "damaged")->PrepareForWrites(), ErrorCode::kNotARepository);
  }

  TEST_CASE("a file where a directory belongs is an error, not absence") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    REQUIRE(PutObject(*s, "7312/backup/x", "x") == CommitResult::kCreated);
    walstore::test::WriteFile(dir / "7312/wal", "a file in the way");
    const std::string key = "7312/wal/0000000100000000/000000010000000000000001";
    // On this Storage (repository verified) and on new ones, whose first act
    // is to verify the repository (which must not lose the error).
    auto fresh = [&] { return OpenPosixStorage(dir.path()); };
    CHECK_CODE(s->Stat(key), ErrorCode::kLocalIo);
    CHECK_CODE(fresh()->Stat(key), ErrorCode::kLocalIo);
    CHECK_CODE(s->OpenRead(key), ErrorCode::kLocalIo);
    CHECK_CODE(fresh()->OpenRead(key), ErrorCode::kLocalIo);
    CHECK_CODE(s->Remove(key), ErrorCode::kLocalIo);
    CHECK_CODE(fresh()->Remove(key), ErrorCode::kLocalIo);
    CHECK_CODE(ListKeys(*s, "7312/wal/"), ErrorCode::kLocalIo);
    CHECK_CODE(ListKeys(*fresh(), "7312/wal/"), ErrorCode::kLocalIo);
    CHECK_CODE(s->ListChildren("7312/wal/", 10), ErrorCode::kLocalIo);
    CHECK_CODE(fresh()->ListChildren("7312/wal/", 10), ErrorCode::kLocalIo);
    for (const char* call : {"Stat", "OpenRead", "Remove"}) {
      CAPTURE(std::string(call));
      const std::string message = walstore::test::ThrownMessage([&] {
        auto storage = fresh();
        if (std::string(call) == "Stat") storage->Stat(key);
        if (std::string(call) == "OpenRead") storage->OpenRead(key);
        if (std::string(call) == "Remove") storage->Remove(key);
      });
      CHECK(walstore::test::Contains(message, "Not a directory"));
    }
    // The missing directory beside it is plain absence.
    CHECK(s->OpenRead("7312/backup/y/z") == nullptr);
  }

  TEST_CASE("a FIFO at a key is refused at once, not waited on") {
    // Anyone who can write to the repository could otherwise hang walpush
    // (archiving stops, pg_wal fills) or walfetch in open().
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    REQUIRE(PutObject(*s, "7312/wal/00000002.history", "h") == CommitResult::kCreated);
    const std::string fifo = dir / "7312/wal/00000003.history";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // Runs `call` with a deadline; a call blocked on the FIFO is let go.
    auto in_time = [&](const std::function<std::string()>& call) {
      auto outcome = std::async(std::launch::async, call);
      const bool finished =
          outcome.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
      if (!finished) ::close(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK));
      CHECK(finished);
      return outcome.get();
    };
    CHECK(in_time([&] {
            return walstore::test::ThrownCode([&] { s->OpenRead("7312/wal/00000003.history"); });
          }) == "kStorage");
    // A write finds the name taken (and syncs what is there before relying on it).
    CHECK(in_time([&] {
            return PutObject(*s, "7312/wal/00000003.history", "h3") == CommitResult::kAlreadyExists
                       ? "taken"
                       : "created";
          }) == "taken");
  }

  TEST_CASE("a part of the repository linked to a file system that is not mounted is no absence") {
    // An operator moved a cluster's WAL to a bigger disk and left a link; the
    // disk is not mounted: the link's target is gone.  "Absent" would make
    // walfetch exit 1 and PostgreSQL end recovery early.
    TempDir dir;
    ::mkdir((dir / "repo").c_str(), 0750);
    auto s = OpenPosixStorage(dir / "repo");
    const std::string key = "7312/wal/0000000100000000/000000010000000000000001";
    REQUIRE(PutObject(*s, key, "x") == CommitResult::kCreated);
    REQUIRE(PutObject(*s, "7312/backup/b/backup.json", "{}") == CommitResult::kCreated);
    REQUIRE(::rename((dir / "repo/7312/wal").c_str(), (dir / "disk").c_str()) == 0);
    REQUIRE(::symlink((dir / "mnt/wal").c_str(), (dir / "repo/7312/wal").c_str()) == 0);
    const std::string other = "7312/wal/0000000100000000/000000010000000000000002";
    // On this Storage (repository verified) and on a new one.
    auto check = [&](Storage& storage) {
      CHECK_CODE(storage.OpenRead(key), ErrorCode::kNotARepository);
      CHECK_CODE(storage.OpenRead(other), ErrorCode::kNotARepository);
      CHECK_CODE(storage.Stat(other), ErrorCode::kNotARepository);
      CHECK_CODE(storage.Remove(other), ErrorCode::kNotARepository);
      CHECK_CODE(ListKeys(storage, "7312/wal/"), ErrorCode::kNotARepository);
      CHECK_CODE(ListKeys(storage, "7312/"), ErrorCode::kNotARepository);
      CHECK_CODE(storage.ListChildren("7312/wal/", 10), ErrorCode::kNotARepository);
    };
    check(*s);
    check(*OpenPosixStorage(dir / "repo"));
    const std::string message = walstore::test::ThrownMessage([&] { s->OpenRead(key); });
    CHECK(walstore::test::Contains(message, dir / "mnt/wal"));
    CHECK(walstore::test::Contains(message, "does not exist"));
    // Mounted again (the link resolves): found, and a missing object is absent.
    REQUIRE(::mkdir((dir / "mnt").c_str(), 0700) == 0);
    REQUIRE(::rename((dir / "disk").c_str(), (dir / "mnt/wal").c_str()) == 0);
    CHECK(ObjectContent(*s, key) == "x");
    CHECK(s->OpenRead(other) == nullptr);
    CHECK(s->OpenRead("7312/wal/0000000200000000/000000020000000000000001") == nullptr);
    // A link at the object itself whose target is gone is no absence either.
    REQUIRE(::symlink((dir / "gone").c_str(), (dir / ("repo/" + other)).c_str()) == 0);
    CHECK_CODE(s->OpenRead(other), ErrorCode::kNotARepository);
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
    CHECK(walstore::test::Join(ListTree(dir.path())) ==
          walstore::test::Join({"7312", "7312/wal", "7312/wal/0000000100000000",
                                "7312/wal/0000000100000000/000000010000000000000001",
                                kRepositoryFormatFile}));
  }

  TEST_CASE("a file placed under the root is visible") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    s->PrepareForWrites();
    walstore::test::WriteFile(dir / "x/y", "hand made");
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

  TEST_CASE("a directory at a key is not an object, and not its absence either") {
    TempDir dir;
    auto s = OpenPosixStorage(dir.path());
    REQUIRE(PutObject(*s, "a/b", "x") == CommitResult::kCreated);
    CHECK_CODE(s->Stat("a"), ErrorCode::kStorage);
    CHECK_CODE(s->OpenRead("a"), ErrorCode::kStorage);
  }

  TEST_CASE("a process killed mid-write leaves no visible object and does not block the key") {
    TempDir dir;
    const std::string root = dir.path();
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
    ::mkdir((dir / "repo").c_str(), 0750);
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

  TEST_CASE("OpenStorage itself knows no memory:// store; only a registered scheme opens") {
    Config c;
    c.repo_url = "memory://presence";
    // The test main registered the in-memory backend; without that, as in
    // walpush / walfetch / walctl, the URL is a configuration error.
    RegisterStorageScheme("memory", nullptr);
    CHECK_CODE(OpenStorage(c), ErrorCode::kConfig);
    CHECK(walstore::test::Contains(walstore::test::ThrownMessage([&] { OpenStorage(c); }),
                                   "unknown scheme"));
    RegisterMemoryStorage();
    auto s = OpenStorage(c);
    REQUIRE(s != nullptr);
    CHECK(s->Describe() == "memory://presence");
  }

  TEST_CASE("an unwritable root is a clear error, not a crash") {
    if (::geteuid() == 0) {
      MESSAGE("skipped as root: permissions do not apply");
      return;
    }
    TempDir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0500) == 0);
    auto s = OpenPosixStorage(dir.path());
    CHECK_CODE(PutObject(*s, "k", "v"), ErrorCode::kLocalIo);
    CHECK_CODE(OpenPosixStorage(dir / "repo")->Initialize(false), ErrorCode::kLocalIo);
    ::chmod(dir.path().c_str(), 0700);
  }
}
