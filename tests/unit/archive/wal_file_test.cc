// Tests for src/lib/archive/wal_file.cc.
#include <doctest/doctest.h>

#include <walstore/error.h>
#include <walstore/wal_file.h>
#include <walstore/wal_name.h>

#include <string>

#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::LongHeaderFields;
using walstore::test::MakeLongHeader;

namespace {
Bytes B(const std::string& s) { return AsBytes(s); }
}  // namespace

TEST_SUITE("wal_file") {
  TEST_CASE("ParseWalLongHeader reads every field of a PostgreSQL 15 long header") {
    LongHeaderFields f;
    f.timeline = 3;
    f.page_address = 0xA00000000ull + 0xFE000000ull;  // segment 0xA/0xFE of 16 MiB
    f.system_id = 7312345678901234567ull;
    f.segment_size = 16u << 20;
    f.block_size = 8192;
    const std::string h = MakeLongHeader(f);
    REQUIRE(h.size() == kWalLongHeaderSize);
    auto parsed = ParseWalLongHeader(B(h));
    REQUIRE(parsed.has_value());
    CHECK(parsed->magic == 0xD110);
    CHECK(parsed->info == kXlpLongHeader);
    CHECK(parsed->timeline == 3);
    CHECK(parsed->page_address == 0xAFE000000ull);
    CHECK(parsed->system_id == 7312345678901234567ull);
    CHECK(parsed->segment_size == 16u << 20);
    CHECK(parsed->block_size == 8192);
  }

  TEST_CASE("ParseWalLongHeader accepts more bytes than the header and other flag bits") {
    LongHeaderFields f;
    f.info = 0x0002 | 0x0001 | 0x0004;  // long header + contrecord + bkp removable
    std::string h = MakeLongHeader(f) + std::string(8192 - 40, 'x');
    auto parsed = ParseWalLongHeader(B(h));
    REQUIRE(parsed.has_value());
    CHECK(parsed->info == f.info);
  }

  TEST_CASE("ParseWalLongHeader accepts older and newer magics") {
    for (uint16_t magic : {uint16_t{0xD093}, uint16_t{0xD101}, uint16_t{0xD113}, uint16_t{0xD116}}) {
      LongHeaderFields f;
      f.magic = magic;
      auto parsed = ParseWalLongHeader(B(MakeLongHeader(f)));
      CAPTURE(magic);
      REQUIRE(parsed.has_value());
      CHECK(parsed->magic == magic);
    }
  }

  TEST_CASE("ParseWalLongHeader refuses what is not a long page header") {
    {
      LongHeaderFields f;
      f.info = 0x0000;  // short header
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.info = 0x0001;
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.segment_size = 12345;  // not a power of two
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.segment_size = 2u << 30;  // above 1 GiB
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.segment_size = 0;
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.block_size = 0;
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.block_size = 1000;
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    {
      LongHeaderFields f;
      f.magic = 0x1234;  // not a WAL magic at all
      CHECK_FALSE(ParseWalLongHeader(B(MakeLongHeader(f))).has_value());
    }
    // Too short.
    const std::string h = MakeLongHeader(LongHeaderFields{});
    CHECK_FALSE(ParseWalLongHeader(B(h.substr(0, 39))).has_value());
    CHECK_FALSE(ParseWalLongHeader(Bytes()).has_value());
    // All zeros (a preallocated, never written segment).
    CHECK_FALSE(ParseWalLongHeader(B(std::string(40, '\0'))).has_value());
  }

  TEST_CASE("CheckSegmentHeader accepts a matching header") {
    const uint64_t seg_size = 16u << 20;
    auto name = ParseWalFileNameOrThrow("000000030000000A000000FE");
    LongHeaderFields f;
    f.timeline = 3;
    f.page_address = name.SegmentNumber(seg_size) * seg_size;
    f.segment_size = seg_size;
    auto h = ParseWalLongHeader(B(MakeLongHeader(f)));
    REQUIRE(h.has_value());
    CHECK_NOTHROW(CheckSegmentHeader(*h, name, seg_size, "pg_wal/000000030000000A000000FE"));
    // 1 MiB segments too.
    auto small = ParseWalFileNameOrThrow("000000010000000000000003");
    f.timeline = 1;
    f.segment_size = 1u << 20;
    f.page_address = 3ull << 20;
    auto hs = ParseWalLongHeader(B(MakeLongHeader(f)));
    REQUIRE(hs.has_value());
    CHECK_NOTHROW(CheckSegmentHeader(*hs, small, 1u << 20, "x"));
  }

  TEST_CASE("the first segment of a timeline that began inside it keeps its parent's header") {
    // PostgreSQL 15 ending recovery at a target inside 000000010000000000000005 starts
    // 000000020000000000000005 with a copy of timeline 1's pages: its long header says
    // timeline 1 (seen in the walctl standby test).  That file is valid WAL of timeline 2.
    const uint64_t seg_size = 16u << 20;
    LongHeaderFields f;
    f.timeline = 1;
    f.page_address = 5 * seg_size;
    f.segment_size = seg_size;
    auto h = ParseWalLongHeader(B(MakeLongHeader(f)));
    REQUIRE(h.has_value());
    for (const char* name : {"000000020000000000000005", "000000070000000000000005",
                             "000000020000000000000005.partial"}) {
      CAPTURE(name);
      CHECK_FALSE(SegmentHeaderMismatch(*h, ParseWalFileNameOrThrow(name), seg_size));
    }
    // Still the same segment number, and never a newer timeline than the name's.
    CHECK(SegmentHeaderMismatch(*h, ParseWalFileNameOrThrow("000000020000000000000006"), seg_size));
    f.timeline = 3;
    auto newer = ParseWalLongHeader(B(MakeLongHeader(f)));
    REQUIRE(newer.has_value());
    CHECK(SegmentHeaderMismatch(*newer, ParseWalFileNameOrThrow("000000020000000000000005"),
                                seg_size));
  }

  TEST_CASE("CheckSegmentHeader refuses mismatches with kNotWal") {
    const uint64_t seg_size = 16u << 20;
    auto name = ParseWalFileNameOrThrow("000000030000000A000000FE");
    const uint64_t segno = name.SegmentNumber(seg_size);
    LongHeaderFields good;
    good.timeline = 3;
    good.page_address = segno * seg_size;
    good.segment_size = seg_size;

    SUBCASE("timeline newer than the name's") {
      LongHeaderFields f = good;
      f.timeline = 4;
      auto h = ParseWalLongHeader(B(MakeLongHeader(f)));
      REQUIRE(h.has_value());
      CHECK_CODE(CheckSegmentHeader(*h, name, seg_size, "p"), ErrorCode::kNotWal);
      const std::string msg =
          walstore::test::ThrownMessage([&] { CheckSegmentHeader(*h, name, seg_size, "p"); });
      CHECK(Contains(msg, "000000030000000A000000FE"));
    }
    SUBCASE("segment (page address of the next segment)") {
      LongHeaderFields f = good;
      f.page_address = (segno + 1) * seg_size;
      auto h = ParseWalLongHeader(B(MakeLongHeader(f)));
      REQUIRE(h.has_value());
      CHECK_CODE(CheckSegmentHeader(*h, name, seg_size, "p"), ErrorCode::kNotWal);
    }
    SUBCASE("page address not at the segment start") {
      LongHeaderFields f = good;
      f.page_address = segno * seg_size + 8192;
      auto h = ParseWalLongHeader(B(MakeLongHeader(f)));
      REQUIRE(h.has_value());
      CHECK_CODE(CheckSegmentHeader(*h, name, seg_size, "p"), ErrorCode::kNotWal);
    }
    SUBCASE("file size differs from the header's segment size") {
      auto h = ParseWalLongHeader(B(MakeLongHeader(good)));
      REQUIRE(h.has_value());
      CHECK_CODE(CheckSegmentHeader(*h, name, seg_size - 1, "p"), ErrorCode::kNotWal);
      CHECK_CODE(CheckSegmentHeader(*h, name, seg_size / 2, "p"), ErrorCode::kNotWal);
      CHECK_CODE(CheckSegmentHeader(*h, name, 0, "p"), ErrorCode::kNotWal);
    }
    SUBCASE("header segment size differs from the file size") {
      LongHeaderFields f = good;
      f.segment_size = 32u << 20;
      f.page_address = name.SegmentNumber(32u << 20) * (32ull << 20);
      auto h = ParseWalLongHeader(B(MakeLongHeader(f)));
      REQUIRE(h.has_value());
      CHECK_CODE(CheckSegmentHeader(*h, name, seg_size, "p"), ErrorCode::kNotWal);
    }
  }

  TEST_CASE("ReadControlFileSystemId") {
    walstore::test::TempDir dir;
    CHECK_FALSE(ReadControlFileSystemId(dir.path()).has_value());
    std::string control(8192, '\0');
    walstore::test::StoreLe64(reinterpret_cast<uint8_t*>(control.data()), 7312345678901234567ull);
    control[8] = 0x55;  // pg_control_version etc. follow
    walstore::test::WriteFile(dir / "global/pg_control", control);
    auto id = ReadControlFileSystemId(dir.path());
    REQUIRE(id.has_value());
    CHECK(*id == 7312345678901234567ull);
  }

  TEST_CASE("ReadControlFileSystemId on a too short pg_control throws") {
    walstore::test::TempDir dir;
    walstore::test::WriteFile(dir / "global/pg_control", "1234");
    CHECK_THROWS_AS(ReadControlFileSystemId(dir.path()), Error);
  }
}
