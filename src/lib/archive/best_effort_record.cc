#include <walstore/best_effort_record.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/file_util.h"

namespace walstore {
namespace {

std::string RecordPath(const std::string& wal_dir) {
  return (wal_dir.empty() ? std::string(".") : wal_dir) + "/" + kBestEffortRecordName;
}

// The record, open and exclusively locked, or fd -1 when there is none
// (and `create` is false).  Loops until the locked file is the one under
// `path`: a rewrite may have renamed a new record over it meanwhile.
class LockedRecord {
 public:
  LockedRecord(const std::string& path, bool create) : path_(path) {
    for (;;) {
      fd_ = open(path.c_str(), (create ? O_WRONLY | O_CREAT | O_APPEND : O_RDONLY) | O_CLOEXEC,
                 0600);
      if (fd_ < 0) {
        if (errno == ENOENT && !create) return;
        FailErrno(errno, fmt::format("could not open \"{}\"", path));
      }
      if (flock(fd_, LOCK_EX) != 0) FailErrno(errno, fmt::format("could not lock \"{}\"", path));
      struct stat locked {}, current {};
      if (fstat(fd_, &locked) != 0) FailErrno(errno, fmt::format("could not stat \"{}\"", path));
      if (stat(path.c_str(), &current) == 0 && current.st_ino == locked.st_ino &&
          current.st_dev == locked.st_dev) {
        owner_ = FileOwner{locked.st_uid, locked.st_gid};
        return;
      }
      close(fd_);  // replaced (or removed) while we waited: the new one
    }
  }
  ~LockedRecord() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  LockedRecord(const LockedRecord&) = delete;
  LockedRecord& operator=(const LockedRecord&) = delete;

  int fd() const { return fd_; }
  const FileOwner& owner() const { return owner_; }
  std::string ReadAll() const {
    std::string text;
    char buffer[65536];
    for (;;) {
      const ssize_t n = read(fd_, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) FailErrno(errno, fmt::format("could not read \"{}\"", path_));
      if (n == 0) return text;
      text.append(buffer, static_cast<size_t>(n));
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  FileOwner owner_{};
};

}  // namespace

std::optional<BestEffortLine> ParseBestEffortLine(const std::string& line) {
  std::istringstream fields(line);
  std::string time;
  BestEffortLine parsed;
  if (!(fields >> time >> parsed.name >> parsed.error)) return std::nullopt;
  const auto when = TryParseNumber<uint64_t>(time);
  if (!when) return std::nullopt;
  parsed.time = static_cast<std::time_t>(*when);
  fields.get();  // the one separator before the URL, which may hold spaces
  std::getline(fields, parsed.url);
  if (parsed.url.empty()) return std::nullopt;
  return parsed;
}

void RecordBestEffortMiss(const std::string& wal_dir, const std::string& repository_url,
                          const std::string& name, const std::string& error_name) {
  const std::string path = RecordPath(wal_dir);
  const std::string line = fmt::format("{} {} {} {}\n", static_cast<int64_t>(std::time(nullptr)),
                                       name, error_name, repository_url);
  try {
    const LockedRecord record(path, true);
    if (write(record.fd(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        fsync(record.fd()) != 0) {
      FailErrno(errno, fmt::format("could not append to \"{}\"", path));
    }
  } catch (const Error& error) {  // the push succeeded: a record that fails is a WARNING
    Log(LogLevel::kWarning, "could not record the best-effort miss of {} in \"{}\": {}", name,
        path, error.what());
  }
}

std::map<std::string, BestEffortMisses> ReadBestEffortMisses(const std::string& wal_dir) {
  std::map<std::string, BestEffortMisses> misses;
  std::map<std::string, std::set<std::string>> names;
  const LockedRecord record(RecordPath(wal_dir), false);
  if (record.fd() < 0) return misses;
  std::istringstream lines(record.ReadAll());
  for (std::string line; std::getline(lines, line);) {
    const auto parsed = ParseBestEffortLine(line);
    if (!parsed) continue;
    BestEffortMisses& m = misses[parsed->url];
    if (names[parsed->url].insert(parsed->name).second) ++m.count;
    m.last_name = parsed->name;
    m.last_time = parsed->time;
    m.last_error = parsed->error;
  }
  return misses;
}

void ClearBestEffortMisses(const std::string& wal_dir, const std::string& repository_url,
                           const std::set<std::string>& held) {
  const std::string path = RecordPath(wal_dir);
  try {
    const LockedRecord record(path, false);
    if (record.fd() < 0) return;
    std::istringstream lines(record.ReadAll());
    std::string kept;
    bool changed = false;
    for (std::string line; std::getline(lines, line);) {
      const auto parsed = ParseBestEffortLine(line);
      if (parsed && parsed->url == repository_url && held.count(parsed->name) != 0) {
        changed = true;
        continue;
      }
      kept += line + "\n";
    }
    if (!changed) return;
    AtomicFileWriter out(path, 0600, false);
    if (record.owner().uid != geteuid() || record.owner().gid != getegid()) {
      out.SetOwner(record.owner());
    }
    out.Write(AsBytes(kept));
    out.Publish(true);  // still under the lock: no append is lost
  } catch (const Error& error) {
    Log(LogLevel::kWarning, "could not update \"{}\": {}", path, error.what());
  }
}

}  // namespace walstore
