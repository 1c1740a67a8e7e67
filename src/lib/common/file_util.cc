#include "common/file_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/cli.h>
#include <walstore/crypto.h>
#include <walstore/error.h>

#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace walstore {

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

namespace {

// fsyncs what `path` names, opened read-only with `open_flags` added;
// `what` ("directory ") goes into messages.  EINVAL (nothing to sync there)
// is not an error.
void FsyncPath(const std::string& path, int open_flags, std::string_view what) {
  // O_NONBLOCK: a FIFO someone put there must not hang us (its fsync fails
  // with EINVAL; the caller then finds it is no object).
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | open_flags);
  if (fd < 0) FailErrno(errno, fmt::format("could not open {}\"{}\"", what, path));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0 && err != EINVAL) FailErrno(err, fmt::format("could not fsync {}\"{}\"", what, path));
}

}  // namespace

void SyncDirectory(const std::string& path) { FsyncPath(path, O_DIRECTORY, "directory "); }

void MakeDirectories(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) Fail(ErrorCode::kLocalIo, "\"{}\" exists and is not a directory", path);
    return;
  }
  const std::string parent = DirName(path);
  if (parent != path) MakeDirectories(parent);
  if (mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
    FailErrno(errno, fmt::format("could not create directory \"{}\"", path));
  }
  SyncDirectory(parent);
}

bool MakeDirectoriesBelow(const std::string& base, const std::string& path,
                          const std::optional<FileOwner>& owner) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  if (path.size() <= base.size()) return false;  // base itself is missing
  // Top down: mkdir of a child never creates its parent, so a base that is
  // gone (an unmounted file system) stays gone.
  for (size_t end = base.size(); end < path.size();) {
    end = std::min(path.find('/', end + 1), path.size());
    const std::string dir = path.substr(0, end);
    if (mkdir(dir.c_str(), 0750) == 0) {
      if (owner && chown(dir.c_str(), owner->uid, owner->gid) != 0) {
        FailErrno(errno, fmt::format("could not give directory \"{}\" to uid {}", dir, owner->uid));
      }
      SyncDirectory(DirName(dir));
    } else if (errno == ENOENT && stat(base.c_str(), &st) != 0) {
      return false;
    } else if (errno != EEXIST) {
      FailErrno(errno, fmt::format("could not create directory \"{}\"", dir));
    }
  }
  return true;
}

namespace {

// The temp files being written, for the signal handler: a slot is free (0),
// being filled or emptied (1), or holds a path (2).  Plain atomics and char
// arrays: all the handler touches is async-signal-safe.
struct TempSlot {
  std::atomic<int> state{0};
  char path[4096];
};
std::array<TempSlot, 32> temp_slots;

// Registers `path`; the slot index, or -1 when the table is full or the
// path too long (the file is then only cleaned up as a stale temp file).
int RegisterTempFile(const std::string& path) {
  if (path.size() >= sizeof(TempSlot::path)) return -1;
  for (size_t i = 0; i < temp_slots.size(); ++i) {
    int expected = 0;
    if (!temp_slots[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(temp_slots[i].path, path.c_str(), path.size() + 1);
    temp_slots[i].state.store(2);
    return static_cast<int>(i);
  }
  return -1;
}

void UnregisterTempFile(int slot) {
  if (slot >= 0) temp_slots[static_cast<size_t>(slot)].state.store(0);
}

extern "C" void UnlinkTempFilesAndDie(int sig) {
  for (auto& slot : temp_slots) {
    if (slot.state.load() == 2) unlink(slot.path);
  }
  signal(sig, SIG_DFL);
  raise(sig);  // delivered when the handler returns: the default action
}

}  // namespace

void InstallTempFileSignalCleanup() {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;
    struct sigaction action {};
    action.sa_handler = UnlinkTempFilesAndDie;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(sig, &action, nullptr);
  }
}

std::optional<pid_t> TempFileOwner(std::string_view name) {
  if (name.empty() || name[0] != '.') return std::nullopt;
  const size_t marker = name.find(kTempMarker);
  if (marker == std::string_view::npos || marker < 2) return std::nullopt;
  const std::string_view rest = name.substr(marker + std::strlen(kTempMarker));
  pid_t pid = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  if (ec != std::errc() || pid <= 0 || end == rest.data() + rest.size() || *end != '.') {
    return std::nullopt;
  }
  return pid;
}

std::vector<StaleTempFile> FindStaleTempFiles(const std::string& dir, int64_t any_owner_after) {
  std::vector<StaleTempFile> stale;
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) return stale;
  const std::time_t now = std::time(nullptr);
  while (const dirent* entry = readdir(handle)) {
    const auto pid = TempFileOwner(entry->d_name);
    if (!pid) continue;
    struct stat st {};
    if (fstatat(dirfd(handle), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;
    }
    const int64_t idle = now - st.st_mtime;
    const bool owner_gone = kill(*pid, 0) != 0 && errno == ESRCH;
    if ((owner_gone && idle > kStaleTempAgeSeconds) ||
        (any_owner_after > 0 && idle > any_owner_after)) {
      stale.push_back({dir + "/" + entry->d_name, static_cast<uint64_t>(st.st_size), st.st_mtime});
    }
  }
  closedir(handle);
  return stale;
}

size_t RemoveStaleTempFiles(const std::string& dir) {
  size_t removed = 0;
  for (const auto& file : FindStaleTempFiles(dir)) {
    if (unlink(file.path.c_str()) == 0) ++removed;
  }
  return removed;
}

FileReader::FileReader(const std::string& path) : path_(path) {
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) FailErrno(errno, fmt::format("could not open \"{}\"", path));
  posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

FileReader::~FileReader() {
  if (fd_ >= 0) close(fd_);
}

size_t FileReader::Read(MutableBytes out) {
  size_t total = 0;
  while (total < out.size()) {
    const ssize_t n = read(fd_, out.data() + total, out.size() - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      FailErrno(errno, fmt::format("could not read \"{}\"", path_));
    }
    if (n == 0) break;
    total += static_cast<size_t>(n);
  }
  return total;
}

void FileReader::Rewind() {
  if (lseek(fd_, 0, SEEK_SET) != 0) FailErrno(errno, fmt::format("could not seek in \"{}\"", path_));
}

AtomicFileWriter::AtomicFileWriter(std::string final_path, mode_t mode, bool create_parent_dirs)
    : final_path_(std::move(final_path)) {
  const std::string dir = DirName(final_path_);
  if (create_parent_dirs) MakeDirectories(dir);
  // The name only has to differ from other writers' (O_EXCL refuses a clash):
  // the kernel's random bytes do, without setting up OpenSSL's DRBG for it.
  uint8_t random[6];
  if (getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
    RandomBytes(random);
  }
  temp_path_ = fmt::format("{}/.{}{}{}.{}", dir, BaseName(final_path_), kTempMarker, getpid(),
                           ToHex(random));
  // What killed writers left here (their temp files are never published).
  RemoveStaleTempFiles(dir);
  signal_slot_ = RegisterTempFile(temp_path_);  // before the file exists
  fd_ = open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd_ < 0) {
    UnregisterTempFile(signal_slot_);
    FailErrno(errno, fmt::format("could not create \"{}\"", temp_path_));
  }
}

