// Tests for src/lib/archive/repositories.cc: walpush to every repository,
// walfetch from the first that has a verified copy, "missing" only when every
// repository positively lacks the file, read-ahead under the same rule, and
// the best-effort record.
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/prefetch.h>
#include <walstore/repositories.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <string>

#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::Exists;
using walstore::test::MakeSegment;
using walstore::test::ReadAll;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

namespace {

constexpr uint64_t kSysId = 7312345678901234567ull;
constexpr uint32_t kSegSize = 1u << 20;

Key TestKey(uint8_t fill) { return walstore::test::SequenceKey(fill); }

// A repository that never answers (an S3 server that is down).
class UnreachableStorage : public Storage {
 public:
  [[noreturn]] static void Down() { Fail(ErrorCode::kNetwork, "connection refused (test)"); }
  std::optional<ObjectInfo> Stat(const std::string&) override { Down(); }
  std::unique_ptr<ReadStream> OpenRead(const std::string&) override { Down(); }
  std::unique_ptr<ObjectWriter> Create(const std::string&, const WriteOptions&) override { Down(); }
  void List(const std::string&, const std::function<void(const ObjectInfo&)>&) override { Down(); }
  std::vector<std::string> ListChildren(const std::string&, size_t) override { Down(); }
  bool Remove(const std::string&) override { Down(); }
  std::string Describe() const override { return "down://"; }
};

std::string FreshStoreName() {
  static std::atomic<int> n{0};
  return "repositories-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// Two memory repositories with their own keys, "first" and "second"; either
// can be made unreachable.
struct Fixture {
  Fixture() : first(FreshStoreName()), second(FreshStoreName()) {
    top.system_id = kSysId;
    top.chunk_size = 64u << 10;
    top.prefetch = 2;
    Config a = top;
    a.repo_url = "memory://" + first;
    a.key = TestKey(1);
    Config b = top;
    b.repo_url = "memory://" + second;
    b.key = TestKey(2);
    b.compression = CompressionSpec{Codec::kNone, 0};
    top.repositories = {a, b};
  }
  ~Fixture() {
    ResetMemoryStorage(first);
    ResetMemoryStorage(second);
  }

  RepositorySet Set() {
    return RepositorySet(top, [this](const Config& c) -> std::unique_ptr<Storage> {
      if (c.repo_url == top.repositories[0].repo_url && first_down) {
        return std::make_unique<UnreachableStorage>();
      }
      if (c.repo_url == top.repositories[1].repo_url && second_down) {
        return std::make_unique<UnreachableStorage>();
      }
      return OpenStorage(c);
    });
  }
  std::unique_ptr<Storage> Open(int i) { return OpenStorage(top.repositories[i]); }

  std::string Segment(const std::string& name, uint64_t seed = 3) {
    auto n = ParseWalFileNameOrThrow(name);
    const std::string path = dir / ("pg_wal/" + name);
    WriteFile(path, MakeSegment(n.timeline, n.SegmentNumber(kSegSize), kSegSize, kSysId, seed));
    return path;
  }
  std::string Key(const std::string& name) {
    return WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
  }
  // Pushes `name` into repository i only.
  void PushTo(int i, const std::string& name, uint64_t seed = 3) {
    PushWalFile(*Open(i), top.repositories[i], Segment(name, seed));
  }
  void Damage(int i, const std::string& name) {
    auto storage = Open(i);
    auto in = storage->OpenRead(Key(name));
    REQUIRE(in != nullptr);
    std::string raw = ReadAll(*in);
    raw[raw.size() / 2] ^= 0x01;
    storage->Remove(Key(name));
    auto w = storage->Create(Key(name));
    w->Write(AsBytes(raw));
    REQUIRE(w->Commit() == CommitResult::kCreated);
  }

  std::string first, second;
  Config top;
  bool first_down = false;
  bool second_down = false;
  TempDir dir;
};

const std::string kSeg = "000000010000000000000003";

// walfetch of kSeg, which no repository has, while the first holds nothing
// of the cluster: kNotARepository (exit 126) naming it, never "missing".
void CheckFirstIsNoProofOfAbsence(const Fixture& fx, RepositorySet& set,
                                  const std::string& dest) {
  walstore::test::CaptureStderr capture;
  try {
    FetchWalFileFromRepositories(set, kSeg, dest);
    FAIL("answered missing");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kNotARepository);
    CHECK(InfoFor(e.code()).fetch_exit == kFetchExitAbortRecovery);
    CHECK(Contains(e.what(), "repository 1 (memory://" + fx.first + ") holds nothing at all"));
    CHECK(Contains(e.hint(), "walctl sync"));
  }
}

}  // namespace

