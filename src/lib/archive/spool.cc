#include "archive/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <fmt/format.h>
#include <walstore/crypto.h>
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

namespace {

std::function<void(const std::string&)> before_move_out_hook;

}  // namespace

SpoolDir::SpoolDir(std::string path, bool create) : path_(std::move(path)) {
  if (create && mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) {
    state_ = State::kUnsafe;
    problem_ = fmt::format("could not create \"{}\": {}", path_, std::strerror(errno));
    return;
  }
  fd_ = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    struct stat st {};
    if (err == ENOENT) return;  // no spool: kAbsent
    state_ = State::kUnsafe;
    if (lstat(path_.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      problem_ = fmt::format("\"{}\" is a symbolic link; remove it", path_);
    } else if (err == ENOTDIR) {
      problem_ = fmt::format("\"{}\" is not a directory; remove it", path_);
    } else {
      problem_ = fmt::format("could not open \"{}\": {}", path_, std::strerror(err));
    }
    return;
  }
  struct stat st {};
  if (fstat(fd_, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    state_ = State::kUnsafe;
    problem_ = fmt::format("\"{}\" must belong to this user (uid {}) and be writable by nobody "
                           "else; remove it",
                           path_, geteuid());
    close(fd_);
    fd_ = -1;
    return;
  }
  state_ = State::kUsable;
}

SpoolDir::~SpoolDir() {
  if (fd_ >= 0) close(fd_);
}

std::string SpoolDir::Show(std::string_view name) const { return fmt::format("{}/{}", path_, name); }

std::string SpoolDir::PathVia(std::string_view name) const {
  return fmt::format("/proc/self/fd/{}/{}", fd_, name);
}

std::string SpoolDir::Read(const std::string& name) const {
  const int fd = Open(name, O_RDONLY);
  if (fd < 0) return {};
  char buffer[4096];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

void SpoolDir::Write(const std::string& name, std::string_view text) const {
  if (!TryWrite(name, text)) FailErrno(errno, fmt::format("could not write \"{}\"", Show(name)));
}

bool SpoolDir::TryWrite(const std::string& name, std::string_view text) const noexcept {
  const std::string temp = name + ".tmp";
  unlinkat(fd_, temp.c_str(), 0);  // a killed writer's leftover (the spool has one writer)
  const int fd = openat(fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const ssize_t n = write(fd, text.data(), text.size());
  int failure = n < 0 ? errno : ENOSPC;
  close(fd);
  if (n == static_cast<ssize_t>(text.size())) {
    if (renameat(fd_, temp.c_str(), fd_, name.c_str()) == 0) return true;
    failure = errno;
  }
  unlinkat(fd_, temp.c_str(), 0);
  errno = failure;
  return false;
}

bool SpoolDir::Exists(const std::string& name) const {
  struct stat st {};
  return Stat(name, st);
}

bool SpoolDir::Stat(const std::string& name, struct stat& st) const {
  return fstatat(fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

void SpoolDir::Remove(const std::string& name) const { unlinkat(fd_, name.c_str(), 0); }

int SpoolDir::Open(const std::string& name, int flags, mode_t mode) const {
  return openat(fd_, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

bool SpoolDir::MoveOut(const std::string& name, const std::string& dest_path) const {
  if (before_move_out_hook) before_move_out_hook(name);
  if (renameat(fd_, name.c_str(), AT_FDCWD, dest_path.c_str()) == 0) return true;
  if (errno == ENOENT) {
    // Gone since it was checked; dest_path's directory exists (the caller
    // checked that the spool beside it does), so it was the spooled file.
    Log(LogLevel::kNotice, "\"{}\" vanished before it could be moved into place",
        Show(name));
    return false;
  }
  if (errno == EXDEV) {
    Log(LogLevel::kWarning, "the spool \"{}\" is on another file system than \"{}\"; "
        "remove it", path_, dest_path);
    return false;
  }
  FailErrno(errno, fmt::format("could not rename \"{}\" to \"{}\"", Show(name), dest_path));
}

void SpoolDir::RemoveEntries(
    const std::vector<std::string>& keep,
    const std::function<bool(const std::string&, const struct stat&)>& drop) const {
  // opendir needs a descriptor of its own (closedir closes it).
  const int dup_fd = openat(fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0) return;
  DIR* dir = fdopendir(dup_fd);
  if (dir == nullptr) {
    close(dup_fd);
    return;
  }
  while (dirent* entry = readdir(dir)) {
    const std::string file = entry->d_name;
    if (file == "." || file == ".." || file == kSpoolLockFile ||
        std::find(keep.begin(), keep.end(), file) != keep.end()) {
      continue;
    }
    struct stat st {};
    if (!Stat(file, st)) continue;
    if (drop(file, st)) Remove(file);
  }
  closedir(dir);
}

void SpoolDir::SetBeforeMoveOutHookForTesting(std::function<void(const std::string&)> hook) {
  before_move_out_hook = std::move(hook);
}

std::string SpoolDigest(std::string_view text) {
  Sha256 hash;
  hash.Update(AsBytes(text));
  return ToHex(hash.Final()).substr(0, 32);
}

std::string SpoolOriginText(const Config& config, uint64_t system_id) {
  if (config.repositories.size() > 1) {  // read-ahead from several repositories: all of them
    std::string text;
    for (const Config& repo : config.repositories) text += SpoolOriginText(repo, system_id);
    return text;
  }
  const S3Settings& s3 = config.s3;
  std::string readers = fmt::format(
      "{}\n{}\n{}\n{}\n{}\n{}\nplaintext={}\n", s3.endpoint, s3.region,
      s3.path_style ? (*s3.path_style ? "path" : "virtual") : "auto", s3.profile,
      s3.access_key_id, config.key ? config.key->IdHex() : "", config.allow_plaintext_objects);
  for (const Key& key : config.old_keys) readers += key.IdHex() + "\n";
  return fmt::format("repository={}\nsystem_id={}\nreaders={}\n", config.repo_url, system_id,
                     SpoolDigest(readers));
}

bool OlderThanSpoolMaxAge(const struct stat& st) {
  return std::time(nullptr) - st.st_mtime > kSpoolMaxAgeSeconds;
}

std::string MakeSpoolDir(const std::string& spool_dir) {
  return SpoolDir(spool_dir, true).problem();
}

SpoolLock::SpoolLock(const SpoolDir& spool, int wait_ms) {
  fd_ = spool.Open(kSpoolLockFile, O_RDWR | O_CREAT);
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

bool SpoolWorkerRunning(const SpoolDir& spool) {
  const int fd = spool.Open(kSpoolLockFile, O_RDONLY);
  if (fd < 0) return false;
  // A shared probe: fails only while a worker holds the exclusive lock.
  const bool running = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return running;
}

namespace {

// The absolute path of the running program; "" if unknown.
std::string SelfExecutable() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string();
}

}  // namespace

bool StartSpoolWorker(const SpoolDir& spool, const char* log_name, const char* what,
                      const std::vector<std::string>& worker_args) {
  const std::string self_exe = SelfExecutable();
  if (self_exe.empty()) {
    Log(LogLevel::kDebug, "no {}: cannot tell this program's path", what);
    return false;
  }
  if (!spool.usable()) {
    Log(LogLevel::kWarning, "no {}: {}", what, spool.problem());
    return false;
  }
  if (SpoolLock lock(spool); !lock.held()) {
    if (lock.errno_value() != 0) {
      Log(LogLevel::kWarning, "no {}: could not open the lock in \"{}\": {}", what, spool.path(),
          std::strerror(lock.errno_value()));
    } else {
      Log(LogLevel::kDebug, "a {} worker is already running in \"{}\"", what, spool.path());
    }
    return false;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(self_exe.c_str()));
  for (const auto& arg : worker_args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // The log keeps the last workers' messages (appended), up to about 1 MiB.
  if (struct stat st {}; spool.Stat(log_name, st) && st.st_size > (1 << 20)) {
    if (const int fd = spool.Open(log_name, O_WRONLY | O_TRUNC); fd >= 0) close(fd);
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
    const int err = openat(spool.fd(), log_name, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
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
