// The library side of progress reporting (walstore/backup/progress.h): keeps
// the count, guarantees the contract (monotonic done_bytes, one final call at
// 100 %) whatever the data source sends, and calls the callback.
#pragma once

#include <walstore/backup/progress.h>

#include <cstdint>

namespace walstore::backup {

class ProgressReporter {
 public:
  // `callback` may be empty (nothing is reported); `total_bytes` 0 = unknown.
  ProgressReporter(ProgressCallback callback, uint64_t total_bytes);

  // `bytes` more are done; reports.
  void Advance(uint64_t bytes);
  // The final call: total becomes done (an estimate is replaced by the real
  // size) and the callback sees finished = true.  Only the first call reports.
  void Finish();

  uint64_t done_bytes() const { return progress_.done_bytes; }

 private:
  ProgressCallback callback_;
  Progress progress_;
};

}  // namespace walstore::backup
