// walpush push-ahead.  PostgreSQL's archiver runs archive_command for one
// file at a time, oldest first, and waits for each.  When WAL is written
// faster than one process per segment archives it, .ready files pile up in
// pg_wal/archive_status.  walpush then starts a background worker (a
// detached walpush) that pushes the next .ready segments, kPushAheadUploads
// at a time over kept-open repository connections, and leaves a marker for
// each one stored; the call for that segment then only checks the marker.
//
//   <dir of %p>/.walstore-push/             the spool (pg_wal/.walstore-push)
//       lock                                flock()ed by the one running worker
//       push.log                            the last workers' messages (up to ~1 MiB)
//       plan                                the segments the worker pushes next
//       settings                            the last walpush's settings fingerprint
//       stalled                             a walpush waited for the worker in vain
//       000000010000000A000000FF.pushed     marker: the worker stored this file
//       000000010000000A000000FF.claim      a walpush pushes this one itself
//
// Rules that keep a marker from ever claiming WAL archived that is not:
// - The worker writes a marker only after the repository accepted the object
//   (the commit published it, or test before overwrite found the same
//   content there), and only if the file did not change while it was read.
// - walpush trusts a marker only when it names this repository, the same
//   settings (a fingerprint of the repository URL, S3 endpoint, region,
//   addressing, storage class, SSE, profile, access key id, compression and
//   key id; no secret), this cluster, this segment and the very file %p is
//   now: same device, inode, size, modification, change and birth time.  It
//   must be younger than 10 minutes.  Anything else is deleted with a
//   warning and the segment is pushed as without push-ahead.  A marker is
//   used once.
// - A worker stops before its next segment once a walpush ran with other
//   settings (the `settings` file): WAL does not keep going to a repository
//   or key the configuration no longer names.
// - The worker reads only segments PostgreSQL marked .ready (finished and
//   fsynced) and never touches archive_status: PostgreSQL still calls walpush
//   for every file, and .ready -> .done stays PostgreSQL's step.
// - A worker that fails (an error, logged to push.log) or is killed leaves no
//   marker: walpush pushes the segment itself and reports any error the
//   usual way (a conflict still fails loudly, never overwriting).
// - walpush waits for the worker only for a segment in its plan, only while
//   the worker runs, and at most kPushAheadMaxWaitSeconds; otherwise it
//   pushes the segment itself (and claims it, so the worker leaves it).  A
//   wait in vain leaves `stalled`: later calls do not wait until the worker
//   stores a segment again.
//   Both pushing one segment is harmless: test before overwrite finds the
//   same content.
// - The worker stays within the oldest push_ahead + 1 .ready segments, and
//   ends when none of its uploads had work for kPushAheadIdleMs.
// - The spool must be a real directory of this user that nobody else can
//   write to; otherwise walpush warns and archives without push-ahead.
// - Only segments are pushed ahead (never .history, .partial or .backup).
#pragma once

#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace walstore {

inline constexpr const char* kPushAheadDirName = ".walstore-push";
inline constexpr int kPushAheadMaxWaitSeconds = 120;
inline constexpr int kPushAheadIdleMs = 1000;
// Segments the worker uploads at once, each on its own connection.
inline constexpr int kPushAheadUploads = 2;

// The spool directory for pushes of `wal_file_path` (%p).
std::string PushAheadSpoolDir(const std::string& wal_file_path);

// Opens the repository only when a push needs it (a marker needs none).
using StorageOpener = std::function<std::unique_ptr<Storage>()>;

// walpush %p: PushWalFile, with push-ahead when config.push_ahead > 0, %p is
// a segment and <dir of %p>/archive_status exists.  Returns kPushedAhead for
// a valid marker (see above), waits for a worker that has %p in hand, else
// pushes %p itself; starts a worker first (this program, `worker_args`) when
// none runs and later .ready segments are unpushed.  Empty worker_args:
// never starts one.  Errors as PushWalFile.
PushResult PushWalFileWithPushAhead(const StorageOpener& open_storage, const Config& config,
                                    const std::string& path,
                                    const std::vector<std::string>& worker_args);

// The worker, started for `path` (the %p of the walpush that started it):
// under the spool's lock (returns 0 at once when another worker holds it)
// pushes the planned segments, kPushAheadUploads at a time, re-planning
// before each, until it was idle kPushAheadIdleMs.  Returns the number pushed.  An error
// ends it with the usual exception (its main() logs it to push.log).
int RunPushAheadWorker(Storage& storage, const Config& config, const std::string& path);

// The plan: of the segment names with a .ready status file (any order), the
// oldest push_ahead + 1 in name order, less those marked or claimed.
std::vector<std::string> PushAheadPlan(std::vector<std::string> ready,
                                       const std::set<std::string>& marked_or_claimed,
                                       int push_ahead);

}  // namespace walstore
