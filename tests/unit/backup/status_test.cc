// walctl status's health rules and the archiver check walctl backup uses while
// it waits for WAL (src/lib/backup/status.cc).
#include <walstore/backup/status.h>

#include <doctest/doctest.h>

namespace walstore::backup {
namespace {

ArchiverStats Stats(uint64_t failed, std::optional<double> failed_at,
                    std::optional<double> archived_at) {
  ArchiverStats a;
  a.archived_count = archived_at ? 7 : 0;
  a.last_archived_wal = archived_at ? "000000010000000000000002" : "";
  a.last_archived_time = archived_at;
  a.failed_count = failed;
  a.last_failed_wal = failed_at ? "000000010000000000000003" : "";
  a.last_failed_time = failed_at;
  return a;
}

TEST_SUITE("backup_status") {
  TEST_CASE("the archiver is failing only when its last failure is newer than its last success") {
    const double t = 1'800'000'000;  // 2027-01-15T08:00:00Z
    auto failing = ArchiverFailure(Stats(3, t, t - 60));
    REQUIRE(failing);
    CHECK(*failing == "archiving is failing: last failure 000000010000000000000003 at "
                      "2027-01-15T08:00:00Z (3 failures)");
    CHECK(ArchiverFailure(Stats(3, t, std::nullopt)));  // never archived anything
    CHECK_FALSE(ArchiverFailure(Stats(3, t - 60, t)));  // recovered since
    CHECK_FALSE(ArchiverFailure(Stats(0, std::nullopt, t)));
    CHECK_FALSE(ArchiverFailure(Stats(0, std::nullopt, std::nullopt)));
  }

  TEST_CASE("status lists a failing archiver as a problem, and a recovered one not") {
    const double t = 1'800'000'000;
    Inventory inventory;
    StatusReport failing = BuildStatus(inventory, "file:///r", Stats(2, t, t - 5), {}, t + 1);
    REQUIRE(failing.problems.size() == 1);
    CHECK(failing.problems[0].starts_with("archiving is failing: last failure"));
    StatusReport healthy = BuildStatus(inventory, "file:///r", Stats(2, t - 5, t), {}, t + 1);
    CHECK(healthy.problems.empty());
    StatusReport unknown = BuildStatus(inventory, "file:///r", std::nullopt, {}, t + 1);
    CHECK(unknown.problems.empty());
  }

  TEST_CASE("objects sync kept aside (the quarantine) are a problem naming count, size, age") {
    const double t = 1'800'000'000;
    Inventory inventory;
    inventory.system_id = 42;
    CHECK(BuildStatus(inventory, "file:///r", std::nullopt, {}, t, Quarantine{}).problems.empty());
    const StatusReport kept =
        BuildStatus(inventory, "file:///r", std::nullopt, {}, t, Quarantine{2, 3 << 20, t - 60});
    CHECK(kept.quarantine.objects == 2);
    REQUIRE(kept.problems.size() == 1);
    CHECK(kept.problems[0] ==
          "2 object(s) (3.0 MiB) kept aside under 42/damaged/, the oldest since "
          "2027-01-15T07:59:00Z: damage was found there; inspect and remove them "
          "(docs/operations.md, \"Objects kept aside\")");
  }
}

}  // namespace
}  // namespace walstore::backup
