#include "backup/tar_reader.h"

#include <doctest/doctest.h>
#include <walstore/error.h>

#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

using testing::TarBuilder;

std::string ReadAll(TarReader& tar) {
  std::string out;
  uint8_t buf[7];  // small on purpose: data crosses many reads
  while (size_t n = tar.Read(MutableBytes(buf, sizeof buf)))
    out.append(reinterpret_cast<char*>(buf), n);
  return out;
}

TEST_SUITE("backup_tar") {
  TEST_CASE("reads files, directories and symlinks of a ustar archive") {
    TarBuilder b;
    b.Add("global", "", '5');
    b.Add("global/pg_control", std::string(8192, 'c'));
    b.Add("PG_VERSION", "15\n");
    b.Add("pg_tblspc/16385", "", '2', "/srv/tblspc");
    MemoryReadStream in(b.out);
    TarReader tar(in, "test.tar");
    auto e = tar.Next();
    REQUIRE(e);
    CHECK(e->type == TarEntry::Type::kDirectory);
    CHECK(e->path == "global");
    e = tar.Next();
    REQUIRE(e);
    CHECK(e->path == "global/pg_control");
    CHECK(e->size == 8192);
    CHECK(e->mode == 0600);
    CHECK(ReadAll(tar) == std::string(8192, 'c'));
    e = tar.Next();  // PG_VERSION, data left unread: Next() skips it
    REQUIRE(e);
    CHECK(e->path == "PG_VERSION");
    e = tar.Next();
    REQUIRE(e);
    CHECK(e->type == TarEntry::Type::kSymlink);
    CHECK(e->link_target == "/srv/tblspc");
    CHECK_FALSE(tar.Next());
    CHECK_FALSE(tar.Next());
  }

  TEST_CASE("zero blocks end the archive") {
    TarBuilder b;
    b.Add("a", "x");
    b.out.append(1024, '\0');
    b.Add("after-the-end", "y");
    MemoryReadStream in(b.out);
    TarReader tar(in, "t");
    CHECK(tar.Next()->path == "a");
    CHECK_FALSE(tar.Next());
  }

  TEST_CASE("pax path and size, GNU long names and the ustar prefix") {
    std::string long_name(180, 'n');
    TarBuilder b;
    b.AddPax("path", "base/1/" + long_name);
    b.Add("ignored", "pax data");
    b.Add("././@LongLink", long_name + std::string(1, '\0'), 'L');
    b.Add("short", "gnu data");
    b.Add("file", "prefixed", '0', "", "some/dir");
    MemoryReadStream in(b.out);
    TarReader tar(in, "t");
    auto e = tar.Next();
    CHECK(e->path == "base/1/" + long_name);
    CHECK(ReadAll(tar) == "pax data");
    e = tar.Next();
    CHECK(e->path == long_name);
    CHECK(ReadAll(tar) == "gnu data");
    e = tar.Next();
    CHECK(e->path == "some/dir/file");
  }

  TEST_CASE("a pax size or record length that is not a number is kCorrupt") {
    for (const char* size : {"12x", "", "-1", "99999999999999999999999"}) {
      CAPTURE(size);
      TarBuilder b;
      b.AddPax("size", size);
      b.Add("file", "data");
      MemoryReadStream in(b.out);
      TarReader tar(in, "t.tar");
      auto error = test::ThrownError([&] { tar.Next(); });
      REQUIRE(error);
      CHECK(error->code() == ErrorCode::kCorrupt);
      CHECK(test::Contains(error->what(), "t.tar"));
    }
    // Record lengths: not a number, or too short to hold their own digits.
    for (const char* records : {"x path=a\n", "1 path=abc\n"}) {
      CAPTURE(records);
      TarBuilder b;
      b.Add("PaxHeader", records, 'x');
      b.Add("file", "data");
      MemoryReadStream in(b.out);
      TarReader tar(in, "t.tar");
      CHECK_CODE(tar.Next(), ErrorCode::kCorrupt);
    }
  }

  TEST_CASE("damage is an error, not garbage") {
    TarBuilder b;
    b.Add("a", "hello");
    SUBCASE("flipped header byte") {
      b.out[10] ^= 1;
      MemoryReadStream in(b.out);
      TarReader tar(in, "t");
      CHECK_THROWS_AS(tar.Next(), Error);
    }
    SUBCASE("truncated data") {
      std::string cut = b.out.substr(0, 514);
      MemoryReadStream in(cut);
      TarReader tar(in, "t");
      REQUIRE(tar.Next());
      uint8_t buf[16];
      CHECK(tar.Read(MutableBytes(buf, 2)) == 2);
      CHECK_THROWS_AS(tar.Read(MutableBytes(buf, 16)), Error);
    }
    SUBCASE("truncated header") {
      std::string cut = b.out.substr(0, 100);
      MemoryReadStream in(cut);
      TarReader tar(in, "t");
      CHECK_THROWS_AS(tar.Next(), Error);
    }
  }

  TEST_CASE("numeric fields: octal and base-256") {
    const uint8_t octal[12] = {'0', '0', '0', '0', '0', '0', '0', '1', '7', '7', '7', 0};
    CHECK(ParseTarNumber(octal, 12) == 01777);
    uint8_t big[12] = {0x80};
    big[7] = 0x02;  // 2 << 32
    CHECK(ParseTarNumber(big, 12) == (uint64_t{2} << 32));
  }
}

}  // namespace
}  // namespace walstore::backup
