// Internal: the spool directories the tools keep beside %p for their
// detached background workers (walfetch's read-ahead, prefetch.h; walpush's
// push-ahead, push_ahead.h).  A spool holds small state files, a lock that
// the one running worker holds, and the worker's log.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace walstore {

// Spooled state older than this is never trusted.
inline constexpr int64_t kSpoolMaxAgeSeconds = 600;
inline constexpr const char* kSpoolLockFile = "lock";

// The first 4 KiB of `path` (opened with O_NOFOLLOW); "" when it is absent
// or unreadable.
std::string ReadSmallFile(const std::string& path);

// Writes `text` to `path` through a temp file and a rename, without fsync:
// for spool state whose loss only costs redone work.  Throws kLocalIo.
void WriteSmallFile(const std::string& path, std::string_view text);

bool OlderThanSpoolMaxAge(const struct stat& st);

// Creates the spool directory (mode 0700) unless it exists; "" when it is
// usable: a real directory (not a symlink) of this user, writable by nobody
// else.  Otherwise what is wrong with it.
std::string MakeSpoolDir(const std::string& spool_dir);

// Holds the spool's worker lock while alive (flock: released if the process
// dies).  held() is false when another process has it or the lock file
// cannot be opened (errno_value() tells).  With wait_ms > 0 it retries for
// that long before giving up (a worker starting while a caller probes).
class SpoolLock {
 public:
  explicit SpoolLock(const std::string& spool_dir, int wait_ms = 0);
  ~SpoolLock();
  SpoolLock(const SpoolLock&) = delete;
  SpoolLock& operator=(const SpoolLock&) = delete;
  bool held() const { return held_; }
  int errno_value() const { return errno_; }

 private:
  int fd_ = -1;
  int errno_ = 0;
  bool held_ = false;
};

// True while a worker holds the spool's lock.
bool SpoolWorkerRunning(const std::string& spool_dir);

// Calls drop(name, stat) for each entry of the spool except "lock" and the
// names in `keep`, and removes those for which it returns true.
void RemoveSpooled(const std::string& spool_dir, const std::vector<std::string>& keep,
                   const std::function<bool(const std::string&, const struct stat&)>& drop);

// Starts this program (/proc/self/exe) with `worker_args` detached: in a new session, stdin and
// stdout on /dev/null, stderr appended to <spool_dir>/<log_name> (emptied
// first once over 1 MiB), no other descriptor of the caller's.  `what` names the
// worker in messages ("read-ahead").  Returns false when none was started
// (one holds the lock already: debug message; the spool cannot be made or
// fork fails: a warning).  Never throws: the caller's work is done.
bool StartSpoolWorker(const std::string& spool_dir, const char* log_name, const char* what,
                      const std::vector<std::string>& worker_args);

}  // namespace walstore
