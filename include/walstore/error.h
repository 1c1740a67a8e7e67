// walstore error model.
//
// One exception type, walstore::Error, carries an ErrorCode.  The code table in
// error.cc is the single source of truth for
//   - the code's stable name (shown in messages and JSON output),
//   - the exit code walpush / walctl use (always 1..125, so PostgreSQL's archiver
//     simply retries instead of restarting), and
//   - the exit code walfetch uses (126 for anything that must stop recovery, see
//     kFetchExitAbortRecovery), and
//   - whether the retry helper (retry.h) may try the operation again.
//
// Expected absence ("the object is not in the repository") is never an Error:
// functions that can meet it return std::optional / nullptr / an outcome enum.
//
// Throw with Fail(code, "fmt {}", args) or throw Error(code, message, hint).
// Catch only in main() (src/*/main.cc, via RunMain in cli.h) and in the retry helper.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace walstore {

enum class ErrorCode {
  kUsage,               // bad command line
  kConfig,              // bad or unreadable configuration, missing key file, ...
  kInvalidName,         // not a WAL / history / backup / partial file name
  kNotWal,              // file content is not a WAL segment of this cluster
  kSystemIdMismatch,    // segment belongs to another cluster than the archive
  kConflict,            // already archived with different content
  kLocalIo,             // local file system error (open, read, write, fsync)
  kNoSpace,             // ENOSPC / EDQUOT on a local file system
  kCorrupt,             // object damaged: bad magic, checksum, tag, truncated
  kWrongKey,            // object encrypted under another key, or key missing
  kUnsupportedFormat,   // object format version / codec this build cannot read
  kStorage,             // repository answered with an error (permanent)
  kStorageTransient,    // repository error worth retrying (5xx, 429, timeout)
  kAuth,                // credentials refused (403) or missing
  kNetwork,             // DNS and connection failures after retries
  kTls,                 // TLS handshake / certificate verification failed (not retried)
  kPostgres,            // libpq / PostgreSQL server error (walctl)
  kVerifyFailed,        // walctl verify / check found problems
  kInternal,            // a bug
  kArchivedDamaged,     // walpush: the object already archived under this name does not
                        // decode to this file (damaged, undecryptable, misplaced)
  kUnauthenticated,     // an unencrypted object while a key is configured
  kMisplaced,           // an object (or the WAL it holds) belongs to another name
  kNotARepository,      // the repository location is not (or no longer) a walstore repository
  kArchiveGap,          // walfetch: a segment is missing while later WAL of its timeline is
                        // archived (recovery must not end at a hole)
};

// Exit code walfetch uses for every error that must stop recovery.  PostgreSQL
// treats a restore_command exit status above 125 like a signal: recovery aborts
// and the server does not start, instead of ending recovery early at a
// "missing" segment and silently losing the rest of the WAL.
inline constexpr int kFetchExitAbortRecovery = 126;
// walfetch's exit code for "not in the repository" (PostgreSQL probes for these).
inline constexpr int kFetchExitMissing = 1;

struct ErrorCodeInfo {
  ErrorCode code;
  const char* name;  // stable, lower_snake_case, e.g. "conflict"
  int exit_code;     // walpush / walctl exit status, 1..125
  int fetch_exit;    // walfetch exit status
  bool retryable;    // the retry helper may try again
};

// The table entry of `code`; the `internal` entry for a value outside the
// enum (a bug elsewhere must not pass for some other error).
const ErrorCodeInfo& InfoFor(ErrorCode code);

// The exit statuses as --help shows them, generated from the table so the
// text cannot drift from what the programs return:
//   for walpush / walctl: "2 usage, 3 config, ..., 24 not_a_repository"
//   for walfetch: "126 any error (usage, config, ...)"
std::string ExitCodeHelp(bool for_fetch);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, std::string hint = {})
      : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}

  ErrorCode code() const { return code_; }
  // What an operator can do about it; may be empty.  Printed as a HINT line.
  const std::string& hint() const { return hint_; }
  bool retryable() const { return InfoFor(code_).retryable; }

 private:
  ErrorCode code_;
  std::string hint_;
};

template <typename... Args>
[[noreturn]] void Fail(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

// Throws kLocalIo (or kNoSpace for ENOSPC/EDQUOT) with "<what>: <strerror>".
[[noreturn]] void FailErrno(int errnum, std::string_view what);

}  // namespace walstore
