#include <walstore/backup/continuity.h>

#include <doctest/doctest.h>

#include <walstore/backup/util.h>
#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

using testing::kSeg;
using testing::MakeBackup;
using testing::Seg;
using testing::Wal;

TEST_SUITE("backup_continuity") {
  TEST_CASE("no gap when every segment from the backup to the newest is there") {
    std::vector<WalObject> wal;
    for (uint64_t s = 2; s <= 9; ++s) wal.push_back(Seg(1, s));
    CHECK(FindWalGaps({MakeBackup("b", 1, 3)}, wal, {}, kSeg).empty());
  }

  TEST_CASE("gaps are merged into name ranges") {
    std::vector<WalObject> wal = {Seg(1, 3), Seg(1, 4), Seg(1, 8), Seg(1, 9), Seg(1, 11)};
    auto gaps = FindWalGaps({MakeBackup("b", 1, 3)}, wal, {}, kSeg);
    REQUIRE(gaps.size() == 2);
    CHECK(gaps[0].first == "000000010000000000000005");
    CHECK(gaps[0].last == "000000010000000000000007");
    CHECK(gaps[0].count == 3);
    CHECK(gaps[1].first == "00000001000000000000000A");
    CHECK(gaps[1].count == 1);
  }

  TEST_CASE("a backup's own range must be there even at the end of the archive") {
    BackupRecord b = MakeBackup("b", 1, 3);
    b.stop_lsn = 5 * kSeg + 10;  // needs 3..5
    auto gaps = FindWalGaps({b}, {Seg(1, 3)}, {}, kSeg);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0].first == "000000010000000000000004");
    CHECK(gaps[0].last == "000000010000000000000005");
  }

  TEST_CASE("follows the newest timeline's history across the switch") {
    // Timeline 2 forked from 1 inside segment 6.
    std::vector<TimelineSwitch> history = {{1, 6 * kSeg + 0x100}};
    std::vector<WalObject> wal = {Seg(1, 3), Seg(1, 4), Seg(1, 5),
                                  Seg(1, 6), Seg(1, 7), Wal("00000002.history"),
                                  Seg(2, 6), Seg(2, 7), Seg(2, 8)};
    CHECK(FindWalGaps({MakeBackup("b", 1, 3)}, wal, history, kSeg).empty());
    // Without timeline 2's segment 7 there is a gap on timeline 2, even though
    // timeline 1 has a segment 7 (recovery follows timeline 2 from segment 6).
    wal.erase(wal.begin() + 7);
    auto gaps = FindWalGaps({MakeBackup("b", 1, 3)}, wal, history, kSeg);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0].timeline == 2);
    CHECK(gaps[0].first == "000000020000000000000007");
  }

  TEST_CASE("a backup off the newest timeline's path is checked on its own timeline") {
    std::vector<TimelineSwitch> history = {{1, 4 * kSeg}};
    std::vector<WalObject> wal = {
        Seg(1, 2), Seg(1, 3), Seg(1, 6), Seg(1, 8), Wal("00000002.history"), Seg(2, 4)};
    auto gaps = FindWalGaps({MakeBackup("late-on-1", 1, 6)}, wal, history, kSeg);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0].first == "000000010000000000000007");
    CHECK(gaps[0].last == "000000010000000000000007");
  }

  TEST_CASE("LatestTimeline and history parsing") {
    CHECK(LatestTimeline({Seg(1, 1), Wal("00000003.history"), Seg(2, 5)}) == 3);
    auto h =
        ParseHistory("1\t0/3000000\tno recovery target specified\n\n2\t1/A0\tbefore 2000-01-01\n");
    REQUIRE(h.size() == 2);
    CHECK(h[0].timeline == 1);
    CHECK(h[0].switch_lsn == 0x3000000);
    CHECK(h[1].switch_lsn == 0x1000000A0ull);
  }
}

TEST_SUITE("backup_util") {
  TEST_CASE("an LSN is two hexadecimal 32-bit numbers and nothing else (kUsage otherwise)") {
    for (const char* bad : {"", "/", "1/", "/2", "1//2", "1/2/3", "-1/0", "+1/0", "0x1/0",
                            "1/0x2", " 1/2", "1/2 ", "1/123456789", "100000000/0", "g/0"}) {
      CAPTURE(bad);
      CHECK_FALSE(TryParseLsn(bad));
      CHECK_CODE(ParseLsn(bad), ErrorCode::kUsage);
    }
    CHECK(TryParseLsn("16/b374d848") == 0x16B374D848ull);
  }

  TEST_CASE("LSNs, timestamps and quoting") {
    CHECK(ParseLsn("16/B374D848") == 0x16B374D848ull);
    CHECK(FormatLsn(0x16B374D848ull) == "16/B374D848");
    CHECK_THROWS(ParseLsn("nope"));
    CHECK(ParseLsn("0/0") == 0);
    CHECK(ParseLsn("ffffffff/FFFFFFFF") == UINT64_MAX);
    CHECK(*ParseTimestamp("2026-11-21 11:20:14+00") == doctest::Approx(1795260014));
    CHECK(*ParseTimestamp("2026-11-21T12:20:14.5+01:00") == doctest::Approx(1795260014.5));
    CHECK(*ParseTimestamp("2026-11-21 11:20:14Z") == doctest::Approx(1795260014));
    CHECK_FALSE(ParseTimestamp("yesterday"));
    CHECK(*ParseTimestamp("2026-11-21 11:20:14-0130") == doctest::Approx(1795260014 + 5400));
    CHECK_FALSE(ParseTimestamp("2026-11-21 11:20:14+0x"));
    CHECK_FALSE(ParseTimestamp("2026-11-21 11:20:14+-1"));
    CHECK(FormatUtc(1795260014) == "2026-11-21T11:20:14Z");
    CHECK(ShellQuote("it's") == "'it'\\''s'");
    CHECK(ConfQuote("it's") == "'it''s'");
  }
}

}  // namespace
}  // namespace walstore::backup
