// walfetch read-ahead.  PostgreSQL asks for one segment at a time and replays
// it before asking for the next.  After walfetch restored segment N it starts
// a background worker (a detached walfetch process) that fetches segments
// N+1 .. N+depth into a spool directory beside %p; the next restore_command
// call then only moves a verified file into place.
//
//   <dir of %p>/.walstore-prefetch/          the spool (pg_wal/.walstore-prefetch)
//       origin                               repository URL, system id and reader settings
//       lock                                 flock()ed by the one running worker
//       prefetch.log                         the last workers' messages (up to ~1 MiB)
//       fetching                             the segments the worker is fetching now
//       stalled                              a walfetch waited for the worker in vain
//       wanted                               the segment walfetch was last asked for
//       000000010000000A000000FF             verified segments, ready to serve
//
// Rules that keep a spool from ever serving wrong WAL:
// - A spooled segment is published like %p itself (temp file, fsync, rename)
//   only after the whole object verified (GCM tags, SHA-256, size).
// - Before serving, walfetch checks that it is a regular file of the segment
//   size whose WAL long page header names the same timeline, segment and
//   system id, that the spool holds this repository's WAL, read with today's
//   endpoint, credentials and keys (origin: SpoolOriginText), and that
//   it is younger than 10 minutes.  Anything else is deleted with
//   a warning and the segment is fetched from the repository.
// - The spool never says "missing": a name not spooled is looked up in the
//   repository as without prefetch.
// - The worker fetches kPrefetchParallelFetches segments of its window at a
//   time, each published when it is complete and verified, so they may
//   arrive out of order.
// - The worker stops claiming segments at the first one the repository does
//   not have, and at any error (logged to prefetch.log): the synchronous
//   fetch of that segment then reports it the usual way (exit 126 for
//   damage).  A later segment already in flight may still be spooled: the
//   spool never says "missing", and each spooled file is checked by name.
// - The worker names the segments it is fetching in "fetching", one a line.
//   A walfetch asked for one of them waits for the worker's copy (while the
//   worker holds the lock and still names it, at most kPrefetchMaxWait)
//   instead of fetching it a second time; a worker killed meanwhile ends
//   the wait at once, a stuck one after kPrefetchMaxWait, and then a
//   "stalled" file makes later calls fetch by themselves until the worker
//   spools a segment again.
// - The worker runs at a lower scheduling priority (nice 10): it yields the
//   CPU to the server's replay and to the walfetch the server waits for.
// - At most one worker runs per spool; it removes every spooled file outside
//   its window, so the spool never holds more than `depth` segments.
// - After its window the walfetch worker lingers up to kPrefetchLinger: a
//   walfetch asked for a later segment (of the same reader settings) writes
//   it to "wanted", and the worker moves its window to follow it, on the
//   connections it has open.  It ends when idle that long, at a miss or an
//   error, or when "wanted" comes from other settings.
// - The worker stops while fewer than (depth + 3) segments' worth of space
//   would stay free in the spool's file system: read-ahead never takes the
//   room a synchronous fetch or the server needs.
// - Only segments are prefetched (never .history, .partial or .backup files).
#pragma once

#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/storage.h>
#include <walstore/wal_name.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace walstore {

inline constexpr const char* kPrefetchDirName = ".walstore-prefetch";

// The spool directory for restores to `dest_path` (%p).
std::string PrefetchSpoolDir(const std::string& dest_path);

// How many segments the worker fetches at a time.  A fetch from a remote
// store mostly waits (a round trip, then the transfer), so a second one in
// flight hides most of a round trip per segment; each fetch in flight holds
// its own decoder buffers and connection, so more would raise the worker's
// memory (kept under 32 MiB) and its share of the cores the replay needs.
inline constexpr int kPrefetchParallelFetches = 2;

// How long walfetch waits for the worker's fetch of the segment it is asked
// for before fetching that segment itself.
inline constexpr std::chrono::milliseconds kPrefetchMaxWait{20'000};

// Moves the spooled segment `name` onto dest_path (rename, directory fsync)
// when it passes every check above; when the running worker is fetching
// `name` right now, first waits for that copy (at most `max_wait`).
// Returns its size, or 0 when it was not served (absent, gone before the
// rename, discarded as invalid, or the spool is a symbolic link or not
// private: a warning, and nothing in it is touched).  Throws only for local
// I/O errors on dest_path.
uint64_t TakePrefetchedSegment(const Config& config, uint64_t system_id, const WalFileName& name,
                               const std::string& dest_path,
                               std::chrono::milliseconds max_wait = kPrefetchMaxWait);

// The segment size recorded in the WAL long header of the segment file at
// `path`; 0 when it has none (not a segment, unreadable).
uint64_t SegmentSizeOf(const std::string& path);

// How long the worker waits after its window for a walfetch to ask for a
// later segment.  PostgreSQL asks for the next segment once it replayed one,
// well under a second for a 16 MiB segment even on a slow machine; so the
// worker keeps its connections (no new TLS handshake per segment) through a
// recovery, yet holds nothing for long once the recovery ended.
inline constexpr std::chrono::milliseconds kPrefetchLinger{3'000};

// After walfetch restored the segment `restored` to `dest_path` (%p): names
// it in the spool's "wanted" (for a lingering worker, with the digest of
// `spool_origin`'s reader settings) and starts a detached worker process for
// the segments after it: runs this program (/proc/self/exe) with
// `worker_args` (the caller's options plus the worker flag), in a new
// session, stdin/stdout on /dev/null and stderr on the spool's prefetch.log.
// Returns false when no worker was started (one is still running: said at
// debug level; the spool cannot be made: a warning).  Never throws: the
// segment was restored, read-ahead is a bonus.
bool StartPrefetchWorker(const Config& spool_origin, uint64_t system_id, const WalFileName& restored,
                         const std::string& dest_path, const std::vector<std::string>& worker_args);

// The worker: under the spool's lock (returns 0 at once when another worker
// holds it), drops spooled files outside the window name+1 .. name+depth,
// then fetches the window's missing segments, kPrefetchParallelFetches at a
// time in window order, until one is not in the repository.  With `linger`
// > 0 it then waits that long for "wanted" to name a later segment, and
// goes on with the window after it (see above).  Returns the number
// fetched.  An error (a damaged object,
// an unreachable repository) ends it with the usual exception, which the
// worker's main() logs to prefetch.log; nothing unverified is left served.
int RunPrefetchWorker(Storage& storage, const Config& config, uint64_t system_id,
                      const WalFileName& name, uint64_t segment_size, const std::string& dest_path);
// The same over several repositories: each segment from the first that has
// a verified copy, stopping where none has one (repositories.h).
class RepositorySet;
int RunPrefetchWorker(RepositorySet& repositories, uint64_t system_id, const WalFileName& name,
                      uint64_t segment_size, const std::string& dest_path,
                      std::chrono::milliseconds linger = std::chrono::milliseconds(0));

// walpush's clean-up on a primary: removes spooled segments older than
// 10 minutes beside `wal_file_path` (what a finished recovery
// left behind); a spool that is a symbolic link or not private is left
// alone with a warning.  Never throws.
void RemoveStalePrefetch(const std::string& wal_file_path);

}  // namespace walstore
