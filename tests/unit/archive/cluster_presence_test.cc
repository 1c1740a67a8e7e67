// Tests for src/lib/archive/cluster_presence.cc: a wrong system id must show
// in the log even though walfetch answers "missing".
#include "archive/cluster_presence.h"

#include <doctest/doctest.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <string>

#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::CaptureStderr;
using walstore::test::Contains;
using walstore::test::PutObject;

namespace {

struct Store {
  Store() {
    ResetMemoryStorage(name);
    storage = OpenMemoryStorage(name);
  }
  ~Store() {
    ResetMemoryStorage(name);
    SetLogLevel(level);
  }
  std::string name = "cluster-presence-test";
  std::unique_ptr<Storage> storage;
  LogLevel level = GetLogLevel();
};

std::string WarningFor(Storage& storage, uint64_t system_id) {
  CaptureStderr capture;
  WarnIfClusterAbsent(storage, system_id);
  return capture.Text();
}

}  // namespace

TEST_SUITE("cluster_presence") {
  TEST_CASE("nothing of the cluster: one WARNING naming the id looked for and the ids held") {
    Store s;
    SetLogLevel(LogLevel::kNotice);  // the default
    REQUIRE(PutObject(*s.storage, "111/wal/0000000100000000/000000010000000000000001", "x") ==
            CommitResult::kCreated);
    REQUIRE(PutObject(*s.storage, "222/backup/20260101T000000Z/backup.json", "x") ==
            CommitResult::kCreated);
    const std::string text = WarningFor(*s.storage, 4242);
    CHECK(Contains(text, "WARNING:  memory://cluster-presence-test holds no WAL and no backup of "
                         "cluster 4242"));
    CHECK(Contains(text, "it holds clusters 111, 222\n"));
    CHECK(Contains(text, "HINT:"));
  }

  TEST_CASE("the cluster has WAL or a backup: silence") {
    Store s;
    REQUIRE(PutObject(*s.storage, "111/wal/00000002.history", "x") == CommitResult::kCreated);
    REQUIRE(PutObject(*s.storage, "222/backup/l/backup.json", "x") == CommitResult::kCreated);
    CHECK(WarningFor(*s.storage, 111).empty());
    CHECK(WarningFor(*s.storage, 222).empty());
  }

  TEST_CASE("an empty repository, many clusters, a quiet log level") {
    Store s;
    CHECK(Contains(WarningFor(*s.storage, 4242), "it holds no cluster at all"));
    for (int id = 10; id < 25; ++id) {
      REQUIRE(PutObject(*s.storage, std::to_string(id) + "/wal/x", "x") == CommitResult::kCreated);
    }
    REQUIRE(PutObject(*s.storage, "not-a-cluster/x", "x") == CommitResult::kCreated);
    const std::string text = WarningFor(*s.storage, 4242);
    CHECK(Contains(text, "clusters 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, ...\n"));
    CHECK_FALSE(Contains(text, "not-a-cluster"));
    SetLogLevel(LogLevel::kError);
    CHECK(WarningFor(*s.storage, 4242).empty());
  }

  TEST_CASE("FetchWalFile warns on the missing path only for an absent cluster") {
    Store s;
    walstore::test::TempDir dir;
    Config config;
    config.repo_url = "memory://" + s.name;
    config.prefetch = 0;
    REQUIRE(PutObject(*s.storage, "111/wal/00000002.history", "x") == CommitResult::kCreated);
    config.system_id = 111;
    {
      CaptureStderr capture;
      CHECK(FetchWalFile(*s.storage, config, "000000010000000000000003", dir / "d").outcome ==
            FetchOutcome::kMissing);
      CHECK(capture.Text().empty());
    }
    config.system_id = 999;
    CaptureStderr capture;
    CHECK(FetchWalFile(*s.storage, config, "000000010000000000000003", dir / "d").outcome ==
          FetchOutcome::kMissing);
    const std::string text = capture.Text();
    CHECK(Contains(text, "cluster 999"));
    CHECK(Contains(text, "it holds clusters 111\n"));
  }

  TEST_CASE("a probe that fails never changes FetchWalFile's answer") {
    // The key is positively absent; only the listings behind the diagnostic fail.
    class ListingFails : public Storage {
     public:
      std::optional<ObjectInfo> Stat(const std::string&) override { return std::nullopt; }
      std::unique_ptr<ReadStream> OpenRead(const std::string&) override { return nullptr; }
      std::unique_ptr<ObjectWriter> Create(const std::string&, const WriteOptions&) override {
        Fail(ErrorCode::kInternal, "unused");
      }
      void List(const std::string&, const std::function<void(const ObjectInfo&)>&) override {
        ++listings;
        Fail(ErrorCode::kNetwork, "listing timed out (test)");
      }
      std::vector<std::string> ListChildren(const std::string&, size_t) override {
        ++listings;
        Fail(ErrorCode::kNetwork, "listing timed out (test)");
      }
      bool Remove(const std::string&) override { return false; }
      std::string Describe() const override { return "flaky://"; }
      int listings = 0;
    } storage;
    walstore::test::TempDir dir;
    Config config;
    config.repo_url = "flaky://";
    config.prefetch = 0;
    config.system_id = 111;
    CaptureStderr capture;
    CHECK(FetchWalFile(storage, config, "000000010000000000000003", dir / "d").outcome ==
          FetchOutcome::kMissing);
    // One presence probe, not two listings, and the hole check's listing
    // (archive_gap.cc), which with one repository only warns as well.
    CHECK(storage.listings == 2);
    CHECK(Contains(capture.Text(), "WARNING:  could not check flaky:// for later WAL than "
                                   "000000010000000000000003: listing timed out (test)"));
  }

  TEST_CASE("the probe sees a cluster whose objects all sit two levels down") {
    // s3rver's delimiter listing misses such "directories"; AnyBelow has no
    // delimiter.  Here: only <id>/wal/<timeline dir>/<segment>.
    Store s;
    REQUIRE(PutObject(*s.storage, "111/wal/0000000100000000/000000010000000000000001", "x") ==
            CommitResult::kCreated);
    CHECK(HoldsCluster(*s.storage, 111));
    CHECK_FALSE(HoldsCluster(*s.storage, 11));
    CHECK(WarningFor(*s.storage, 111).empty());
  }
}
