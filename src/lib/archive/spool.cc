#include "archive/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

extern char** environ;

namespace walstore {

std::string ReadSmallFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return {};
  char buffer[4096];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

void WriteSmallFile(const std::string& path, std::string_view text) {
  const std::string temp = path + ".tmp";
  unlink(temp.c_str());  // a killed writer's leftover (the spool has one writer)
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) FailErrno(errno, fmt::format("could not create \"{}\"", temp));
  const ssize_t n = write(fd, text.data(), text.size());
  const int write_errno = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    unlink(temp.c_str());
    FailErrno(n < 0 ? write_errno : ENOSPC, fmt::format("could not write \"{}\"", temp));
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    unlink(temp.c_str());
    FailErrno(rename_errno, fmt::format("could not rename \"{}\" to \"{}\"", temp, path));
  }
}

bool OlderThanSpoolMaxAge(const struct stat& st) {
  return std::time(nullptr) - st.st_mtime > kSpoolMaxAgeSeconds;
}

std::string MakeSpoolDir(const std::string& spool_dir) {
  if (mkdir(spool_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fmt::format("could not create \"{}\": {}", spool_dir, std::strerror(errno));
  }
  struct stat st {};
  if (lstat(spool_dir.c_str(), &st) != 0) {
    return fmt::format("could not stat \"{}\": {}", spool_dir, std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return fmt::format("\"{}\" is not a directory", spool_dir);
  if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    return fmt::format("\"{}\" must belong to this user (uid {}) and be writable by nobody "
                       "else; remove it",
                       spool_dir, geteuid());
  }
  return {};
}

SpoolLock::SpoolLock(const std::string& spool_dir, int wait_ms) {
  const std::string path = spool_dir + "/" + kSpoolLockFile;
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) {
    errno_ = errno;
    return;
  }
  for (int waited = 0;; ++waited) {
    held_ = flock(fd_, LOCK_EX | LOCK_NB) == 0;
    if (held_ || waited >= wait_ms) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

SpoolLock::~SpoolLock() {
  if (fd_ >= 0) close(fd_);
}

bool SpoolWorkerRunning(const std::string& spool_dir) {
  const std::string path = spool_dir + "/" + kSpoolLockFile;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  // A shared probe: fails only while a worker holds the exclusive lock.
  const bool running = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return running;
}

void RemoveSpooled(const std::string& spool_dir, const std::vector<std::string>& keep,
                   const std::function<bool(const std::string&, const struct stat&)>& drop) {
  DIR* dir = opendir(spool_dir.c_str());
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    const std::string file = entry->d_name;
    if (file == "." || file == ".." || file == kSpoolLockFile ||
        std::find(keep.begin(), keep.end(), file) != keep.end()) {
      continue;
    }
    struct stat st {};
    if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (drop(file, st)) unlinkat(dirfd(dir), entry->d_name, 0);
  }
  closedir(dir);
}

namespace {

// The absolute path of the running program; "" if unknown.
std::string SelfExecutable() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string();
}

}  // namespace

bool StartSpoolWorker(const std::string& spool_dir, const char* log_name, const char* what,
                      const std::vector<std::string>& worker_args) {
  const std::string self_exe = SelfExecutable();
  if (self_exe.empty()) {
    Log(LogLevel::kDebug, "no {}: cannot tell this program's path", what);
    return false;
  }
  if (const std::string problem = MakeSpoolDir(spool_dir); !problem.empty()) {
    Log(LogLevel::kWarning, "no {}: {}", what, problem);
    return false;
  }
  if (SpoolLock lock(spool_dir); !lock.held()) {
    if (lock.errno_value() != 0) {
      Log(LogLevel::kWarning, "no {}: could not open the lock in \"{}\": {}", what, spool_dir,
          std::strerror(lock.errno_value()));
    } else {
      Log(LogLevel::kDebug, "a {} worker is already running in \"{}\"", what, spool_dir);
    }
    return false;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(self_exe.c_str()));
  for (const auto& arg : worker_args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // The log keeps the last workers' messages (appended), up to about 1 MiB.
  const std::string log_path = spool_dir + "/" + log_name;
  if (struct stat st {}; lstat(log_path.c_str(), &st) == 0 && st.st_size > (1 << 20)) {
    truncate(log_path.c_str(), 0);
  }
  // fork, not posix_spawn: posix_spawn's vfork keeps the caller waiting
  // until the exec finished (milliseconds PostgreSQL would wait for).  The
  // child calls only async-signal-safe functions before exec.
  const pid_t pid = fork();
  if (pid < 0) {
    Log(LogLevel::kWarning, "could not start the {} worker: {}", what, std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    // Its own session: signals to the server's process group do not reach
    // it, and it does not hold up a shutdown.  Nothing of PostgreSQL's (or a
    // caller's pipe) stays open in it: a $(walfetch ...) capture must not
    // wait for it.
    setsid();
    const int in = open("/dev/null", O_RDONLY);
    const int out = open("/dev/null", O_WRONLY);
    const int err = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
      _exit(127);
    }
    // Nothing else the caller had open either (PostgreSQL's postmaster-death
    // pipe, a caller's pipes): a reader waiting for their end must not wait
    // for the worker.
    close_range(3, ~0U, 0);
    execve(self_exe.c_str(), argv.data(), environ);
    _exit(127);
  }
  Log(LogLevel::kDebug, "{} worker {} started", what, pid);
  return true;
}


}  // namespace walstore
