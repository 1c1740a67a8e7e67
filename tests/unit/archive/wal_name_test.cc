// Tests for src/lib/archive/wal_name.cc.
#include <doctest/doctest.h>

#include <walstore/error.h>
#include <walstore/wal_name.h>

#include <string>

#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;

TEST_SUITE("wal_name") {
  TEST_CASE("segment") {
    auto n = ParseWalFileName("000000010000000A000000FE");
    REQUIRE(n.has_value());
    CHECK(n->kind == WalFileKind::kSegment);
    CHECK(n->timeline == 1);
    CHECK(n->log == 0xA);
    CHECK(n->segment == 0xFE);
    CHECK(n->backup_offset == 0);
    CHECK(n->text == "000000010000000A000000FE");
    CHECK(n->TimelineLogPrefix() == "000000010000000A");
  }

  TEST_CASE("segment with every field at its maximum") {
    auto n = ParseWalFileName("FFFFFFFFFFFFFFFFFFFFFFFF");
    REQUIRE(n.has_value());
    CHECK(n->timeline == 0xFFFFFFFFu);
    CHECK(n->log == 0xFFFFFFFFu);
    CHECK(n->segment == 0xFFFFFFFFu);
    CHECK(n->TimelineLogPrefix() == "FFFFFFFFFFFFFFFF");
  }

  TEST_CASE("partial") {
    auto n = ParseWalFileName("000000020000000100000003.partial");
    REQUIRE(n.has_value());
    CHECK(n->kind == WalFileKind::kPartial);
    CHECK(n->timeline == 2);
    CHECK(n->log == 1);
    CHECK(n->segment == 3);
    CHECK(n->text == "000000020000000100000003.partial");
    CHECK(n->TimelineLogPrefix() == "0000000200000001");
  }

  TEST_CASE("history") {
    auto n = ParseWalFileName("0000000A.history");
    REQUIRE(n.has_value());
    CHECK(n->kind == WalFileKind::kHistory);
    CHECK(n->timeline == 10);
    CHECK(n->text == "0000000A.history");
    CHECK(n->TimelineLogPrefix().empty());
  }

  TEST_CASE("backup history with offset") {
    auto n = ParseWalFileName("000000010000000A000000FE.00000028.backup");
    REQUIRE(n.has_value());
    CHECK(n->kind == WalFileKind::kBackupHistory);
    CHECK(n->timeline == 1);
    CHECK(n->log == 0xA);
    CHECK(n->segment == 0xFE);
    CHECK(n->backup_offset == 0x28);
    CHECK(n->text == "000000010000000A000000FE.00000028.backup");
    CHECK(n->TimelineLogPrefix() == "000000010000000A");
  }

  TEST_CASE("SegmentNumber for 16 MiB and 1 GiB segments") {
    auto n = ParseWalFileName("000000010000000A000000FE");
    REQUIRE(n.has_value());
    // 4 GiB per "log": 256 segments of 16 MiB.
    CHECK(n->SegmentNumber(16u << 20) == 0xAull * 256 + 0xFE);
    auto g = ParseWalFileName("000000010000000A00000003");
    REQUIRE(g.has_value());
    // 4 segments of 1 GiB per log.
    CHECK(g->SegmentNumber(1u << 30) == 0xAull * 4 + 3);
    CHECK(g->SegmentNumber(1u << 20) == 0xAull * 4096 + 3);
    auto p = ParseWalFileName("000000010000000A000000FE.partial");
    REQUIRE(p.has_value());
    CHECK(p->SegmentNumber(16u << 20) == 0xAull * 256 + 0xFE);
  }

  TEST_CASE("SegmentFileName round trip") {
    CHECK(SegmentFileName(1, 0xAull * 256 + 0xFE, 16u << 20) == "000000010000000A000000FE");
    CHECK(SegmentFileName(1, 0xAull * 4 + 3, 1u << 30) == "000000010000000A00000003");
    CHECK(SegmentFileName(0x1F, 0, 16u << 20) == "0000001F0000000000000000");
    for (uint64_t seg_size : {1ull << 20, 16ull << 20, 64ull << 20, 1ull << 30}) {
      for (uint64_t segno : {0ull, 1ull, 255ull, 256ull, 4095ull, 4096ull, 123456789ull}) {
        CAPTURE(seg_size);
        CAPTURE(segno);
        const std::string name = SegmentFileName(3, segno, seg_size);
        auto parsed = ParseWalFileName(name);
        REQUIRE(parsed.has_value());
        CHECK(parsed->kind == WalFileKind::kSegment);
        CHECK(parsed->timeline == 3);
        CHECK(parsed->SegmentNumber(seg_size) == segno);
      }
    }
  }

  TEST_CASE("IsValidSegmentSize") {
    CHECK(IsValidSegmentSize(1u << 20));
    CHECK(IsValidSegmentSize(16u << 20));
    CHECK(IsValidSegmentSize(1u << 30));
    CHECK_FALSE(IsValidSegmentSize(0));
    CHECK_FALSE(IsValidSegmentSize(512u << 10));
    CHECK_FALSE(IsValidSegmentSize(3u << 20));
    CHECK_FALSE(IsValidSegmentSize((16u << 20) + 1));
    CHECK_FALSE(IsValidSegmentSize(2ull << 30));
  }

  TEST_CASE("refused names") {
    const std::string too_long(65, 'A');
    const char* refused[] = {
        "",
        "../../x",
        "a/b",
        "/000000010000000A000000FE",
        "000000010000000A000000FE/",
        "pg_wal/000000010000000A000000FE",
        "..",
        ".",
        "000000010000000a000000fe",          // lower case
        "000000010000000A000000Fe",          // one lower-case digit
        "000000010000000A000000F",           // 23 hex
        "000000010000000A000000FE0",         // 25 hex
        "000000010000000A000000FG",          // not hex
        "000000010000000A000000FE.gz",       // bad suffix
        "000000010000000A000000FE.partia",
        "000000010000000A000000FE.PARTIAL",
        "000000010000000A000000FE.partial.partial",
        "000000010000000A000000FE.",
        "000000010000000A000000FE.history",  // .history with 24 hex
        "00000001.History",
        "0000001.history",
        "000000001.history",
        "0000000a.history",
        ".history",
        "000000010000000A000000FE.backup",           // no offset
        "000000010000000A000000FE.0000028.backup",   // 7-digit offset
        "000000010000000A000000FE.000000280.backup", // 9-digit offset
        "000000010000000A000000FE.0000002g.backup",
        "000000010000000A000000FE.00000028.BACKUP",
        "00000001.00000028.backup",
        " 000000010000000A000000FE",
        "000000010000000A000000FE ",
        "000000010000000A000000FE\n",
        "+00000010000000A000000FE",
        "-00000010000000A000000FE",
        "0x000001000000A000000FE",
    };
    for (const char* name : refused) {
      CAPTURE(std::string(name));
      CHECK_FALSE(ParseWalFileName(name).has_value());
    }
    CHECK_FALSE(ParseWalFileName(too_long).has_value());
    CHECK_FALSE(ParseWalFileName(too_long + ".backup").has_value());
    CHECK_FALSE(ParseWalFileName(std::string(200, '0')).has_value());
    // Embedded NUL, at the end and in the middle.
    const std::string with_nul_end("000000010000000A000000FE\0", 25);
    CHECK_FALSE(ParseWalFileName(with_nul_end).has_value());
    std::string with_nul_mid = "000000010000000A000000FE";
    with_nul_mid[5] = '\0';
    CHECK_FALSE(ParseWalFileName(with_nul_mid).has_value());
    const std::string nul_then_suffix("000000010000000A000000FE\0.partial", 33);
    CHECK_FALSE(ParseWalFileName(nul_then_suffix).has_value());
  }

  TEST_CASE("text is kept exactly and names compare by value") {
    auto a = ParseWalFileName("000000010000000A000000FE");
    auto b = ParseWalFileName("000000010000000A000000FE");
    auto c = ParseWalFileName("000000010000000A000000FE.partial");
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    REQUIRE(c.has_value());
    CHECK(*a == *b);
    CHECK_FALSE(*a == *c);
  }

  TEST_CASE("ParseWalFileNameOrThrow") {
    auto n = ParseWalFileNameOrThrow("00000002.history");
    CHECK(n.kind == WalFileKind::kHistory);
    CHECK(n.timeline == 2);
    for (const char* bad : {"../../x", "000000010000000a000000fe", "nonsense.backup", ""}) {
      CAPTURE(std::string(bad));
      CHECK_THROWS_AS(ParseWalFileNameOrThrow(bad), Error);
      CHECK_CODE(ParseWalFileNameOrThrow(bad), ErrorCode::kInvalidName);
      const std::string msg = walstore::test::ThrownMessage([&] { ParseWalFileNameOrThrow(bad); });
      CHECK(Contains(msg, bad));
    }
  }
}
