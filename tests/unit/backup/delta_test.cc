// Tests for src/lib/backup/delta.cc: block maps, delta archives, applying them.
#include "backup/delta.h"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "backup/extract.h"
#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

using testing::TarBuilder;
using test::TempDir;

std::string Blocks(std::initializer_list<char> fill) {
  std::string out;
  for (char c : fill) out += std::string(kDeltaBlockSize, c);
  return out;
}

struct Scanned {
  std::string blockmap;
  std::string delta;
  ScanStats stats;
};

// Scans `tar` against `reference` (nullptr: a full backup's scan when
// `with_delta` is false).
Scanned Scan(const TarBuilder& tar, const BlockMap* reference, bool with_delta = true) {
  Scanned out;
  StringWriteStream map_out, delta_out;
  BlockMapWriter map(map_out);
  MemoryReadStream in(tar.out);
  TarReader reader(in, "base.tar");
  out.stats = ScanArchive(reader, "", map, reference, with_delta ? &delta_out : nullptr);
  map.Finish();
  out.blockmap = map_out.data();
  out.delta = delta_out.data();
  return out;
}

BlockMap MapOf(const std::string& blockmap) {
  MemoryReadStream in(blockmap);
  return ReadBlockMap(in, "blockmap");
}

DeltaContents Apply(const std::string& delta, TargetDir* target,
                    const std::map<std::string, std::string>& links = {}) {
  MemoryReadStream in(delta);
  return ApplyDelta(in, target, links, "base.delta", [](uint64_t) {});
}

// The first state of a small data directory, and a later one.
TarBuilder First() {
  TarBuilder tar;
  tar.Add("base", "", '5');
  tar.Add("base/1", "", '5');
  tar.Add("base/1/100", Blocks({'a', 'b', 'c', 'd'}));  // 4 blocks
  tar.Add("base/1/200", Blocks({'x', 'y'}));
  tar.Add("base/1/300", Blocks({'p', 'q', 'r'}));
  tar.Add("gone", "", '5');
  tar.Add("gone/file", "short file");
  tar.Add("PG_VERSION", "15\n");
  return tar;
}
TarBuilder Second() {
  TarBuilder tar;
  tar.Add("base", "", '5');
  tar.Add("base/1", "", '5');
  tar.Add("base/1/100", Blocks({'a', 'B', 'c', 'd'}));  // block 1 changed
  tar.Add("base/1/200", Blocks({'x', 'y', 'z'}));       // grew by one block
  tar.Add("base/1/300", Blocks({'p'}));                 // shrank to one block
  tar.Add("base/1/400", "a new file");
  tar.Add("PG_VERSION", "15\n");                        // unchanged
  return tar;
}

}  // namespace

