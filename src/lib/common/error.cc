#include <walstore/error.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>

namespace walstore {
namespace {

// The code table: name, walpush/walctl exit, walfetch exit, retryable.
// walfetch exits kFetchExitAbortRecovery for every error: a fetch that failed
// for any reason other than "not in the repository" must not end recovery.
constexpr int kAbort = kFetchExitAbortRecovery;
constexpr std::array kTable = {
    ErrorCodeInfo{ErrorCode::kUsage, "usage", 2, kAbort, false},
    ErrorCodeInfo{ErrorCode::kConfig, "config", 3, kAbort, false},
    ErrorCodeInfo{ErrorCode::kInvalidName, "invalid_name", 4, kAbort, false},
    ErrorCodeInfo{ErrorCode::kNotWal, "not_wal", 5, kAbort, false},
    ErrorCodeInfo{ErrorCode::kSystemIdMismatch, "system_id_mismatch", 6, kAbort, false},
    ErrorCodeInfo{ErrorCode::kConflict, "conflict", 7, kAbort, false},
    ErrorCodeInfo{ErrorCode::kLocalIo, "local_io", 8, kAbort, false},
    ErrorCodeInfo{ErrorCode::kNoSpace, "no_space", 9, kAbort, false},
    ErrorCodeInfo{ErrorCode::kCorrupt, "corrupt", 10, kAbort, false},
    ErrorCodeInfo{ErrorCode::kWrongKey, "wrong_key", 11, kAbort, false},
    ErrorCodeInfo{ErrorCode::kUnsupportedFormat, "unsupported_format", 12, kAbort, false},
    ErrorCodeInfo{ErrorCode::kStorage, "storage", 13, kAbort, false},
    ErrorCodeInfo{ErrorCode::kStorageTransient, "storage_transient", 14, kAbort, true},
    ErrorCodeInfo{ErrorCode::kAuth, "auth", 15, kAbort, false},
    ErrorCodeInfo{ErrorCode::kNetwork, "network", 16, kAbort, true},
    ErrorCodeInfo{ErrorCode::kPostgres, "postgres", 17, kAbort, false},
    ErrorCodeInfo{ErrorCode::kVerifyFailed, "verify_failed", 18, kAbort, false},
    ErrorCodeInfo{ErrorCode::kInternal, "internal", 19, kAbort, false},
    ErrorCodeInfo{ErrorCode::kTls, "tls", 20, kAbort, false},
    ErrorCodeInfo{ErrorCode::kArchivedDamaged, "archived_damaged", 21, kAbort, false},
    ErrorCodeInfo{ErrorCode::kUnauthenticated, "unauthenticated", 22, kAbort, false},
    ErrorCodeInfo{ErrorCode::kMisplaced, "misplaced", 23, kAbort, false},
    ErrorCodeInfo{ErrorCode::kNotARepository, "not_a_repository", 24, kAbort, false},
    ErrorCodeInfo{ErrorCode::kArchiveGap, "archive_gap", 25, kAbort, false},
};

}  // namespace

const ErrorCodeInfo& InfoFor(ErrorCode code) {
  const ErrorCodeInfo* internal = nullptr;
  for (const auto& info : kTable) {
    if (info.code == code) return info;
    if (info.code == ErrorCode::kInternal) internal = &info;
  }
  return *internal;  // a value outside the enum is a bug: report it as one
}

std::string ExitCodeHelp(bool for_fetch) {
  std::map<int, std::string> by_exit;
  for (const auto& info : kTable) {
    std::string& names = by_exit[for_fetch ? info.fetch_exit : info.exit_code];
    names += (names.empty() ? "" : ", ") + std::string(info.name);
  }
  std::string text;
  for (const auto& [exit_code, names] : by_exit) {
    if (!text.empty()) text += for_fetch ? "; " : ", ";
    text += for_fetch ? fmt::format("{} any error ({})", exit_code, names)
                      : fmt::format("{} {}", exit_code, names);
  }
  return text;
}

void FailErrno(int errnum, std::string_view what) {
  char buffer[256];
  const char* text = strerror_r(errnum, buffer, sizeof buffer);
  const bool full = errnum == ENOSPC || errnum == EDQUOT;
  throw Error(full ? ErrorCode::kNoSpace : ErrorCode::kLocalIo, fmt::format("{}: {}", what, text),
              full ? "free space on that file system; nothing was published" : "");
}

}  // namespace walstore
