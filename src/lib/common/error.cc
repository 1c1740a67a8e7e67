#include <walstore/error.h>

#include <array>
#include <cerrno>
#include <cstring>

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
};

}  // namespace

const ErrorCodeInfo& InfoFor(ErrorCode code) {
  for (const auto& info : kTable) {
    if (info.code == code) return info;
  }
  return kTable.back();
}

void FailErrno(int errnum, std::string_view what) {
  char buffer[256];
  const char* text = strerror_r(errnum, buffer, sizeof buffer);
  const bool full = errnum == ENOSPC || errnum == EDQUOT;
  throw Error(full ? ErrorCode::kNoSpace : ErrorCode::kLocalIo, fmt::format("{}: {}", what, text),
              full ? "free space on that file system; nothing was published" : "");
}

}  // namespace walstore
