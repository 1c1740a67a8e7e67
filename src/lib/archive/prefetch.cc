#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/prefetch.h>
#include <walstore/wal_file.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include "common/file_util.h"

extern char** environ;

namespace walstore {
namespace {

constexpr const char* kOriginFile = "origin";
constexpr const char* kLockFile = "lock";
constexpr const char* kLogFile = "prefetch.log";

std::string OriginText(const Config& config, uint64_t system_id) {
  return fmt::format("repository={}\nsystem_id={}\n", config.repo_url, system_id);
}

std::string ReadSmallFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return {};
  char buffer[4096];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

bool OlderThanMaxAge(const struct stat& st) {
  return std::time(nullptr) - st.st_mtime > kPrefetchMaxAgeSeconds;
}

// Holds the spool's worker lock while alive (flock: released if the process
// dies).  held() is false when another process has it or the lock file
// cannot be opened (errno_value() tells).
class SpoolLock {
 public:
  explicit SpoolLock(const std::string& spool_dir) {
    const std::string path = spool_dir + "/" + kLockFile;
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) {
      errno_ = errno;
      return;
    }
    held_ = flock(fd_, LOCK_EX | LOCK_NB) == 0;
  }
  ~SpoolLock() {
    if (fd_ >= 0) close(fd_);
  }
  int errno_value() const { return errno_; }
  SpoolLock(const SpoolLock&) = delete;
  SpoolLock& operator=(const SpoolLock&) = delete;
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  int errno_ = 0;
  bool held_ = false;
};

// 0 when the spool directory exists (now), else the errno.
int MakeSpoolDir(const std::string& spool_dir) {
  return mkdir(spool_dir.c_str(), 0700) != 0 && errno != EEXIST ? errno : 0;
}

// Removes spool entries for which `drop(name, stat)` says so; never the
// spool's own files.
template <typename Drop>
void RemoveSpooled(const std::string& spool_dir, Drop drop) {
  DIR* dir = opendir(spool_dir.c_str());
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    const std::string file = entry->d_name;
    if (file == "." || file == ".." || file == kOriginFile || file == kLockFile ||
        file == kLogFile) {
      continue;
    }
    struct stat st {};
    if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (drop(file, st)) unlinkat(dirfd(dir), entry->d_name, 0);
  }
  closedir(dir);
}

// Why the spooled file open as `fd` (with `st` from fstat) must not be
// served, or "" when it may.
std::string SpooledSegmentProblem(int fd, const struct stat& st, const Config& config,
                                  uint64_t system_id, const WalFileName& name,
                                  const std::string& spool_dir) {
  if (ReadSmallFile(spool_dir + "/" + kOriginFile) != OriginText(config, system_id)) {
    return "the spool holds WAL of another repository or cluster";
  }
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (OlderThanMaxAge(st)) {
    return fmt::format("older than {} seconds", kPrefetchMaxAgeSeconds);
  }
  if (st.st_size < static_cast<off_t>(kWalLongHeaderSize)) {
    return fmt::format("{} bytes, too short for a WAL segment", st.st_size);
  }
  const auto header = ReadWalLongHeader(fd);
  if (!header) return "no valid WAL long page header";
  if (header->system_id != system_id) {
    return fmt::format("WAL of cluster {}, not {}", header->system_id, system_id);
  }
  if (auto mismatch = SegmentHeaderMismatch(*header, name, static_cast<uint64_t>(st.st_size))) {
    return *mismatch;
  }
  return {};
}

}  // namespace

std::string PrefetchSpoolDir(const std::string& dest_path) {
  return DirName(dest_path) + "/" + kPrefetchDirName;
}

uint64_t TakePrefetchedSegment(const Config& config, uint64_t system_id, const WalFileName& name,
                               const std::string& dest_path) {
  if (name.kind != WalFileKind::kSegment) return 0;
  const std::string spool_dir = PrefetchSpoolDir(dest_path);
  const std::string path = spool_dir + "/" + name.text;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;  // not spooled (or no spool): the usual fetch
  struct stat st {};
  const std::string problem = fstat(fd, &st) != 0
                                  ? "could not stat it"
                                  : SpooledSegmentProblem(fd, st, config, system_id, name, spool_dir);
  close(fd);
  if (!problem.empty()) {
    Log(LogLevel::kWarning, "discarding prefetched \"{}\": {}; fetching it from the repository",
        path, problem);
    unlink(path.c_str());
    return 0;
  }
  // The file was fsynced before it entered the spool; the rename needs no
  // directory fsync: PostgreSQL asks for the segment again after a crash.
  if (rename(path.c_str(), dest_path.c_str()) != 0) {
    if (errno != EXDEV) {
      FailErrno(errno, fmt::format("could not rename \"{}\" to \"{}\"", path, dest_path));
    }
    Log(LogLevel::kWarning, "the prefetch spool \"{}\" is on another file system than \"{}\"; "
        "set prefetch = 0 or unmount it", spool_dir, dest_path);
    return 0;
  }
  return static_cast<uint64_t>(st.st_size);
}

uint64_t SegmentSizeOf(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const auto header = ReadWalLongHeader(fd);
  close(fd);
  return header && IsValidSegmentSize(header->segment_size) ? header->segment_size : 0;
}

