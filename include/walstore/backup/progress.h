// Progress of walctl's long operations (backup, restore), reported by the
// library to its caller, which alone decides what to show, where and how
// often (src/walctl/progress_display.h draws it).  The library itself never
// writes progress anywhere.
#pragma once

#include <cstdint>
#include <functional>

namespace walstore::backup {

struct Progress {
  // Bytes of data processed so far: backup, tar bytes received from the
  // server; restore, file bytes written and checked against the manifest.
  // Never decreases from one call to the next of one operation.
  uint64_t done_bytes = 0;
  // Bytes expected in all; 0 = unknown.  Exact for restore (the manifest's
  // file sizes); for backup the server's estimate, which done_bytes may pass
  // (the final call then sets it to done_bytes).
  uint64_t total_bytes = 0;
  // The last call of a successful transfer: done_bytes == total_bytes (100 %).
  bool finished = false;
};

// When: after every chunk of data (up to some hundreds of times a second:
// the callback must be cheap and do its own rate limiting), and once more
// with finished = true when all data has arrived, before the operation's
// closing steps (backup: waiting for the WAL range; restore: fsync).  After
// a failure it is not called again.  Where: on the thread that called
// RunBackup / RunRestore, never concurrently.  An exception it throws ends
// the operation like any failure.  An empty function reports nothing.
using ProgressCallback = std::function<void(const Progress&)>;

}  // namespace walstore::backup