TEST_SUITE("repositories") {
  TEST_CASE("walpush opens the file once: a file replaced between repositories is not stored") {
    // The second repository is opened only after the first has stored the
    // segment; meanwhile the segment is replaced in pg_wal by another file.
    // Reading the name again per repository would store different content
    // under one name; walpush reads the file it opened for every repository
    // and finds it was replaced (no longer linked: its ctime changed).
    Fixture fx;
    const std::string path = fx.Segment(kSeg, 3);
    const std::string original = ReadFile(path);
    const std::string replacement_path = path + ".other";
    auto n = ParseWalFileNameOrThrow(kSeg);
    WriteFile(replacement_path, MakeSegment(n.timeline, n.SegmentNumber(kSegSize), kSegSize,
                                            kSysId, 4));
    REQUIRE(ReadFile(replacement_path) != original);
    RepositorySet set(fx.top, [&](const Config& c) -> std::unique_ptr<Storage> {
      if (c.repo_url == fx.top.repositories[1].repo_url) {
        REQUIRE(std::rename(replacement_path.c_str(), path.c_str()) == 0);
      }
      return OpenStorage(c);
    });
    CHECK_CODE(PushWalFileToRepositories(set, path, {}), ErrorCode::kLocalIo);
    const std::string dest = fx.dir / "restored";
    CHECK(RestoreObjectToFile(*fx.Open(0), fx.top.repositories[0], fx.Key(kSeg), dest));
    CHECK(ReadFile(dest) == original);
    CHECK_FALSE(RestoreObjectToFile(*fx.Open(1), fx.top.repositories[1], fx.Key(kSeg), dest));
  }

  TEST_CASE("walpush stores in every repository, each with its own key and compression") {
    Fixture fx;
    const std::string path = fx.Segment(kSeg);
    auto set = fx.Set();
    const PushResult r = PushWalFileToRepositories(set, path, {});
    CHECK(r.outcome == PushOutcome::kStored);
    for (int i = 0; i < 2; ++i) {
      const std::string dest = fx.dir / ("restored" + std::to_string(i));
      CHECK(RestoreObjectToFile(*fx.Open(i), fx.top.repositories[i], fx.Key(kSeg), dest));
      CHECK(ReadFile(dest) == ReadFile(path));
    }
    // Each object is under its own repository's key: the other key cannot read it.
    Config wrong = fx.top.repositories[1];
    wrong.key = TestKey(1);
    CHECK_CODE(RestoreObjectToFile(*fx.Open(1), wrong, fx.Key(kSeg), fx.dir / "x"),
               ErrorCode::kWrongKey);
    // Again: identical copies everywhere.
    auto again = fx.Set();
    CHECK(PushWalFileToRepositories(again, path, {}).outcome == PushOutcome::kAlreadyArchived);
  }

  TEST_CASE("walpush: a failed repository that is not best-effort fails the push") {
    Fixture fx;
    fx.first_down = true;
    const std::string path = fx.Segment(kSeg);
    auto set = fx.Set();
    CHECK_CODE(PushWalFileToRepositories(set, path, {}), ErrorCode::kNetwork);
    // The other repository got it all the same.
    CHECK(fx.Open(1)->Stat(fx.Key(kSeg)).has_value());
    CHECK(ReadBestEffortMisses(fx.dir / "pg_wal").empty());
    try {
      PushWalFileToRepositories(set, path, {});
    } catch (const Error& e) {
      CHECK(Contains(e.what(), "repository 1 (memory://" + fx.first + ")"));
    }
  }

  TEST_CASE("walpush: a best-effort repository's failure is success, recorded and counted") {
    Fixture fx;
    fx.top.repositories[1].best_effort = true;
    fx.second_down = true;
    const std::string path = fx.Segment(kSeg);
    auto set = fx.Set();
    CHECK(PushWalFileToRepositories(set, path, {}).outcome == PushOutcome::kStored);
    const std::string path4 = fx.Segment("000000010000000000000004");
    CHECK(PushWalFileToRepositories(set, path4, {}).outcome == PushOutcome::kStored);
    const auto misses = ReadBestEffortMisses(fx.dir / "pg_wal");
    REQUIRE(misses.count(fx.top.repositories[1].repo_url) == 1);
    const BestEffortMisses& m = misses.at(fx.top.repositories[1].repo_url);
    CHECK(m.count == 2);
    CHECK(m.last_name == "000000010000000000000004");
    CHECK(m.last_error == "network");
    CHECK(m.last_time > 0);
    ClearBestEffortMisses(fx.dir / "pg_wal", fx.top.repositories[1].repo_url,
                          {kSeg, "000000010000000000000004"});
    CHECK(ReadBestEffortMisses(fx.dir / "pg_wal").empty());

    // The required repository failing is still a failure, and records
    // nothing: PostgreSQL retries the file (one line per retry counted them all).
    fx.first_down = true;
    auto down = fx.Set();
    const std::string path5 = fx.Segment("000000010000000000000005");
    CHECK_CODE(PushWalFileToRepositories(down, path5, {}), ErrorCode::kNetwork);
    CHECK_CODE(PushWalFileToRepositories(down, path5, {}), ErrorCode::kNetwork);
    CHECK(ReadBestEffortMisses(fx.dir / "pg_wal").empty());
  }

  TEST_CASE("sync does not undo a repository's own prune; --all does") {
    // Repository 2 keeps a shorter history: 1 and 2 were pruned there.  3 and
    // 5 it holds, 4 it missed.
    Fixture fx;
    for (const char* name : {"000000010000000000000001", "000000010000000000000002",
                             "000000010000000000000003", "000000010000000000000004",
                             "000000010000000000000005"}) {
      fx.PushTo(0, name);
    }
    fx.PushTo(1, "000000010000000000000003");
    fx.PushTo(1, "000000010000000000000005");
    fx.PushTo(1, "000000020000000000000006");
    TempDir work;
    {
      auto set = fx.Set();
      const SyncReport report = SyncWal(set, kSysId, work.path(), false);
      CHECK(report.copied[1] == 1);  // 4 only
      CHECK(report.below_horizon[1] == 2);
      CHECK(report.copied[0] == 1);  // the timeline 2 segment
      CHECK(fx.Open(1)->Stat(fx.Key("000000010000000000000004")).has_value());
      CHECK_FALSE(fx.Open(1)->Stat(fx.Key("000000010000000000000001")).has_value());
      CHECK_FALSE(fx.Open(1)->Stat(fx.Key("000000010000000000000002")).has_value());
    }
    auto set = fx.Set();
    const SyncReport report = SyncWal(set, kSysId, work.path(), false, /*all=*/true);
    CHECK(report.copied[1] == 2);
    CHECK(fx.Open(1)->Stat(fx.Key("000000010000000000000001")).has_value());
  }

  TEST_CASE("sync reports the names each repository holds now, for the record") {
    Fixture fx;
    fx.PushTo(0, "000000010000000000000001");
    fx.PushTo(0, "000000010000000000000002");
    fx.PushTo(1, "000000010000000000000001");
    auto set = fx.Set();
    TempDir work;
    const SyncReport report = SyncWal(set, kSysId, work.path(), false);
    REQUIRE(report.held_names.size() == 2);
    const std::set<std::string> both = {"000000010000000000000001", "000000010000000000000002"};
    CHECK(report.held_names[0] == both);
    CHECK(report.held_names[1] == both);
  }

  TEST_CASE("sync: a conflict met while copying fails in a best_effort repository too") {
    Fixture fx;
    fx.top.repositories[1].best_effort = true;
    fx.PushTo(0, kSeg);
    auto set = fx.Set();
    const RepositoryListing listing = ListRepositories(set, kSysId);
    fx.PushTo(1, kSeg, /*seed=*/99);  // other content, stored since the listing
    TempDir work;
    const SyncReport report = SyncWal(set, listing, kSysId, work.path(), false, false);
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].repository == 1);
    CHECK(Contains(report.problems[0].message, "[conflict]"));
    CHECK(report.problems[0].fails_always);
  }

  TEST_CASE("walpush: a conflict in any repository is a conflict, best-effort or not") {
    Fixture fx;
    fx.top.repositories[1].best_effort = true;
    fx.PushTo(1, kSeg, /*seed=*/99);  // other content already in the second
    const std::string path = fx.Segment(kSeg);
    auto set = fx.Set();
    CHECK_CODE(PushWalFileToRepositories(set, path, {}), ErrorCode::kConflict);
    CHECK(ReadBestEffortMisses(fx.dir / "pg_wal").empty());
  }

  TEST_CASE("walfetch: the first repository lacking, damaged or unreachable: the second's copy") {
    Fixture fx;
    fx.PushTo(1, kSeg);
    const std::string want = ReadFile(fx.Segment(kSeg));
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    SUBCASE("lacking") {}
    SUBCASE("damaged") {
      fx.PushTo(0, kSeg);
      fx.Damage(0, kSeg);
    }
    SUBCASE("unreachable") { fx.first_down = true; }
    auto set = fx.Set();
    size_t from = 9;
    const FetchResult r = FetchWalFileFromRepositories(set, kSeg, dest, &from);
    CHECK(r.outcome == FetchOutcome::kRestored);
    CHECK(from == 1);
    CHECK(ReadFile(dest) == want);
  }

  TEST_CASE("walfetch: missing only when every repository positively lacks the file") {
    Fixture fx;
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    fx.Segment("000000010000000000000001");  // pg_wal exists
    {
      auto set = fx.Set();
      CHECK(FetchWalFileFromRepositories(set, kSeg, dest).outcome == FetchOutcome::kMissing);
    }
    SUBCASE("first unreachable, second lacks it: an error, not missing") {
      fx.first_down = true;
      auto set = fx.Set();
      CHECK_CODE(FetchWalFileFromRepositories(set, kSeg, dest), ErrorCode::kNetwork);
    }
    SUBCASE("first lacks it, second unreachable: an error, not missing") {
      fx.second_down = true;
      auto set = fx.Set();
      CHECK_CODE(FetchWalFileFromRepositories(set, kSeg, dest), ErrorCode::kNetwork);
    }
    SUBCASE("first damaged, second lacks it: the damage") {
      fx.PushTo(0, kSeg);
      fx.Damage(0, kSeg);
      auto set = fx.Set();
      CHECK_CODE(FetchWalFileFromRepositories(set, kSeg, dest), ErrorCode::kCorrupt);
    }
    CHECK_FALSE(Exists(dest));
  }

  TEST_CASE("walfetch: a repository holding nothing of the cluster while another does is no "
            "proof of absence") {
    // The first points at the wrong place (nothing of the cluster there); the
    // second lags: it holds earlier WAL but not this segment.
    Fixture fx;
    fx.PushTo(1, "000000010000000000000002");
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    {
      auto set = fx.Set();
      CheckFirstIsNoProofOfAbsence(fx, set, dest);
    }
    CHECK_FALSE(Exists(dest));
    // Once both hold the cluster, their lack is an answer: missing.
    fx.PushTo(0, "000000010000000000000001");
    auto set = fx.Set();
    CHECK(FetchWalFileFromRepositories(set, kSeg, dest).outcome == FetchOutcome::kMissing);
    // A probe that fails leaves the answer unknown: an error, never "missing".
    class ProbeFails : public UnreachableStorage {
     public:
      std::unique_ptr<ReadStream> OpenRead(const std::string&) override { return nullptr; }
    };
    RepositorySet flaky(fx.top, [&](const Config& c) -> std::unique_ptr<Storage> {
      if (c.repo_url == fx.top.repositories[1].repo_url) return std::make_unique<ProbeFails>();
      return OpenStorage(c);
    });
    CHECK_CODE(FetchWalFileFromRepositories(flaky, kSeg, dest), ErrorCode::kNetwork);
  }

  TEST_CASE("walfetch: objects kept aside (<system-id>/damaged/) are nothing of the cluster: "
            "still no proof of absence (exit 126)") {
    // What walctl sync --repair left in the first repository: its WAL moved
    // aside, none put back.  The second lags.
    Fixture fx;
    fx.PushTo(0, kSeg);
    {
      auto storage = fx.Open(0);
      const std::string key = fx.Key(kSeg);
      const std::string aside = std::to_string(kSysId) + "/damaged/20261130T015500Z/" +
                                key.substr(std::to_string(kSysId).size() + 1);
      auto w = storage->Create(aside);
      w->Write(AsBytes(ReadAll(*storage->OpenRead(key))));
      REQUIRE(w->Commit() == CommitResult::kCreated);
      storage->Remove(key);
    }
    fx.PushTo(1, "000000010000000000000002");
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    auto set = fx.Set();
    CheckFirstIsNoProofOfAbsence(fx, set, dest);
    CHECK_FALSE(Exists(dest));
  }

  TEST_CASE("walfetch: a copy from a later repository names an earlier one that is empty") {
    Fixture fx;
    fx.PushTo(1, kSeg);
    fx.PushTo(1, "000000010000000000000004");
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    auto set = fx.Set();
    walstore::test::CaptureStderr capture;
    CHECK(FetchWalFileFromRepositories(set, kSeg, dest).outcome == FetchOutcome::kRestored);
    CHECK(FetchWalFileFromRepositories(set, "000000010000000000000004", dest).outcome ==
          FetchOutcome::kRestored);
    const std::string text = capture.Text();
    const std::string warning = "WARNING:  repository 1 (memory://" + fx.first +
                                ") holds nothing at all of cluster";
    CHECK(Contains(text, warning));
    CHECK(text.find(warning) == text.rfind(warning));  // once
    // A repository that holds the cluster but lacks the file: no warning.
    fx.PushTo(0, "000000010000000000000001");
    fx.PushTo(1, "000000010000000000000005");
    auto again = fx.Set();
    walstore::test::CaptureStderr quiet;
    CHECK(FetchWalFileFromRepositories(again, "000000010000000000000005", dest).outcome ==
          FetchOutcome::kRestored);
    CHECK_FALSE(Contains(quiet.Text(), "holds nothing"));
  }

  TEST_CASE("walfetch: every repository empty of the cluster (a new cluster): missing") {
    Fixture fx;
    fx.Segment("000000010000000000000001");
    auto set = fx.Set();
    walstore::test::CaptureStderr capture;
    CHECK(FetchWalFileFromRepositories(set, kSeg, fx.dir / "pg_wal/RECOVERYXLOG").outcome ==
          FetchOutcome::kMissing);
    CHECK(Contains(capture.Text(), "memory://" + fx.second + " holds no WAL and no backup"));
  }

  TEST_CASE("read-ahead takes each segment from the first repository that has it") {
    Fixture fx;
    const std::string s4 = "000000010000000000000004", s5 = "000000010000000000000005";
    fx.PushTo(1, s4);
    fx.PushTo(0, s5);
    fx.PushTo(1, s5);
    fx.first_down = false;
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    auto set = fx.Set();
    CHECK(RunPrefetchWorker(set, kSysId, ParseWalFileNameOrThrow(kSeg), kSegSize, dest) == 2);
    // The spool serves them to a fetch over the same repositories.
    auto fetch = fx.Set();
    const FetchResult r = FetchWalFileFromRepositories(fetch, s4, dest);
    CHECK(r.prefetched);
    CHECK(ReadFile(dest) == ReadFile(fx.Segment(s4)));
    // A spool filled from the second repository alone is not served to the
    // two (its origin differs), nor the reverse.
    CHECK(TakePrefetchedSegment(fx.top.repositories[1], kSysId, ParseWalFileNameOrThrow(s5), dest,
                                std::chrono::milliseconds(0)) == 0);
  }

  TEST_CASE("read-ahead stops with the error when a repository fails and none has the segment") {
    Fixture fx;
    fx.first_down = true;
    fx.Segment("000000010000000000000001");
    auto set = fx.Set();
    CHECK_CODE(RunPrefetchWorker(set, kSysId, ParseWalFileNameOrThrow(kSeg), kSegSize,
                                 fx.dir / "pg_wal/RECOVERYXLOG"),
               ErrorCode::kNetwork);
  }

  TEST_CASE("RepositorySet without a repository is kConfig") {
    Config none;
    CHECK_CODE(RepositorySet{none}, ErrorCode::kConfig);
  }
}