TEST_SUITE("backup_delta") {
  TEST_CASE("a block map lists every file's size and block hashes") {
    const Scanned full = Scan(First(), nullptr, /*with_delta=*/false);
    CHECK(full.delta.empty());
    CHECK(full.stats.files == 5);
    CHECK(full.stats.logical_bytes == 9 * kDeltaBlockSize + 10 + 3);
    const BlockMap map = MapOf(full.blockmap);
    REQUIRE(map.size() == 5);
    CHECK(map.at("base/1/100").size == 4 * kDeltaBlockSize);
    REQUIRE(map.at("base/1/100").hashes.size() == 4);
    CHECK(map.at("base/1/100").hashes[0] != map.at("base/1/100").hashes[1]);
    CHECK(map.at("base/1/100").hashes[0] == HashBlock(AsBytes(Blocks({'a'}))));
    CHECK(map.at("gone/file").hashes.size() == 1);
  }

  TEST_CASE("a tablespace archive's files are keyed by their manifest path") {
    TarBuilder tar;
    tar.Add("PG_15_202209061/5/100", Blocks({'t'}));
    StringWriteStream map_out;
    BlockMapWriter map(map_out);
    MemoryReadStream in(tar.out);
    TarReader reader(in, "16385.tar");
    ScanArchive(reader, "pg_tblspc/16385/", map, nullptr, nullptr);
    map.Finish();
    CHECK(MapOf(map_out.data()).contains("pg_tblspc/16385/PG_15_202209061/5/100"));
  }

  TEST_CASE("a delta stores only the blocks that differ from the reference") {
    const BlockMap reference = MapOf(Scan(First(), nullptr, false).blockmap);
    const Scanned incr = Scan(Second(), &reference);
    // base/1/100 block 1, base/1/200 block 2, base/1/400 (new); 300 shrank, PG_VERSION same.
    CHECK(incr.stats.stored_blocks == 3);
    CHECK(incr.stats.stored_bytes == 2 * kDeltaBlockSize + 10);
    CHECK(incr.delta.size() < 3 * kDeltaBlockSize);
    // Its own block map is the whole new state, for the next incr.
    const BlockMap map = MapOf(incr.blockmap);
    CHECK(map.at("base/1/200").hashes.size() == 3);
    CHECK(map.at("base/1/300").size == kDeltaBlockSize);
    CHECK_FALSE(map.contains("gone/file"));
  }

  TEST_CASE("without a reference every block is stored") {
    const Scanned delta = Scan(First(), nullptr);
    CHECK(delta.stats.stored_blocks == 11);
    CHECK(delta.stats.stored_bytes == delta.stats.logical_bytes);
  }

  TEST_CASE("applying a delta on the reference's files rebuilds the new state exactly") {
    TempDir tmp;
    const std::string root = tmp / "r";
    mkdir(root.c_str(), 0700);
    TargetDir target(root);
    // The reference laid down from a delta against nothing (every block).
    Apply(Scan(First(), nullptr).delta, &target);
    CHECK(test::ReadFile(root + "/base/1/300") == Blocks({'p', 'q', 'r'}));
    const BlockMap reference = MapOf(Scan(First(), nullptr, false).blockmap);
    const DeltaContents contents = Apply(Scan(Second(), &reference).delta, &target);
    CHECK(test::ReadFile(root + "/base/1/100") == Blocks({'a', 'B', 'c', 'd'}));
    CHECK(test::ReadFile(root + "/base/1/200") == Blocks({'x', 'y', 'z'}));
    CHECK(test::ReadFile(root + "/base/1/300") == Blocks({'p'}));
    CHECK(test::ReadFile(root + "/base/1/400") == "a new file");
    CHECK(test::ReadFile(root + "/PG_VERSION") == "15\n");
    // What the delta lists, so that restore removes the rest ("gone").
    CHECK(contents.files.size() == 5);
    CHECK(contents.files.at("base/1/200") == 3 * kDeltaBlockSize);
    CHECK_FALSE(contents.files.contains("gone/file"));
    CHECK(contents.directories == std::set<std::string>{"base", "base/1"});
  }

  TEST_CASE("a damaged or hostile delta is kCorrupt") {
    const std::string good = Scan(First(), nullptr).delta;
    auto code = [](const std::string& delta, const std::map<std::string, std::string>& links = {}) {
      return test::ThrownCode([&] { Apply(delta, nullptr, links); });
    };
    CHECK(code(good) == "no exception");
    CHECK(code(good.substr(0, good.size() - 1)) == test::CodeName(ErrorCode::kCorrupt));
    CHECK(code(good.substr(0, good.size() / 2)) == test::CodeName(ErrorCode::kCorrupt));
    CHECK(code(good + "x") == test::CodeName(ErrorCode::kCorrupt));
    CHECK(code("not a delta") == test::CodeName(ErrorCode::kCorrupt));

    TarBuilder escape;
    escape.Add("../outside", "x");
    CHECK(code(Scan(escape, nullptr).delta) == test::CodeName(ErrorCode::kCorrupt));
    TarBuilder link;
    link.Add("pg_tblspc/16385", "", '2', "/etc");
    const std::string with_link = Scan(link, nullptr).delta;
    CHECK(code(with_link) == test::CodeName(ErrorCode::kCorrupt));
    CHECK(code(with_link, {{"pg_tblspc/16385", "/srv/ts"}}) == "no exception");

    // A block number beyond the file's size.
    TarBuilder one;
    one.Add("f", Blocks({'a'}));
    std::string bad = Scan(one, nullptr).delta;
    const size_t at = bad.find(std::string("\0\0\0\0", 4) + std::string(16, 'a'));
    REQUIRE(at != std::string::npos);
    bad[at] = 1;  // block 1 of a one-block file
    CHECK(code(bad) == test::CodeName(ErrorCode::kCorrupt));
  }

  TEST_CASE("a damaged block map is kCorrupt") {
    const std::string good = Scan(First(), nullptr, false).blockmap;
    auto code = [](const std::string& map) { return test::ThrownCode([&] { MapOf(map); }); };
    CHECK(code(good) == "no exception");
    CHECK(code(good.substr(0, good.size() - 1)) == test::CodeName(ErrorCode::kCorrupt));
    CHECK(code(good + "x") == test::CodeName(ErrorCode::kCorrupt));
    CHECK(code("WALSTORE-DELTA 1\n") == test::CodeName(ErrorCode::kCorrupt));
  }

  TEST_CASE("a block map stating a huge or untruthful size is kCorrupt, never a huge allocation") {
    auto code = [](const std::string& map) { return test::ThrownCode([&] { MapOf(map); }); };
    // One file of 2^40 bytes (2^27 hashes, 2 GiB) whose hashes are missing.
    StringWriteStream out;
    BlockMapWriter writer(out);
    FileBlocks huge;
    huge.size = uint64_t{1} << 40;
    writer.Add("base/1/100", huge);  // the size, no hash
    CHECK(code(out.data()) == test::CodeName(ErrorCode::kCorrupt));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // Memory follows the bytes present: with 256 MiB more address space than
    // the test already uses, the 2 GiB the size states would not fit.
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      long pages = 0;
      if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
        std::fclose(statm);
      }
      const rlim_t limit = static_cast<rlim_t>(pages) * sysconf(_SC_PAGESIZE) + (256u << 20);
      const struct rlimit rl {limit, limit};
      if (pages == 0 || setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
      _exit(code(out.data()) == test::CodeName(ErrorCode::kCorrupt) ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
#endif
    // Beyond 2^40 bytes: refused as soon as the size is read.
    for (const uint64_t size : {(uint64_t{1} << 40) + 1, UINT64_MAX}) {
      StringWriteStream out2;
      BlockMapWriter writer2(out2);
      huge.size = size;
      writer2.Add("base/1/100", huge);
      writer2.Finish();
      CHECK(code(out2.data()) == test::CodeName(ErrorCode::kCorrupt));
    }
  }

  TEST_CASE("a delta file size beyond 2^40 bytes is kCorrupt, not an I/O error") {
    TarBuilder one;
    one.Add("f", "");  // no block: the size alone reaches ftruncate
    std::string delta = Scan(one, nullptr).delta;
    // The 'F' record: type, mode (4), path length (2), "f", then the size (8).
    const size_t at = delta.find(std::string("\x01\x00" "f", 3));
    REQUIRE(at != std::string::npos);
    for (size_t i = 0; i < 8; ++i) delta[at + 3 + i] = '\xff';
    TempDir tmp;
    const std::string root = tmp / "r";
    mkdir(root.c_str(), 0700);
    TargetDir target(root);
    CHECK(test::ThrownCode([&] { Apply(delta, &target); }) == test::CodeName(ErrorCode::kCorrupt));
  }

  TEST_CASE("a path that switched between directory and file within a chain is replaced") {
    TempDir tmp;
    const std::string root = tmp / "r";
    mkdir(root.c_str(), 0700);
    TargetDir target(root);
    Apply(Scan(First(), nullptr).delta, &target);  // "gone" is a directory holding a file
    const BlockMap reference = MapOf(Scan(First(), nullptr, false).blockmap);
    TarBuilder later;
    later.Add("gone", "now a file");   // the directory became a file
    later.Add("PG_VERSION", "", '5');  // the file became a directory
    later.Add("PG_VERSION/inside", "data");
    Apply(Scan(later, &reference).delta, &target);
    CHECK(test::ReadFile(root + "/gone") == "now a file");
    CHECK(test::ReadFile(root + "/PG_VERSION/inside") == "data");
    // The same path as both in one delta is damage.
    TarBuilder both;
    both.Add("x", "", '5');
    both.Add("x", "file");
    CHECK(test::ThrownCode([&] { Apply(Scan(both, nullptr).delta, nullptr); }) ==
          test::CodeName(ErrorCode::kCorrupt));
  }
}

}  // namespace walstore::backup
