#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/prefetch.h>
#include <walstore/repositories.h>
#include <walstore/wal_file.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include "archive/spool.h"
#include "common/file_util.h"

namespace walstore {
namespace {

constexpr const char* kOriginFile = "origin";
constexpr const char* kLogFile = "prefetch.log";
constexpr const char* kFetchingFile = "fetching";  // the segment the worker is fetching now
constexpr const char* kStalledFile = "stalled";    // a walfetch waited for the worker in vain
constexpr const char* kWantedFile = "wanted";      // the segment walfetch was last asked for
// The read-ahead worker's scheduling priority (nice): it yields the CPU to
// the server's replay and to the walfetch PostgreSQL waits for.
constexpr int kWorkerNice = 10;

// Why the spooled file open as `fd` (with `st` from fstat) must not be
// served, or "" when it may.
std::string SpooledSegmentProblem(int fd, const struct stat& st, const Config& config,
                                  uint64_t system_id, const WalFileName& name,
                                  const SpoolDir& spool) {
  if (spool.Read(kOriginFile) != SpoolOriginText(config, system_id)) {
    return "the spool holds WAL of another repository or cluster";
  }
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (OlderThanSpoolMaxAge(st)) {
    return fmt::format("older than {} seconds", kSpoolMaxAgeSeconds);
  }
  if (st.st_size < static_cast<off_t>(kWalLongHeaderSize)) {
    return fmt::format("{} bytes, too short for a WAL segment", st.st_size);
  }
  std::array<uint8_t, kWalLongHeaderSize> head{};
  if (pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) {
    return "could not read its WAL long page header";
  }
  return WalContentMismatch(head, static_cast<uint64_t>(st.st_size), name, system_id)
      .value_or(std::string());
}

// Whether `text` has a line that is `line`.
bool NamesLine(std::string_view text, std::string_view line) {
  for (size_t start = 0; start < text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    if (text.substr(start, end - start) == line) return true;
    start = end + 1;
  }
  return false;
}

// The worker's window of segments and what its parallel fetches share:
// each fetch claims the next segment not yet spooled, names it in
// "fetching" while it is in flight, and a miss, an error or too little
// free space stops every fetch from claiming more.
class WindowFetch {
 public:
  WindowFetch(RepositorySet& repositories, const SpoolDir& spool, uint64_t system_id,
              uint64_t segment_size, std::vector<std::string> window)
      : repositories_(repositories),
        spool_(spool),
        system_id_(system_id),
        segment_size_(segment_size),
        window_(std::move(window)) {}

  // Fetches segments of the window until it is done or stopped; run by
  // each parallel fetch.  Throws the error that stopped it.
  void Run() {
    while (const std::optional<std::string> next = Claim()) {
      Settle settle(*this, *next);  // also when the fetch throws: that stops the window too
      const ExpectedWal expected{ParseWalFileNameOrThrow(*next), system_id_};
      // Written through the spool's descriptor (see SpoolDir::PathVia).
      settle.restored = RestoreFromRepositories(repositories_, WalObjectKey(system_id_, expected.name),
                                                spool_.PathVia(*next), nullptr, &expected)
                            .has_value();
      if (!settle.restored) Log(LogLevel::kDebug, "prefetch stops at {}: not in the repository", *next);
    }
  }

  // Segments spooled, and whether a miss or too little free space ended the
  // window; read once every fetch ended.
  int fetched() const { return fetched_; }
  bool stopped() const { return stopped_; }

 private:
  // Ends the fetch of `name`: it is no longer in flight, and unless it was
  // restored nothing more is claimed.
  struct Settle {
    Settle(WindowFetch& owner, const std::string& name) : owner(owner), name(name) {}
    ~Settle() { owner.Done(name, restored); }
    Settle(const Settle&) = delete;
    Settle& operator=(const Settle&) = delete;
    WindowFetch& owner;
    const std::string& name;
    bool restored = false;
  };

