// Tests for src/lib/backup/progress_reporter.cc: the library's side of the
// progress contract in walstore/backup/progress.h.
#include "backup/progress_reporter.h"

#include <doctest/doctest.h>

#include <vector>

namespace walstore::backup {
namespace {

TEST_SUITE("backup_progress") {
  TEST_CASE("byte counts only grow, and the last call is finished at 100 %") {
    std::vector<Progress> calls;
    ProgressReporter reporter([&](const Progress& p) { calls.push_back(p); }, 1000);
    for (uint64_t n : {100, 0, 250, 650}) reporter.Advance(n);
    reporter.Finish();
    REQUIRE(calls.size() == 5);
    for (size_t i = 1; i < calls.size(); ++i) {
      CHECK(calls[i].done_bytes >= calls[i - 1].done_bytes);
    }
    CHECK(calls[0].done_bytes == 100);
    CHECK(calls[2].done_bytes == 350);
    CHECK(calls[0].total_bytes == 1000);
    for (size_t i = 0; i + 1 < calls.size(); ++i) CHECK_FALSE(calls[i].finished);
    CHECK(calls.back().finished);
    CHECK(calls.back().done_bytes == 1000);
    CHECK(calls.back().total_bytes == 1000);
  }

  TEST_CASE("an estimate that was passed, or unknown, becomes the real size at the end") {
    for (uint64_t estimate : {uint64_t{0}, uint64_t{10}}) {
      std::vector<Progress> calls;
      ProgressReporter reporter([&](const Progress& p) { calls.push_back(p); }, estimate);
      reporter.Advance(40);
      reporter.Advance(2);
      reporter.Finish();
      REQUIRE(calls.size() == 3);
      CHECK(calls[1].total_bytes == estimate);
      CHECK(calls.back().finished);
      CHECK(calls.back().done_bytes == 42);
      CHECK(calls.back().total_bytes == 42);
    }
  }

  TEST_CASE("nothing is reported after the final call") {
    int calls = 0;
    ProgressReporter reporter([&](const Progress&) { ++calls; }, 5);
    reporter.Advance(5);
    reporter.Finish();
    reporter.Finish();
    reporter.Advance(1);
    CHECK(calls == 2);
    CHECK(reporter.done_bytes() == 5);
  }

  TEST_CASE("an empty callback reports nothing and still counts") {
    ProgressReporter reporter({}, 0);
    reporter.Advance(7);
    reporter.Finish();
    CHECK(reporter.done_bytes() == 7);
  }
}

}  // namespace
}  // namespace walstore::backup
