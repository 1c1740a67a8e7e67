// Tests for src/lib/common/error.cc and retry.cc: the error code table and the retry helper.
#include <doctest/doctest.h>

#include <walstore/error.h>
#include <walstore/retry.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "test_util.h"

using namespace walstore;
using walstore::test::CodeName;
using walstore::test::Contains;

namespace {
constexpr int kFirstCode = static_cast<int>(ErrorCode::kUsage);
constexpr int kLastCode = static_cast<int>(ErrorCode::kNotARepository);
}  // namespace

TEST_SUITE("error") {
  TEST_CASE("every code has a table entry with a unique snake_case name and valid exits") {
    std::set<std::string> names;
    for (int i = kFirstCode; i <= kLastCode; ++i) {
      const ErrorCode code = static_cast<ErrorCode>(i);
      CAPTURE(CodeName(code));
      const ErrorCodeInfo& info = InfoFor(code);
      CHECK(info.code == code);
      REQUIRE(info.name != nullptr);
      const std::string name = info.name;
      CHECK(!name.empty());
      for (char c : name) CHECK(((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'));
      CHECK(names.insert(name).second);
      CHECK(info.exit_code >= 1);
      CHECK(info.exit_code <= 125);
      CHECK(((info.fetch_exit >= 1 && info.fetch_exit <= 125) ||
             info.fetch_exit == kFetchExitAbortRecovery));
      // An error must never look like "not in the repository" to PostgreSQL:
      // that would end recovery early (docs/operations.md,
      // "walfetch exit codes").
      CHECK(info.fetch_exit != kFetchExitMissing);
    }
    CHECK(names.size() == static_cast<size_t>(kLastCode - kFirstCode + 1));
  }

  TEST_CASE("damage, wrong key and an unreachable repository stop recovery") {
    CHECK(kFetchExitAbortRecovery == 126);
    CHECK(kFetchExitMissing == 1);
    CHECK(InfoFor(ErrorCode::kCorrupt).fetch_exit == kFetchExitAbortRecovery);
    CHECK(InfoFor(ErrorCode::kWrongKey).fetch_exit == kFetchExitAbortRecovery);
    CHECK(InfoFor(ErrorCode::kUnsupportedFormat).fetch_exit == kFetchExitAbortRecovery);
    // walfetch: 126 for damaged, undecryptable or unreachable, never 1.
    CHECK(InfoFor(ErrorCode::kNetwork).fetch_exit == kFetchExitAbortRecovery);
    CHECK(InfoFor(ErrorCode::kStorage).fetch_exit == kFetchExitAbortRecovery);
    CHECK(InfoFor(ErrorCode::kStorageTransient).fetch_exit == kFetchExitAbortRecovery);
    CHECK(InfoFor(ErrorCode::kAuth).fetch_exit == kFetchExitAbortRecovery);
  }

  TEST_CASE("a value outside the enum is reported as internal, not as the last entry") {
    const ErrorCodeInfo& info = InfoFor(static_cast<ErrorCode>(kLastCode + 1000));
    CHECK(info.code == ErrorCode::kInternal);
    CHECK(std::string(info.name) == "internal");
    CHECK(info.exit_code == InfoFor(ErrorCode::kInternal).exit_code);
  }

  TEST_CASE("help text lists every exit status the table gives, and only those") {
    const std::string push = ExitCodeHelp(false);
    const std::string fetch = ExitCodeHelp(true);
    for (int i = kFirstCode; i <= kLastCode; ++i) {
      const ErrorCodeInfo& info = InfoFor(static_cast<ErrorCode>(i));
      CAPTURE(info.name);
      CHECK(Contains(push, fmt::format("{} {}", info.exit_code, info.name)));
      CHECK(Contains(fetch, info.name));
      CHECK(Contains(fetch, fmt::format("{} any error", info.fetch_exit)));
    }
    CHECK(Contains(push, "24 not_a_repository"));
    CHECK_FALSE(Contains(push, "2..19"));
    CHECK_FALSE(Contains(fetch, "1 any error"));  // 1 is "missing", never an error
  }

  TEST_CASE("what an object's content proves: archived_damaged 21, unauthenticated 22, misplaced 23") {
    CHECK(InfoFor(ErrorCode::kArchivedDamaged).exit_code == 21);
    CHECK(std::string(InfoFor(ErrorCode::kArchivedDamaged).name) == "archived_damaged");
    CHECK(InfoFor(ErrorCode::kUnauthenticated).exit_code == 22);
    CHECK(std::string(InfoFor(ErrorCode::kUnauthenticated).name) == "unauthenticated");
    CHECK(InfoFor(ErrorCode::kMisplaced).exit_code == 23);
    CHECK(std::string(InfoFor(ErrorCode::kMisplaced).name) == "misplaced");
    for (ErrorCode code :
         {ErrorCode::kArchivedDamaged, ErrorCode::kUnauthenticated, ErrorCode::kMisplaced}) {
      CHECK(InfoFor(code).fetch_exit == kFetchExitAbortRecovery);
      CHECK_FALSE(InfoFor(code).retryable);
    }
  }

  TEST_CASE("exit codes: 2 usage, 3 config") {
    CHECK(InfoFor(ErrorCode::kUsage).exit_code == 2);
    CHECK(InfoFor(ErrorCode::kConfig).exit_code == 3);
  }

  TEST_CASE("retryable flags") {
    CHECK(InfoFor(ErrorCode::kStorageTransient).retryable);
    CHECK_FALSE(InfoFor(ErrorCode::kCorrupt).retryable);
    CHECK_FALSE(InfoFor(ErrorCode::kWrongKey).retryable);
    CHECK_FALSE(InfoFor(ErrorCode::kConflict).retryable);
    CHECK_FALSE(InfoFor(ErrorCode::kConfig).retryable);
    CHECK_FALSE(InfoFor(ErrorCode::kInvalidName).retryable);
    Error transient(ErrorCode::kStorageTransient, "x");
    CHECK(transient.retryable());
    Error corrupt(ErrorCode::kCorrupt, "x");
    CHECK_FALSE(corrupt.retryable());
  }

  TEST_CASE("Error carries code, message and hint; Fail formats") {
    Error e(ErrorCode::kConflict, "the message", "the hint");
    CHECK(e.code() == ErrorCode::kConflict);
    CHECK(std::string(e.what()) == "the message");
    CHECK(e.hint() == "the hint");
    CHECK(Error(ErrorCode::kUsage, "m").hint().empty());

    CHECK_THROWS_AS(Fail(ErrorCode::kNotWal, "segment {} is {} bytes", "X", 42), Error);
    auto err = walstore::test::ThrownError([] { Fail(ErrorCode::kNotWal, "segment {} is {} bytes", "X", 42); });
    REQUIRE(err.has_value());
    CHECK(err->code() == ErrorCode::kNotWal);
    CHECK(std::string(err->what()) == "segment X is 42 bytes");
  }

  TEST_CASE("FailErrno maps ENOSPC/EDQUOT to kNoSpace and others to kLocalIo") {
    CHECK_CODE(FailErrno(ENOSPC, "write /x"), ErrorCode::kNoSpace);
    CHECK_CODE(FailErrno(EDQUOT, "write /x"), ErrorCode::kNoSpace);
    CHECK_CODE(FailErrno(EACCES, "open /secret/file"), ErrorCode::kLocalIo);
    CHECK_CODE(FailErrno(EIO, "fsync /x"), ErrorCode::kLocalIo);
    const std::string msg = walstore::test::ThrownMessage([] { FailErrno(EACCES, "open /secret/file"); });
    CHECK(Contains(msg, "open /secret/file"));
    CHECK(Contains(msg, std::strerror(EACCES)));
  }
}

TEST_SUITE("retry") {
  RetryPolicy FastPolicy(int attempts) {
    RetryPolicy p;
    p.max_attempts = attempts;
    p.first_delay = std::chrono::milliseconds(1);
    p.max_delay = std::chrono::milliseconds(2);
    p.total_budget = std::chrono::milliseconds(5000);
    return p;
  }

  TEST_CASE("success on the first attempt runs once") {
    int calls = 0;
    WithRetry(FastPolicy(5), "op", [&] { ++calls; });
    CHECK(calls == 1);
  }

  TEST_CASE("a retryable error is retried until success") {
    int calls = 0;
    WithRetry(FastPolicy(5), "op", [&] {
      if (++calls < 3) Fail(ErrorCode::kStorageTransient, "try again");
    });
    CHECK(calls == 3);
  }

  TEST_CASE("a non-retryable error is rethrown at once") {
    int calls = 0;
    CHECK_CODE(WithRetry(FastPolicy(5), "op",
                         [&] {
                           ++calls;
                           Fail(ErrorCode::kCorrupt, "bad");
                         }),
               ErrorCode::kCorrupt);
    CHECK(calls == 1);
  }

  TEST_CASE("attempts are bounded and the last error is rethrown") {
    int calls = 0;
    const std::string msg = walstore::test::ThrownMessage([&] {
      WithRetry(FastPolicy(4), "op", [&] {
        ++calls;
        Fail(ErrorCode::kStorageTransient, "attempt {}", calls);
      });
    });
    CHECK(calls == 4);
    CHECK(msg == "attempt 4");
  }
}