  // The next segment to fetch, now named in "fetching"; nullopt when the
  // window is done or stopped.
  std::optional<std::string> Claim() {
    const std::lock_guard lock(mutex_);
    while (!stopped_ && next_ < window_.size()) {
      const std::string& next = window_[next_++];
      if (spool_.Exists(next)) continue;
      // Read-ahead must never take the room a synchronous fetch (or the
      // server) needs: stop while less than the whole window plus two
      // segments would stay free once every fetch in flight is written.
      struct statvfs fs {};
      const uint64_t reserve = segment_size_ * (window_.size() + 2);
      const uint64_t coming = segment_size_ * (in_flight_.size() + 1);
      if (fstatvfs(spool_.fd(), &fs) == 0 &&
          static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < reserve + coming) {
        Log(LogLevel::kWarning, "read-ahead stops at {}: {} bytes free in \"{}\", keeping {} free",
            next, static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize, spool_.path(), reserve);
        stopped_ = true;
        break;
      }
      in_flight_.push_back(next);
      PublishInFlight();  // a walfetch asking for it waits for this copy
      return next;
    }
    return std::nullopt;
  }

  void Done(const std::string& name, bool restored) noexcept {
    const std::lock_guard lock(mutex_);
    std::erase(in_flight_, name);
    PublishInFlight();
    if (restored) {
      spool_.Remove(kStalledFile);
      ++fetched_;
    } else {
      stopped_ = true;
    }
  }

  // "fetching" names the segments in flight, one a line.  When it cannot
  // be written it goes: a walfetch then fetches by itself rather than wait
  // for a segment the file no longer names truly.
  void PublishInFlight() noexcept {
    std::string text;
    for (const std::string& name : in_flight_) text += name + "\n";
    if (text.empty() || !spool_.TryWrite(kFetchingFile, text)) spool_.Remove(kFetchingFile);
  }