bool StartPrefetchWorker(const std::string& spool_dir, const std::string& self_exe,
                         const std::vector<std::string>& worker_args) {
  // Never throws: the segment was restored, read-ahead is only a bonus.
  if (const int err = MakeSpoolDir(spool_dir)) {
    Log(LogLevel::kWarning, "no read-ahead: could not create \"{}\": {}", spool_dir,
        std::strerror(err));
    return false;
  }
  if (SpoolLock lock(spool_dir); !lock.held()) {
    if (lock.errno_value() != 0) {
      Log(LogLevel::kWarning, "no read-ahead: could not open the lock in \"{}\": {}", spool_dir,
          std::strerror(lock.errno_value()));
    } else {
      Log(LogLevel::kDebug, "a prefetch worker is already running in \"{}\"", spool_dir);
    }
    return false;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(self_exe.c_str()));
  for (const auto& arg : worker_args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const std::string log_path = spool_dir + "/" + kLogFile;
  // fork, not posix_spawn: posix_spawn's vfork keeps the caller waiting
  // until the exec finished (milliseconds PostgreSQL would wait for).  The
  // child calls only async-signal-safe functions before exec.
  const pid_t pid = fork();
  if (pid < 0) {
    Log(LogLevel::kWarning, "could not start the prefetch worker: {}", std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    // Its own session: signals to the server's process group do not reach
    // it, and it does not hold up a shutdown (it ends after at most
    // `prefetch` segments).  Nothing of PostgreSQL's (or a caller's pipe)
    // stays open in it: a $(walfetch ...) capture must not wait for it.
    setsid();
    const int in = open("/dev/null", O_RDONLY);
    const int out = open("/dev/null", O_WRONLY);
    const int err = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
      _exit(127);
    }
    for (int fd : {in, out, err}) {
      if (fd > 2) close(fd);
    }
    execve(self_exe.c_str(), argv.data(), environ);
    _exit(127);
  }
  Log(LogLevel::kDebug, "prefetch worker {} started", pid);
  return true;
}

int RunPrefetchWorker(Storage& storage, const Config& config, uint64_t system_id,
                      const WalFileName& name, uint64_t segment_size,
                      const std::string& dest_path) {
  if (name.kind != WalFileKind::kSegment || !IsValidSegmentSize(segment_size) ||
      config.prefetch <= 0) {
    return 0;
  }
  const std::string spool_dir = PrefetchSpoolDir(dest_path);
  if (const int err = MakeSpoolDir(spool_dir)) {
    FailErrno(err, fmt::format("could not create \"{}\"", spool_dir));
  }
  SpoolLock lock(spool_dir);
  if (lock.errno_value() != 0) {
    FailErrno(lock.errno_value(), fmt::format("could not open the lock in \"{}\"", spool_dir));
  }
  if (!lock.held()) return 0;  // another worker has the spool

  const std::string origin = OriginText(config, system_id);
  const bool same_origin = ReadSmallFile(spool_dir + "/" + kOriginFile) == origin;
  std::vector<std::string> window;
  const uint64_t first = name.SegmentNumber(segment_size) + 1;
  for (int i = 0; i < config.prefetch; ++i) {
    window.push_back(SegmentFileName(name.timeline, first + static_cast<uint64_t>(i), segment_size));
  }
  const std::set<std::string> wanted(window.begin(), window.end());
  // Under the lock nobody else writes here: whatever is outside the window,
  // stale, of another origin, or a temp file of a killed worker goes.
  RemoveSpooled(spool_dir, [&](const std::string& file, const struct stat& st) {
    return !same_origin || wanted.count(file) == 0 || !S_ISREG(st.st_mode) || OlderThanMaxAge(st);
  });
  if (!same_origin) {
    AtomicFileWriter out(spool_dir + "/" + kOriginFile, 0600, false);
    out.Write(AsBytes(origin));
    out.Publish(true);
  }

  int fetched = 0;
  for (const std::string& next : window) {
    const std::string path = spool_dir + "/" + next;
    if (access(path.c_str(), F_OK) == 0) continue;
    // Read-ahead must never take the room a synchronous fetch (or the
    // server) needs: stop while less than the whole window plus two
    // segments would stay free.
    struct statvfs fs {};
    const uint64_t reserve = segment_size * (static_cast<uint64_t>(config.prefetch) + 2);
    if (statvfs(spool_dir.c_str(), &fs) == 0 &&
        static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < reserve + segment_size) {
      Log(LogLevel::kWarning, "read-ahead stops at {}: {} bytes free in \"{}\", keeping {} free",
          next, static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize, spool_dir, reserve);
      break;
    }
    const WalFileName parsed = ParseWalFileNameOrThrow(next);
    if (!RestoreObjectToFile(storage, config, WalObjectKey(system_id, parsed), path)) {
      Log(LogLevel::kDebug, "prefetch stops at {}: not in the repository", next);
      break;
    }
    ++fetched;
  }
  Log(LogLevel::kNotice, "prefetched {} segment(s) after {}", fetched, name.text);
  return fetched;
}

void RemoveStalePrefetch(const std::string& wal_file_path) {
  const std::string spool_dir = PrefetchSpoolDir(wal_file_path);
  RemoveSpooled(spool_dir,
                [](const std::string&, const struct stat& st) { return OlderThanMaxAge(st); });
}

}  // namespace walstore
