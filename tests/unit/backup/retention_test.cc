#include <walstore/backup/retention.h>

#include <doctest/doctest.h>
#include <walstore/error.h>

#include <algorithm>

#include "test_helpers.h"

namespace walstore::backup {
namespace {

using testing::MakeBackup;
using testing::Seg;
using testing::Wal;

std::vector<std::string> Names(const std::vector<WalObject>& wal) {
  std::vector<std::string> out;
  for (const auto& w : wal) out.push_back(w.name.text);
  return out;
}

const double kDay = 86400;

// A diff or incr on `chain` (the full first).
BackupRecord MakeDelta(const std::string& label, double start_time, uint64_t start_seg,
                       BackupType type, std::vector<std::string> chain) {
  BackupRecord b = MakeBackup(label, start_time, start_seg);
  b.type = type;
  b.reference = chain.back();
  b.chain = std::move(chain);
  return b;
}

// Two chains: f1 <- i1, and f2 <- d2 <- i2.
std::vector<BackupRecord> TwoChains() {
  return {MakeBackup("f1", 1 * kDay, 2), MakeDelta("i1", 2 * kDay, 4, BackupType::kIncr, {"f1"}),
          MakeBackup("f2", 3 * kDay, 6), MakeDelta("d2", 4 * kDay, 8, BackupType::kDiff, {"f2"}),
          MakeDelta("i2", 5 * kDay, 10, BackupType::kIncr, {"f2", "d2"})};
}

TEST_SUITE("backup_retention") {
  TEST_CASE("keep-full counts full backups and keeps their diffs and incrs") {
    RetentionPlan plan = PlanRetention(TwoChains(), {}, {1, std::nullopt, 6 * kDay});
    CHECK(plan.keep_backups == std::vector<std::string>{"f2", "d2", "i2"});
    CHECK(plan.remove_backups == std::vector<std::string>{"f1", "i1"});
    plan = PlanRetention(TwoChains(), {}, {2, std::nullopt, 6 * kDay});
    CHECK(plan.remove_backups.empty());
  }

  TEST_CASE("a kept diff or incr keeps every backup of its chain") {
    // Only i2 is needed for the window (the newest before it); its chain comes along.
    RetentionPlan plan = PlanRetention(TwoChains(), {}, {std::nullopt, 0.0001, 5 * kDay + 100});
    CHECK(plan.keep_backups == std::vector<std::string>{"f2", "d2", "i2"});
    CHECK(plan.remove_backups == std::vector<std::string>{"f1", "i1"});
    // The WAL threshold follows the oldest kept backup, the chain's full.
    std::vector<WalObject> wal;
    for (uint64_t s = 1; s <= 12; ++s) wal.push_back(Seg(1, s));
    plan = PlanRetention(TwoChains(), wal, {std::nullopt, 0.0001, 5 * kDay + 100});
    CHECK(plan.wal_threshold.at(1) == 6);
  }

  TEST_CASE("keep-full keeps the newest N and only the WAL they need") {
    std::vector<BackupRecord> backups = {MakeBackup("b1", 1 * kDay, 2),
                                         MakeBackup("b2", 2 * kDay, 5),
                                         MakeBackup("b3", 3 * kDay, 9)};
    std::vector<WalObject> wal;
    for (uint64_t s = 1; s <= 12; ++s) wal.push_back(Seg(1, s));
    wal.push_back(Wal("000000010000000000000004.00000028.backup"));
    RetentionPlan plan = PlanRetention(backups, wal, {2, std::nullopt, 4 * kDay});
    CHECK(plan.remove_backups == std::vector<std::string>{"b1"});
    CHECK(plan.keep_backups == std::vector<std::string>{"b2", "b3"});
    CHECK(Names(plan.remove_wal) ==
          std::vector<std::string>{"000000010000000000000001", "000000010000000000000002",
                                   "000000010000000000000003", "000000010000000000000004",
                                   "000000010000000000000004.00000028.backup"});
    CHECK(plan.wal_threshold.at(1) == 5);
  }

  TEST_CASE("keep-days keeps the newest backup before the window too") {
    std::vector<BackupRecord> backups = {MakeBackup("old", 1 * kDay, 2),
                                         MakeBackup("edge", 5 * kDay, 5),
                                         MakeBackup("new", 9 * kDay, 9)};
    RetentionPlan plan = PlanRetention(backups, {}, {std::nullopt, 3.0, 10 * kDay});
    // Window starts at day 7: "new" is inside, "edge" is needed to reach day 7..9.
    CHECK(plan.keep_backups == std::vector<std::string>{"edge", "new"});
    CHECK(plan.remove_backups == std::vector<std::string>{"old"});
  }

  TEST_CASE("the newest complete backup is always kept; incomplete ones by age") {
    std::vector<BackupRecord> backups = {MakeBackup("c1", 1 * kDay, 2),
                                         MakeBackup("i-old", 0.5 * kDay, 1, 1, false),
                                         MakeBackup("i-new", 2 * kDay, 4, 1, false)};
    RetentionPlan plan = PlanRetention(backups, {}, {std::nullopt, 0.0, 100 * kDay});
    CHECK(plan.keep_backups == std::vector<std::string>{"c1", "i-new"});
    CHECK(plan.remove_backups == std::vector<std::string>{"i-old"});
  }

  TEST_CASE("nothing is removed without a complete backup") {
    std::vector<BackupRecord> backups = {MakeBackup("i", 1 * kDay, 2, 1, false)};
    RetentionPlan plan = PlanRetention(backups, {Seg(1, 1)}, {1, std::nullopt, 2 * kDay});
    CHECK(plan.remove_backups.empty());
    CHECK(plan.remove_wal.empty());
  }

  TEST_CASE("timelines: history files stay, later timelines keep what old backups replay") {
    // b1 on timeline 1 from segment 3; timeline 2 forked at segment 6; b2 on
    // timeline 2 from segment 8.  Keep both: timeline 1 below 3 goes, timeline 2
    // keeps everything from 3 (b1 replays across the switch).
    std::vector<BackupRecord> backups = {MakeBackup("b1", 1 * kDay, 3, 1),
                                         MakeBackup("b2", 2 * kDay, 8, 2)};
    std::vector<WalObject> wal = {
        Seg(1, 1), Seg(1, 2), Seg(1, 3), Seg(1, 6), Wal("00000002.history"), Seg(2, 6), Seg(2, 8)};
    RetentionPlan plan = PlanRetention(backups, wal, {2, std::nullopt, 3 * kDay});
    CHECK(Names(plan.remove_wal) ==
          std::vector<std::string>{"000000010000000000000001", "000000010000000000000002"});
    // Keep only b2: timeline 1 has no kept backup at or below it -> threshold of b2.
    plan = PlanRetention(backups, wal, {1, std::nullopt, 3 * kDay});
    CHECK(Names(plan.remove_wal) ==
          std::vector<std::string>{"000000010000000000000001", "000000010000000000000002",
                                   "000000010000000000000003", "000000010000000000000006",
                                   "000000020000000000000006"});
  }

  TEST_CASE("RemovalOrder: a backup goes only after everything depending on it, whatever the clocks say") {
    // i1 was taken on a host whose clock is behind: it sorts before its full.
    std::vector<BackupRecord> skewed = {MakeDelta("i1", 1 * kDay - 600, 4, BackupType::kIncr, {"f1"}),
                                        MakeBackup("f1", 1 * kDay, 2),
                                        MakeDelta("i2", 1 * kDay + 60, 5, BackupType::kIncr,
                                                  {"f1", "i1"}),
                                        MakeBackup("f2", 3 * kDay, 6)};
    CHECK(RemovalOrder(skewed, {"i1", "f1", "i2"}) ==
          std::vector<std::string>{"i2", "i1", "f1"});
    // Independent backups: newest first; backups not removed are not listed.
    CHECK(RemovalOrder(TwoChains(), {"f1", "i1", "f2"}) ==
          std::vector<std::string>{"f2", "i1", "f1"});
    // A forged cycle still ends.
    std::vector<BackupRecord> cycle = {MakeDelta("a", 1, 2, BackupType::kIncr, {"b"}),
                                       MakeDelta("b", 2, 3, BackupType::kIncr, {"a"})};
    CHECK(RemovalOrder(cycle, {"a", "b"}).size() == 2);
  }

  TEST_CASE("policy validation") {
    CHECK_THROWS_AS(PlanRetention({}, {}, {}), Error);
    CHECK_THROWS_AS(PlanRetention({}, {}, {1, 2.0, 0}), Error);
    CHECK_THROWS_AS(PlanRetention({}, {}, {0, std::nullopt, 0}), Error);
  }
}

}  // namespace
}  // namespace walstore::backup