  RepositorySet& repositories_;
  const SpoolDir& spool_;
  const uint64_t system_id_;
  const uint64_t segment_size_;
  const std::vector<std::string> window_;
  std::mutex mutex_;  // guards what follows, and the writes of "fetching"
  size_t next_ = 0;   // window_[next_] is the next segment to claim
  bool stopped_ = false;
  std::vector<std::string> in_flight_;
  int fetched_ = 0;
};

// Waits while the running worker is fetching `name` itself, until that copy
// is spooled, the worker moves on or ends, or `max_wait` passed (then the
// "stalled" file makes later calls fetch by themselves until the worker
// spools a segment again).  Without this, a segment asked for while the
// worker fetches it was fetched twice, on the cores the replay needs.
void AwaitWorkerFetch(const SpoolDir& spool, const WalFileName& name,
                      std::chrono::milliseconds max_wait) {
  if (spool.Exists(kStalledFile)) return;
  const auto deadline = std::chrono::steady_clock::now() + max_wait;
  while (!spool.Exists(name.text) && NamesLine(spool.Read(kFetchingFile), name.text) &&
         SpoolWorkerRunning(spool)) {
    if (std::chrono::steady_clock::now() > deadline) {
      Log(LogLevel::kWarning,
          "the read-ahead worker has not fetched {} after {} ms; fetching it directly (see {})",
          name.text, max_wait.count(), spool.Show(kLogFile));
      spool.Write(kStalledFile, "");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

struct WindowOutcome {
  int fetched = 0;
  bool stopped = false;  // by a miss or too little free space (an error throws)
};

// One window of the worker: drops spooled files outside `after`+1 ..
// `after`+depth, then fetches the window's missing segments.
WindowOutcome FetchWindow(RepositorySet& repositories, const SpoolDir& spool,
                          const std::string& origin, uint64_t system_id, const WalFileName& after,
                          uint64_t segment_size, int depth) {
  const bool same_origin = spool.Read(kOriginFile) == origin;
  std::vector<std::string> window;
  const uint64_t first = after.SegmentNumber(segment_size) + 1;
  for (int i = 0; i < depth; ++i) {
    window.push_back(SegmentFileName(after.timeline, first + static_cast<uint64_t>(i), segment_size));
  }
  const std::set<std::string> wanted(window.begin(), window.end());
  // Under the lock nobody else writes here: whatever is outside the window,
  // stale, of another origin, or a temp file of a killed worker goes.
  spool.RemoveEntries({kOriginFile, kLogFile, kWantedFile},
                      [&](const std::string& file, const struct stat& st) {
                        return !same_origin || wanted.count(file) == 0 || !S_ISREG(st.st_mode) ||
                               OlderThanSpoolMaxAge(st);
                      });
  if (!same_origin) spool.Write(kOriginFile, origin);

  WindowFetch fetch(repositories, spool, system_id, segment_size, std::move(window));
  {
    // The other fetches run beside this thread's; their errors travel
    // through the futures, whose destructors wait for them.
    std::vector<std::future<void>> others;
    for (int i = 1; i < kPrefetchParallelFetches; ++i) {
      others.push_back(std::async(std::launch::async, [&fetch] { fetch.Run(); }));
    }
    fetch.Run();
    for (auto& other : others) other.get();
  }
  Log(LogLevel::kNotice, "prefetched {} segment(s) after {}", fetch.fetched(), after.text);
  return {fetch.fetched(), fetch.stopped()};
}

// What "wanted" says: the segment a walfetch was last asked for, and
// whether that walfetch reads with other settings than `origin` (it is not
// served what this worker spools).
struct Wanted {
  std::optional<WalFileName> name;
  bool foreign = false;
};
Wanted ReadWanted(const SpoolDir& spool, const std::string& origin) {
  const std::string text = spool.Read(kWantedFile);
  const size_t end = text.find('\n');
  if (end == std::string::npos) return {};
  return {ParseWalFileName(text.substr(0, end)), text.substr(end + 1) != SpoolDigest(origin) + "\n"};
}

// The segment after `after` on its timeline that a walfetch of these
// reader settings was asked for; nullopt when "wanted" names none.
std::optional<WalFileName> NewerWanted(const Wanted& wanted, const WalFileName& after,
                                       uint64_t segment_size) {
  const auto& name = wanted.name;
  if (wanted.foreign || !name || name->kind != WalFileKind::kSegment ||
      name->timeline != after.timeline ||
      name->SegmentNumber(segment_size) <= after.SegmentNumber(segment_size)) {
    return std::nullopt;
  }
  return name;
}

// Waits up to `linger` for a walfetch to ask for a segment after `after`;
// nullopt at once when one of other reader settings asked.
std::optional<WalFileName> AwaitNewerWanted(const SpoolDir& spool, const std::string& origin,
                                            const WalFileName& after, uint64_t segment_size,
                                            std::chrono::milliseconds linger) {
  const auto deadline = std::chrono::steady_clock::now() + linger;
  while (std::chrono::steady_clock::now() < deadline) {
    const Wanted wanted = ReadWanted(spool, origin);
    if (wanted.foreign) return std::nullopt;
    if (auto next = NewerWanted(wanted, after, segment_size)) return next;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::nullopt;
}

}  // namespace

std::string PrefetchSpoolDir(const std::string& dest_path) {
  return DirName(dest_path) + "/" + kPrefetchDirName;
}

uint64_t TakePrefetchedSegment(const Config& config, uint64_t system_id, const WalFileName& name,
                               const std::string& dest_path, std::chrono::milliseconds max_wait) {
  if (name.kind != WalFileKind::kSegment) return 0;
  const SpoolDir spool(PrefetchSpoolDir(dest_path), false);
  if (spool.state() == SpoolDir::State::kUnsafe) {
    Log(LogLevel::kWarning, "not using the read-ahead spool: {}", spool.problem());
  }
  if (!spool.usable()) return 0;  // no spool: the usual fetch
  int fd = spool.Open(name.text, O_RDONLY);
  if (fd < 0) {
    AwaitWorkerFetch(spool, name, max_wait);
    fd = spool.Open(name.text, O_RDONLY);
  }
  if (fd < 0) return 0;  // not spooled: the usual fetch
  struct stat st {};
  const std::string problem = fstat(fd, &st) != 0
                                  ? "could not stat it"
                                  : SpooledSegmentProblem(fd, st, config, system_id, name, spool);
  close(fd);
  if (!problem.empty()) {
    Log(LogLevel::kWarning, "discarding prefetched \"{}\": {}; fetching it from the repository",
        spool.Show(name.text), problem);
    spool.Remove(name.text);
    return 0;
  }
  // The file was fsynced before it entered the spool; the rename needs no
  // directory fsync: PostgreSQL asks for the segment again after a crash.
  // Gone meanwhile (or on another file system): fetched from the repository.
  return spool.MoveOut(name.text, dest_path) ? static_cast<uint64_t>(st.st_size) : 0;
}

uint64_t SegmentSizeOf(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const auto header = ReadWalLongHeader(fd);
  close(fd);
  return header && IsValidSegmentSize(header->segment_size) ? header->segment_size : 0;
}

bool StartPrefetchWorker(const Config& spool_origin, uint64_t system_id, const WalFileName& restored,
                         const std::string& dest_path, const std::vector<std::string>& worker_args) {
  const SpoolDir spool(PrefetchSpoolDir(dest_path), true);
  // Before the lock is probed: a lingering worker sees it, also one that
  // lets go of the lock just now (RunPrefetchWorker looks once more).
  // Best effort: without it a worker that runs does not extend its window.
  if (spool.usable()) {
    spool.TryWrite(kWantedFile, fmt::format("{}\n{}\n", restored.text,
                                            SpoolDigest(SpoolOriginText(spool_origin, system_id))));
  }
  return StartSpoolWorker(spool, kLogFile, "read-ahead", worker_args);
}

int RunPrefetchWorker(Storage& storage, const Config& config, uint64_t system_id,
                      const WalFileName& name, uint64_t segment_size,
                      const std::string& dest_path) {
  RepositorySet repositories(config, storage);
  return RunPrefetchWorker(repositories, system_id, name, segment_size, dest_path);
}

int RunPrefetchWorker(RepositorySet& repositories, uint64_t system_id, const WalFileName& name,
                      uint64_t segment_size, const std::string& dest_path,
                      std::chrono::milliseconds linger) {
  const Config& config = repositories.spool_origin();
  if (name.kind != WalFileKind::kSegment || !IsValidSegmentSize(segment_size) ||
      config.prefetch <= 0) {
    return 0;
  }
  const SpoolDir spool(PrefetchSpoolDir(dest_path), true);
  if (!spool.usable()) Fail(ErrorCode::kLocalIo, "{}", spool.problem());
  auto lock = std::make_unique<SpoolLock>(spool);
  if (lock->errno_value() != 0) {
    FailErrno(lock->errno_value(), fmt::format("could not open the lock in \"{}\"", spool.path()));
  }
  if (!lock->held()) return 0;  // another worker has the spool
  setpriority(PRIO_PROCESS, 0, kWorkerNice);  // best effort: read-ahead is a bonus

  const std::string origin = SpoolOriginText(config, system_id);
  WalFileName after = name;
  int fetched = 0;
  for (;;) {
    const WindowOutcome window =
        FetchWindow(repositories, spool, origin, system_id, after, segment_size, config.prefetch);
    fetched += window.fetched;
    if (window.stopped || linger.count() <= 0) break;
    std::optional<WalFileName> next = AwaitNewerWanted(spool, origin, after, segment_size, linger);
    if (!next) {
      // Idle: let go of the spool, then look once more.  A walfetch that
      // asked just now and found the lock held started no worker; it
      // wrote "wanted" before it looked, so this sees it.
      lock.reset();
      next = NewerWanted(ReadWanted(spool, origin), after, segment_size);
      if (!next) break;
      lock = std::make_unique<SpoolLock>(spool);
      if (!lock->held()) break;  // a new worker has the spool
    }
    after = *next;
  }
  return fetched;
}

void RemoveStalePrefetch(const std::string& wal_file_path) {
  const SpoolDir spool(PrefetchSpoolDir(wal_file_path), false);
  if (spool.state() == SpoolDir::State::kUnsafe) {
    Log(LogLevel::kWarning, "not cleaning the read-ahead spool: {}", spool.problem());
  }
  if (!spool.usable()) return;
  spool.RemoveEntries({kOriginFile, kLogFile}, [](const std::string&, const struct stat& st) {
    return OlderThanSpoolMaxAge(st);
  });
}

}  // namespace walstore
