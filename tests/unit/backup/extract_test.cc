#include "backup/extract.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

using testing::TarBuilder;
using test::Exists;
using test::ListTree;
using test::TempDir;

// A restore target ("target") and a directory outside it ("outside") that a
// hostile tar tries to reach; the manifest lists `files` (no checksums).
struct Scene {
  TempDir tmp;
  std::string target = tmp / "target";
  std::string outside = tmp / "outside";
  BackupManifest manifest;

  explicit Scene(std::initializer_list<std::string> files) {
    mkdir(target.c_str(), 0700);
    mkdir(outside.c_str(), 0755);
    test::WriteFile(outside + "/victim", "original");
    chmod(outside.c_str(), 0755);
    for (const auto& path : files) manifest.files.push_back({path, 5, "", ""});
  }

  // Extracts `tar` with `links`; the code it threw ("no exception" if none).
  std::string Extract(const TarBuilder& tar, const std::map<std::string, std::string>& links = {}) {
    return Run(tar, links, nullptr);
  }

  // What an in-place (restore --delta) extraction did.
  struct InPlaceResult {
    std::string thrown;  // "no exception" if none
    uint64_t written = 0;
    DeltaContents listed;
  };
  // Extracts `tar` in place over what the target holds (BackupExtractor::UpdateInPlace).
  // `read_step`: the most bytes one read of the tar stream returns, so that
  // the extractor sees the file's data in pieces of any alignment.
  InPlaceResult ExtractInPlace(const TarBuilder& tar, size_t read_step = SIZE_MAX) {
    InPlaceResult result;
    result.thrown = Run(tar, {}, &result, read_step);
    return result;
  }

 private:
  std::string Run(const TarBuilder& tar, const std::map<std::string, std::string>& links,
                  InPlaceResult* in_place, size_t read_step = SIZE_MAX) {
    ManifestChecker checker(manifest);
    BackupExtractor extractor(checker, [](uint64_t) {});
    if (in_place != nullptr) extractor.UpdateInPlace(in_place->listed);
    TargetDir dir(target);
    test::TrickleReadStream in(tar.out, read_step);
    std::string thrown =
        test::ThrownCode([&] { extractor.Extract(in, &dir, "", links, "base.tar"); });
    if (in_place != nullptr) in_place->written = extractor.written();
    return thrown;
  }

 public:

