#include "backup/progress_reporter.h"

#include <utility>

namespace walstore::backup {

ProgressReporter::ProgressReporter(ProgressCallback callback, uint64_t total_bytes)
    : callback_(std::move(callback)) {
  progress_.total_bytes = total_bytes;
}

void ProgressReporter::Advance(uint64_t bytes) {
  if (progress_.finished) return;
  progress_.done_bytes += bytes;
  if (callback_) callback_(progress_);
}

void ProgressReporter::Finish() {
  if (progress_.finished) return;
  progress_.finished = true;
  progress_.total_bytes = progress_.done_bytes;
  if (callback_) callback_(progress_);
}

}  // namespace walstore::backup
