// Tests for src/lib/common/log.cc and cli.cc: message format, levels, RunMain exit codes.
#include <doctest/doctest.h>

#include <walstore/cli.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "test_util.h"

using namespace walstore;
using walstore::test::CaptureStderr;
using walstore::test::Contains;

namespace {

// Restores the global log state.
struct LogStateGuard {
  LogLevel level = GetLogLevel();
  ~LogStateGuard() {
    SetLogLevel(level);
    SetLogProgram("walstore");
  }
};

}  // namespace

TEST_SUITE("log") {
  TEST_CASE("lines read well in the PostgreSQL log") {
    LogStateGuard guard;
    SetLogProgram("walpush");
    SetLogLevel(LogLevel::kNotice);
    CaptureStderr cap;
    LogMessage(LogLevel::kError, "000000010000000000000003 already archived with different content");
    LogHint("look at the other server");
    Log(LogLevel::kNotice, "{} already archived", "000000010000000000000003");
    LogHint("");  // an empty hint prints nothing
    CHECK(cap.Text() ==
          "walpush: ERROR:  000000010000000000000003 already archived with different content\n"
          "walpush: HINT:  look at the other server\n"
          "walpush: NOTICE:  000000010000000000000003 already archived\n");
  }

  TEST_CASE("levels filter messages") {
    LogStateGuard guard;
    SetLogProgram("walfetch");
    SetLogLevel(LogLevel::kWarning);
    CHECK(GetLogLevel() == LogLevel::kWarning);
    CaptureStderr cap;
    Log(LogLevel::kDebug, "debug {}", 1);
    Log(LogLevel::kInfo, "info {}", 2);
    Log(LogLevel::kNotice, "notice {}", 3);
    Log(LogLevel::kWarning, "warning {}", 4);
    Log(LogLevel::kError, "error {}", 5);
    const std::string text = cap.Text();
    CHECK_FALSE(Contains(text, "debug 1"));
    CHECK_FALSE(Contains(text, "info 2"));
    CHECK_FALSE(Contains(text, "notice 3"));
    CHECK(Contains(text, "walfetch: WARNING:  warning 4\n"));
    CHECK(Contains(text, "walfetch: ERROR:  error 5\n"));
  }
}

TEST_SUITE("cli") {
  TEST_CASE("RunMain returns the body's code") {
    LogStateGuard guard;
    CHECK(RunMain("walpush", false, [] { return 0; }) == 0);
    CHECK(RunMain("walfetch", true, [] { return kFetchExitMissing; }) == kFetchExitMissing);
  }

  TEST_CASE("RunMain maps errors through the code table and prints message and hint") {
    LogStateGuard guard;
    SetLogLevel(LogLevel::kNotice);
    for (ErrorCode code : {ErrorCode::kConflict, ErrorCode::kCorrupt, ErrorCode::kWrongKey,
                           ErrorCode::kConfig, ErrorCode::kStorageTransient}) {
      CAPTURE(walstore::test::CodeName(code));
      CaptureStderr cap;
      const int push_exit = RunMain("walpush", false, [&]() -> int { throw Error(code, "the message", "the hint"); });
      const int fetch_exit = RunMain("walfetch", true, [&]() -> int { throw Error(code, "the message", "the hint"); });
      CHECK(push_exit == InfoFor(code).exit_code);
      CHECK(fetch_exit == InfoFor(code).fetch_exit);
      const std::string text = cap.Text();
      CHECK(Contains(text, "walpush: ERROR:  the message\n"));
      CHECK(Contains(text, "walpush: HINT:  the hint\n"));
      CHECK(Contains(text, "walfetch: ERROR:  the message\n"));
    }
    CaptureStderr cap;
    CHECK(RunMain("walfetch", true, []() -> int { Fail(ErrorCode::kCorrupt, "bad object"); }) ==
          kFetchExitAbortRecovery);
    CHECK(RunMain("walfetch", true, []() -> int { Fail(ErrorCode::kWrongKey, "wrong key"); }) ==
          kFetchExitAbortRecovery);
  }

  TEST_CASE("RunMain turns other exceptions into an internal error, never into 'missing'") {
    LogStateGuard guard;
    CaptureStderr cap;
    const int push_exit = RunMain("walpush", false, []() -> int { throw std::runtime_error("boom"); });
    const int fetch_exit = RunMain("walfetch", true, []() -> int { throw std::bad_alloc(); });
    CHECK(push_exit == InfoFor(ErrorCode::kInternal).exit_code);
    CHECK(push_exit >= 1);
    CHECK(push_exit <= 125);
    CHECK(fetch_exit == InfoFor(ErrorCode::kInternal).fetch_exit);
    CHECK(fetch_exit != kFetchExitMissing);
    CHECK(Contains(cap.Text(), "boom"));
  }
}
