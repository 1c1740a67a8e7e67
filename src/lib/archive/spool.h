// Internal: the spool directories the tools keep beside %p for their
// detached background workers (walfetch's read-ahead, prefetch.h; walpush's
// push-ahead, push_ahead.h).  A spool holds small state files, a lock that
// the one running worker holds, and the worker's log.
#pragma once

#include <sys/stat.h>
#include <walstore/config.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace walstore {

// Spooled state older than this is never trusted.
inline constexpr int64_t kSpoolMaxAgeSeconds = 600;
inline constexpr const char* kSpoolLockFile = "lock";

// An open spool directory.  The spool lives in pg_wal, a directory other
// programs write to, so it is opened once without following a symbolic
// link, checked through its descriptor, and every operation inside goes
// through that descriptor (openat, unlinkat, renameat): swapping the
// directory for a link afterwards changes nothing.  A spool that is a
// symbolic link, not a directory, not this user's or writable by group or
// others is unsafe: callers warn (problem()) and work without it, and
// nothing in it is read, written or deleted.
class SpoolDir {
 public:
  enum class State { kUsable, kAbsent, kUnsafe };
  // Opens `path`; with create, makes it (mode 0700) when it does not exist.
  SpoolDir(std::string path, bool create);
  ~SpoolDir();
  SpoolDir(const SpoolDir&) = delete;
  SpoolDir& operator=(const SpoolDir&) = delete;

  State state() const { return state_; }
  bool usable() const { return state_ == State::kUsable; }
  // What is wrong with an unsafe (or uncreatable) spool; "" otherwise.
  const std::string& problem() const { return problem_; }
  int fd() const { return fd_; }
  // The spool's path, for messages.
  const std::string& path() const { return path_; }
  // `name` in the spool, for messages.
  std::string Show(std::string_view name) const;
  // A path that reaches `name` through the open descriptor
  // (/proc/self/fd/<fd>/<name>), for code that takes paths.
  std::string PathVia(std::string_view name) const;

  // The first 4 KiB of `name` (opened with O_NOFOLLOW); "" when it is absent
  // or unreadable.
  std::string Read(const std::string& name) const;
  // Writes `text` to `name` through a temp file and a rename, without fsync:
  // for spool state whose loss only costs redone work.  Throws kLocalIo.
  void Write(const std::string& name, std::string_view text) const;
  // Write without throwing: false (errno set) when it failed, and then
  // `name` is as it was.  The caller serializes writes of one name (they
  // share the temp file).
  bool TryWrite(const std::string& name, std::string_view text) const noexcept;
  bool Exists(const std::string& name) const;
  // lstat of `name`; false when it is absent.
  bool Stat(const std::string& name, struct stat& st) const;
  void Remove(const std::string& name) const;
  // openat(fd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode).
  int Open(const std::string& name, int flags, mode_t mode = 0600) const;
  // Renames `name` to `dest_path` (outside the spool).  False when `name`
  // vanished meanwhile (another walfetch took it, a worker dropped it);
  // throws kLocalIo otherwise.  EXDEV is returned as false with a warning.
  bool MoveOut(const std::string& name, const std::string& dest_path) const;
  // Calls drop(name, stat) for each entry except "lock" and the names in
  // `keep`, and removes those for which it returns true.
  void RemoveEntries(const std::vector<std::string>& keep,
                     const std::function<bool(const std::string&, const struct stat&)>& drop) const;

  // For tests: called with the name just before MoveOut renames it.
  static void SetBeforeMoveOutHookForTesting(std::function<void(const std::string&)> hook);

 private:
  std::string path_;
  int fd_ = -1;
  State state_ = State::kAbsent;
  std::string problem_;
};

bool OlderThanSpoolMaxAge(const struct stat& st);

// The first 32 hex digits of SHA-256(text): how spool files name a
// configuration without writing out any of its settings.
std::string SpoolDigest(std::string_view text);

// What the read-ahead spool records as its origin, and a walfetch must find
// there before it serves a spooled segment: the repository URL, the cluster,
// and a digest of every setting that decides what a read of that URL returns
// (S3 endpoint, region, addressing and credentials' identity, the ids of the
// keys a reader accepts, allow_plaintext_objects).  So WAL read from another
// store behind the same URL, or authenticated by a key since removed from
// the configuration, is never served.
std::string SpoolOriginText(const Config& config, uint64_t system_id);

// Creates the spool directory (mode 0700) unless it exists; "" when it is
// usable (SpoolDir), otherwise what is wrong with it.
std::string MakeSpoolDir(const std::string& spool_dir);

// Holds the spool's worker lock while alive (flock: released if the process
// dies).  held() is false when another process has it or the lock file
// cannot be opened (errno_value() tells).  With wait_ms > 0 it retries for
// that long before giving up (a worker starting while a caller probes).
class SpoolLock {
 public:
  explicit SpoolLock(const SpoolDir& spool, int wait_ms = 0);
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
bool SpoolWorkerRunning(const SpoolDir& spool);

// Starts this program (/proc/self/exe) with `worker_args` detached: in a new session, stdin and
// stdout on /dev/null, stderr appended to <spool_dir>/<log_name> (emptied
// first once over 1 MiB), no other descriptor of the caller's.  `what` names the
// worker in messages ("read-ahead").  Returns false when none was started
// (one holds the lock already: debug message; the spool cannot be made or
// fork fails: a warning).  Never throws: the caller's work is done.
bool StartSpoolWorker(const SpoolDir& spool, const char* log_name, const char* what,
                      const std::vector<std::string>& worker_args);

}  // namespace walstore