void AtomicFileWriter::SetOwner(const FileOwner& owner) {
  if (fchown(fd_, owner.uid, owner.gid) != 0) {
    FailErrno(errno, fmt::format("could not give \"{}\" to uid {}", temp_path_, owner.uid));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) close(fd_);
  if (!temp_path_.empty()) unlink(temp_path_.c_str());
  UnregisterTempFile(signal_slot_);
}

void AtomicFileWriter::Write(Bytes data) {
  while (!data.empty()) {
    const ssize_t n = write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      FailErrno(errno, fmt::format("could not write \"{}\"", temp_path_));
    }
    data = data.subspan(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
  // Start writeback of each full 4 MiB as it is written, so the disk works
  // while we compute and the fdatasync in Publish() has little left to do.
  constexpr uint64_t kWritebackStep = 4u << 20;
  while (written_ - writeback_started_ >= kWritebackStep) {
    sync_file_range(fd_, static_cast<off_t>(writeback_started_), kWritebackStep,
                    SYNC_FILE_RANGE_WRITE);
    writeback_started_ += kWritebackStep;
  }
}

void AtomicFileWriter::RewriteHead(Bytes head) {
  if (head.size() > written_) Fail(ErrorCode::kInternal, "rewrite past the end of \"{}\"", temp_path_);
  if (pwrite(fd_, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) {
    FailErrno(errno, fmt::format("could not write \"{}\"", temp_path_));
  }
}

namespace {

// Another writer published `path` first and may not have synced it yet: the
// caller is about to rely on it (compare it, report it archived), so make it
// durable first.
void SyncExistingFile(const std::string& path) {
  FsyncPath(path, O_NOFOLLOW, "");
  SyncDirectory(DirName(path));
}

}  // namespace

bool AtomicFileWriter::Publish(bool replace) {
  if (fdatasync(fd_) != 0) FailErrno(errno, fmt::format("could not fsync \"{}\"", temp_path_));
  if (close(fd_) != 0) {
    fd_ = -1;
    FailErrno(errno, fmt::format("could not close \"{}\"", temp_path_));
  }
  fd_ = -1;
  if (replace) {
    if (rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
      FailErrno(errno, fmt::format("could not rename \"{}\" to \"{}\"", temp_path_, final_path_));
    }
  } else if (renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path_.c_str(),
                       RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {  // the destructor removes the temp file
      SyncExistingFile(final_path_);
      return false;
    }
    if (errno != EINVAL && errno != ENOSYS) {
      FailErrno(errno, fmt::format("could not publish \"{}\"", final_path_));
    }
    // File systems without RENAME_NOREPLACE: link(2) never replaces either.
    if (link(temp_path_.c_str(), final_path_.c_str()) != 0) {
      if (errno == EEXIST) {
        SyncExistingFile(final_path_);
        return false;
      }
      FailErrno(errno, fmt::format("could not publish \"{}\"", final_path_));
    }
    unlink(temp_path_.c_str());
  }
  temp_path_.clear();
  UnregisterTempFile(signal_slot_);
  signal_slot_ = -1;
  SyncDirectory(DirName(final_path_));
  return true;
}

}  // namespace walstore