  // The outside directory exactly as it was made.
  void CheckOutsideUntouched() const {
    CHECK(ListTree(outside) == std::vector<std::string>{"victim"});
    CHECK(test::ReadFile(outside + "/victim") == "original");
    struct stat st {};
    REQUIRE(stat(outside.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
  }
};

// Runs each case twice: with openat2 (where the kernel has it) and with the
// O_NOFOLLOW walk older kernels get.
template <typename F>
void ForBothResolvers(F&& body) {
  for (bool walk : {false, true}) {
    INFO("O_NOFOLLOW walk instead of openat2: " << walk);
    TargetDir::ForceWalkForTesting(walk);
    body();
  }
  TargetDir::ForceWalkForTesting(false);
}

TEST_SUITE("backup_extract") {
  TEST_CASE("member paths with empty, '.' or '..' components or absolute are refused") {
    CHECK(MemberPathProblem("base/1/1259") == "");
    CHECK(MemberPathProblem("PG_VERSION") == "");
    CHECK(MemberPathProblem("..") != "");
    CHECK(MemberPathProblem("../x") != "");
    CHECK(MemberPathProblem("a/../../x") != "");
    CHECK(MemberPathProblem("escape/.") != "");
    CHECK(MemberPathProblem("a/./b") != "");
    CHECK(MemberPathProblem(".") != "");
    CHECK(MemberPathProblem("a//b") != "");
    CHECK(MemberPathProblem("/etc/passwd") != "");
    CHECK(MemberPathProblem("") != "");
  }

  TEST_CASE("a well-formed data directory tar extracts, with its tablespace link mapped") {
    ForBothResolvers([&] {
      Scene s({"PG_VERSION", "base/1/1259"});
      TarBuilder tar;
      tar.Add("base", "", '5');
      tar.Add("base/1", "", '5');
      tar.Add("base/1/1259", "12345");
      tar.Add("PG_VERSION", "15\n\n\n");
      tar.Add("pg_notify", "", '5');  // empty directories need no manifest entry
      tar.Add("pg_wal", "", '5');
      tar.Add("./pg_wal/archive_status", "", '5');  // as PostgreSQL writes it
      tar.Add("pg_tblspc", "", '5');
      tar.Add("pg_tblspc/16384", "", '2', "/where/it/was");
      CHECK(s.Extract(tar, {{"pg_tblspc/16384", s.tmp / "ts-new"}}) == "no exception");
      CHECK(test::ReadFile(s.target + "/base/1/1259") == "12345");
      CHECK(test::ReadFile(s.target + "/PG_VERSION") == "15\n\n\n");
      CHECK(std::filesystem::read_symlink(s.target + "/pg_tblspc/16384") == s.tmp / "ts-new");
      CHECK(std::filesystem::is_directory(s.target + "/pg_notify"));
      CHECK(std::filesystem::is_directory(s.target + "/pg_wal/archive_status"));
      struct stat st {};
      REQUIRE(stat((s.target + "/base/1/1259").c_str(), &st) == 0);
      CHECK((st.st_mode & 0777) == 0600);
    });
  }

  TEST_CASE("a symlink out of the target and a member written through it are refused") {
    ForBothResolvers([&] {
      Scene s({"escape/victim", "escape/new"});
      TarBuilder tar;
      tar.Add("escape", "", '2', s.outside);
      tar.Add("escape/victim", "owned");
      CHECK(s.Extract(tar) == "kCorrupt");
      s.CheckOutsideUntouched();
      CHECK_FALSE(Exists(s.target + "/escape"));
    });
  }

  TEST_CASE("an allowed tablespace link is never written through") {
    ForBothResolvers([&] {
      Scene s({"pg_tblspc/16384/victim", "pg_tblspc/16384/sub/new"});
      for (const char* member : {"pg_tblspc/16384/victim", "pg_tblspc/16384/sub/new"}) {
        TarBuilder tar;
        tar.Add("pg_tblspc/16384", "", '2', s.outside);
        tar.Add(member, "owned");
        std::filesystem::remove_all(s.target + "/pg_tblspc");
        CHECK(s.Extract(tar, {{"pg_tblspc/16384", s.outside}}) == "kCorrupt");
        s.CheckOutsideUntouched();
      }
    });
  }

  TEST_CASE("a directory member 'escape/.' does not chmod what a link points at") {
    ForBothResolvers([&] {
      Scene s({});
      TarBuilder tar;
      tar.Add("escape", "", '2', s.outside);
      tar.Add("escape/.", "", '5');
      CHECK(s.Extract(tar, {{"escape", s.outside}}) == "kCorrupt");
      s.CheckOutsideUntouched();
      // Even with the link in place and a plain name: no chmod through it.
      TarBuilder through;
      through.Add("escape", "", '5');
      CHECK(s.Extract(through) == "kCorrupt");
      s.CheckOutsideUntouched();
    });
  }

  TEST_CASE("'..', absolute and empty-component members are refused") {
    ForBothResolvers([&] {
      for (std::string member : {std::string("../outside/victim"), std::string("a/../../outside/victim"),
                                 std::string("/") + "tmp/x", std::string("a//victim")}) {
        INFO(member);
        Scene s({member});
        if (member[0] == '/') member = s.outside + "/victim";
        s.manifest.files[0].path = member;
        TarBuilder tar;
        tar.Add(member, "owned");
        CHECK(s.Extract(tar) == "kCorrupt");
        s.CheckOutsideUntouched();
        CHECK(ListTree(s.target).empty());
      }
    });
  }

  TEST_CASE("a file the manifest does not list is refused before it is created") {
    Scene s({"PG_VERSION"});
    TarBuilder tar;
    tar.Add("PG_VERSION", "15\n\n\n");
    tar.Add("postgresql.auto.conf", "restore_command = 'rm -rf /'");
    CHECK(s.Extract(tar) == "kCorrupt");
    CHECK_FALSE(Exists(s.target + "/postgresql.auto.conf"));
  }

  TEST_CASE("hard links and links outside pg_tblspc/<oid> are refused") {
    Scene s({"victim"});
    TarBuilder hard;
    hard.Add("victim", "", '1', s.outside + "/victim");
    CHECK(s.Extract(hard) == "kCorrupt");
    CHECK(ListTree(s.target).empty());
    TarBuilder soft;
    soft.Add("pg_wal", "", '2', s.outside);
    CHECK(s.Extract(soft, {{"pg_tblspc/16384", s.outside}}) == "kCorrupt");
    CHECK(ListTree(s.target).empty());
    s.CheckOutsideUntouched();
  }

  TEST_CASE("a file created twice, or over a link, is refused") {
    ForBothResolvers([&] {
      Scene s({"PG_VERSION"});
      symlink((s.outside + "/victim").c_str(), (s.target + "/PG_VERSION").c_str());
      TarBuilder tar;
      tar.Add("PG_VERSION", "owned");
      CHECK(s.Extract(tar) == "kCorrupt");
      s.CheckOutsideUntouched();
      TargetDir dir(s.target);
      CHECK(test::ThrownCode([&] { dir.WriteFile("PG_VERSION", "x", true); }) == "kCorrupt");
      s.CheckOutsideUntouched();
    });
  }

  TEST_CASE("UpdateInPlace writes only the blocks that differ, cuts files and swaps types") {
    ForBothResolvers([&] {
      Scene s({});
      const std::string a = std::string(8192, 'a') + std::string(8192, 'b') + std::string(8192, 'c');
      const std::string b(10000, 'x');
      s.manifest.files = {{"a", a.size(), "", ""}, {"b", b.size(), "", ""}, {"c", 3, "", ""},
                          {"e", 2, "", ""}};
      std::string damaged = a;
      damaged[8192 + 100] = 'Z';  // block 1 of "a"
      test::WriteFile(s.target + "/a", damaged);
      test::WriteFile(s.target + "/b", b + std::string(10000, 'x'));  // longer, same prefix
      test::WriteFile(s.target + "/d", "a file where the backup has a directory");
      mkdir((s.target + "/e").c_str(), 0700);
      test::WriteFile(s.target + "/e/inside", "a directory where the backup has a file");
      TarBuilder tar;
      tar.Add("a", a);
      tar.Add("b", b);
      tar.Add("c", "new");
      tar.Add("d", "", '5');
      tar.Add("e", "ee");
      const auto run = s.ExtractInPlace(tar);
      REQUIRE(run.thrown == "no exception");
      CHECK(test::ReadFile(s.target + "/a") == a);
      CHECK(test::ReadFile(s.target + "/b") == b);
      CHECK(test::ReadFile(s.target + "/c") == "new");
      CHECK(std::filesystem::is_directory(s.target + "/d"));
      CHECK(test::ReadFile(s.target + "/e") == "ee");
      // Block 1 of "a", the whole new "c" and "e"; "b" is only cut.
      CHECK(run.written == 8192 + 3 + 2);
      CHECK(run.listed.files == std::map<std::string, uint64_t>{
                                {"a", a.size()}, {"b", b.size()}, {"c", 3}, {"e", 2}});
      CHECK(run.listed.directories == std::set<std::string>{"d"});
    });
  }

  TEST_CASE("UpdateInPlace writes one changed page as 8 KiB, however the tar's reads fall") {
    for (size_t step : {size_t{5000}, size_t{12000}, size_t{8192}, size_t{100000}}) {
      INFO("read step " << step);
      Scene s({});
      std::string page_data;
      for (int i = 0; i < 4 * 8192; ++i) page_data.push_back(static_cast<char>('a' + i % 23));
      s.manifest.files = {{"rel", page_data.size(), "", ""}};
      std::string old = page_data;
      for (size_t i = 2 * 8192; i < 3 * 8192; ++i) old[i] = 'Z';  // page 2, all of it
      test::WriteFile(s.target + "/rel", old);
      TarBuilder tar;
      tar.Add("rel", page_data);
      const auto run = s.ExtractInPlace(tar, step);
      REQUIRE(run.thrown == "no exception");
      CHECK(test::ReadFile(s.target + "/rel") == page_data);
      CHECK(run.written == 8192);
    }
  }

  TEST_CASE("TargetDir::HoldBack writes a file under its stand-in until PublishHeldBack") {
    ForBothResolvers([&] {
      Scene s({});
      mkdir((s.target + "/global").c_str(), 0700);
      test::WriteFile(s.target + "/global/pg_control", "old");
      {
        TargetDir dir(s.target);
        dir.HoldBack(kPgControlPath, kPgControlStandIn);
        dir.WriteFile(kPgControlPath, "new");
        CHECK(test::ReadFile(s.target + "/global/pg_control") == "old");
        CHECK(test::ReadFile(s.target + "/" + kPgControlStandIn) == "new");
        dir.PublishHeldBack();
        CHECK(test::ReadFile(s.target + "/global/pg_control") == "new");
        CHECK_FALSE(Exists(s.target + "/" + kPgControlStandIn));
      }
      // Never written: nothing to publish, nothing changed.
      TargetDir dir(s.target);
      dir.HoldBack(kPgControlPath, kPgControlStandIn);
      dir.PublishHeldBack();
      CHECK(test::ReadFile(s.target + "/global/pg_control") == "new");
    });
  }

  TEST_CASE("WalkBeneath never follows a directory swapped for a link while it walks") {
    Scene s({});
    mkdir((s.target + "/a").c_str(), 0700);
    test::WriteFile(s.target + "/a/f", "x");
    TargetDir dir(s.target);
    std::vector<std::string> seen;
    const std::string thrown = test::ThrownCode([&] {
      WalkBeneath(dir.fd(), s.target, [&](int, const std::string&, const std::string& rel,
                                          const struct stat&) {
        seen.push_back(rel);
        if (rel == "a") {  // after its lstat, before it is opened: the swap
          REQUIRE(rename((s.target + "/a").c_str(), (s.target + "/moved").c_str()) == 0);
          REQUIRE(symlink(s.outside.c_str(), (s.target + "/a").c_str()) == 0);
        }
        return WalkStep::kDescend;
      });
    });
    CHECK(thrown == "kLocalIo");
    CHECK(seen == std::vector<std::string>{"a"});  // nothing of "outside" was visited
    s.CheckOutsideUntouched();
  }

  TEST_CASE("WalkBeneath calls leave after all a directory holds, for descended ones only") {
    Scene s({});
    mkdir((s.target + "/a").c_str(), 0700);
    mkdir((s.target + "/a/b").c_str(), 0700);
    mkdir((s.target + "/skipped").c_str(), 0700);
    test::WriteFile(s.target + "/a/b/f", "x");
    test::WriteFile(s.target + "/a/g", "x");
    TargetDir dir(s.target);
    std::vector<std::string> trace;
    WalkBeneath(
        dir.fd(), s.target,
        [&](int, const std::string&, const std::string& rel, const struct stat&) {
          trace.push_back("visit " + rel);
          return rel == "skipped" ? WalkStep::kSkip : WalkStep::kDescend;
        },
        [&](int parent, const std::string& name, const std::string& rel) {
          struct stat st {};
          CHECK(fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0);  // from `parent`
          CHECK(S_ISDIR(st.st_mode));
          trace.push_back("leave " + rel);
        });
    const auto at = [&](const std::string& step) {
      const auto it = std::find(trace.begin(), trace.end(), step);
      REQUIRE(it != trace.end());
      return it - trace.begin();
    };
    CHECK(trace.size() == 7);  // 5 visits, 2 leaves: none for "skipped" or files
    CHECK(at("leave a/b") > at("visit a/b/f"));
    CHECK(at("leave a") > at("leave a/b"));
    CHECK(at("leave a") > at("visit a/g"));
    CHECK(std::find(trace.begin(), trace.end(), "leave skipped") == trace.end());
  }

  TEST_CASE("RemoveDirectoryTree removes a tree, never what a link inside points at") {
    Scene s({});
    mkdir((s.target + "/gone").c_str(), 0700);
    mkdir((s.target + "/gone/sub").c_str(), 0700);
    test::WriteFile(s.target + "/gone/sub/f", "x");
    REQUIRE(symlink(s.outside.c_str(), (s.target + "/gone/link").c_str()) == 0);
    TargetDir dir(s.target);
    RemoveDirectoryTree(dir.fd(), "gone", s.target + "/gone");
    CHECK_FALSE(Exists(s.target + "/gone"));
    s.CheckOutsideUntouched();
  }

  TEST_CASE("UpdateInPlace never removes a mount point where the backup has a file") {
    // A directory where the backup has a file, with (or being) a mount
    // point: restore --delta must refuse, naming it, and delete nothing.
    // A bind mount of a directory of the same file system has the same
    // st_dev: only its mount id tells it apart.
    for (const bool bind : {false, true})
    for (const std::string mounted : {"d/mnt", "d"}) {
      CAPTURE(mounted);
      CAPTURE(bind);
      Scene s({"d"});
      mkdir((s.target + "/d").c_str(), 0700);
      if (mounted != "d") mkdir((s.target + "/" + mounted).c_str(), 0700);
      test::WriteFile(s.target + "/d/keep", "beside the mount point");
      const std::string mount_point = s.target + "/" + mounted;
      const std::string source = s.outside + "/bound";
      mkdir(source.c_str(), 0700);
      const int mounted_rc = bind ? mount(source.c_str(), mount_point.c_str(), nullptr, MS_BIND, nullptr)
                                  : mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1m");
      if (mounted_rc != 0) {
        MESSAGE("skipped: cannot mount here (" << std::strerror(errno) << "; needs root)");
        return;
      }
      struct Unmount {
        std::string path;
        ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
      } unmount{mount_point};
      test::WriteFile(mount_point + "/other-fs", "another file system's");
      TarBuilder tar;
      tar.Add("d", "now a file");
      TargetDir dir(s.target);
      ManifestChecker checker(s.manifest);
      BackupExtractor extractor(checker, [](uint64_t) {});
      DeltaContents listed;
      extractor.UpdateInPlace(listed);
      test::TrickleReadStream in(tar.out, SIZE_MAX);
      const auto error =
          test::ThrownError([&] { extractor.Extract(in, &dir, "", {}, "base.tar"); });
      REQUIRE(error);
      CHECK(error->code() == ErrorCode::kUsage);
      CHECK(test::Contains(error->what(), mount_point + " is a mount point"));
      CHECK(test::ReadFile(mount_point + "/other-fs") == "another file system's");
      if (mounted != "d") CHECK(test::ReadFile(s.target + "/d/keep") == "beside the mount point");
    }
  }

  TEST_CASE("UpdateInPlace never writes through a hard link shared with a file outside") {
    ForBothResolvers([&] {
      Scene s({});
      const std::string old_bytes = std::string(8192, 'o') + "tail";
      s.manifest.files = {{"rel", 5, "", ""}};
      test::WriteFile(s.outside + "/copy", old_bytes);
      chmod((s.outside + "/copy").c_str(), 0640);
      REQUIRE(link((s.outside + "/copy").c_str(), (s.target + "/rel").c_str()) == 0);
      TarBuilder tar;
      tar.Add("rel", "fresh");
      const auto run = s.ExtractInPlace(tar);
      REQUIRE(run.thrown == "no exception");
      CHECK(test::ReadFile(s.target + "/rel") == "fresh");
      CHECK(test::ReadFile(s.outside + "/copy") == old_bytes);
      struct stat outside {}, inside {};
      REQUIRE(stat((s.outside + "/copy").c_str(), &outside) == 0);
      REQUIRE(stat((s.target + "/rel").c_str(), &inside) == 0);
      CHECK((outside.st_mode & 0777) == 0640);
      CHECK(outside.st_nlink == 1);
      CHECK(inside.st_ino != outside.st_ino);
      CHECK(run.written == 5);
    });
  }

  TEST_CASE("UpdateInPlace never writes through a link where the backup has a file") {
    ForBothResolvers([&] {
      Scene s({"PG_VERSION"});
      symlink((s.outside + "/victim").c_str(), (s.target + "/PG_VERSION").c_str());
      TarBuilder tar;
      tar.Add("PG_VERSION", "owned");
      CHECK(s.ExtractInPlace(tar).thrown == "kCorrupt");
      s.CheckOutsideUntouched();
    });
  }
}

}  // namespace
}  // namespace walstore::backup
