#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/prefetch.h>
#include <walstore/push_ahead.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "archive/local_wal.h"
#include "archive/spool.h"
#include "common/file_util.h"

namespace walstore {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kLogFile = "push.log";
constexpr const char* kPlanFile = "plan";
constexpr const char* kSettingsFile = "settings";  // the last walpush's SettingsFingerprint
constexpr const char* kStalledFile = "stalled";    // a walpush waited for the worker in vain
constexpr std::string_view kMarkerSuffix = ".pushed";
constexpr std::string_view kClaimSuffix = ".claim";
constexpr std::string_view kReadySuffix = ".ready";

std::string StatusDir(const std::string& wal_file_path) {
  return DirName(wal_file_path) + "/archive_status";
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The segment name `file` is about when it ends with one of `suffixes`
// ("<segment>.ready"); "" otherwise.
std::string SegmentOf(std::string_view file, std::initializer_list<std::string_view> suffixes) {
  for (auto suffix : suffixes) {
    if (!EndsWith(file, suffix)) continue;
    const std::string name(file.substr(0, file.size() - suffix.size()));
    const auto parsed = ParseWalFileName(name);
    return parsed && parsed->kind == WalFileKind::kSegment ? name : std::string();
  }
  return {};
}

// The segments named by entries of `dir` that end with one of `suffixes`.
std::vector<std::string> SegmentsWithSuffix(const std::string& dir,
                                            std::initializer_list<std::string_view> suffixes) {
  std::vector<std::string> names;
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) return names;
  while (dirent* entry = readdir(handle)) {
    if (std::string name = SegmentOf(entry->d_name, suffixes); !name.empty()) {
      names.push_back(std::move(name));
    }
  }
  closedir(handle);
  return names;
}

// Segments the spool has a marker or a claim for.
std::set<std::string> MarkedOrClaimed(const SpoolDir& spool) {
  std::set<std::string> names;
  spool.RemoveEntries({}, [&](const std::string& file, const struct stat&) {
    if (std::string name = SegmentOf(file, {kMarkerSuffix, kClaimSuffix}); !name.empty()) {
      names.insert(std::move(name));
    }
    return false;
  });
  return names;
}

std::string MarkerName(const std::string& segment) {
  return fmt::format("{}{}", segment, kMarkerSuffix);
}

// Everything that decides where and how walpush writes objects, hashed: a
// marker or a worker of another configuration (another endpoint, key,
// credentials, ...) does not count for this one.  No secret goes in.
std::string SettingsFingerprint(const Config& config) {
  const S3Settings& s3 = config.s3;
  const std::string text = fmt::format(
      "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n", config.repo_url, ToString(config.compression),
      config.key ? config.key->IdHex() : "", s3.endpoint, s3.region,
      s3.path_style ? (*s3.path_style ? "path" : "virtual") : "auto", s3.storage_class, s3.sse,
      s3.sse_kms_key_id, s3.profile, s3.access_key_id);
  return SpoolDigest(text);
}

// What a marker must start with to speak of `wal`: repository, settings,
// cluster, segment and the file's identity.
std::string MarkerIdentity(const Config& config, const WalFileToPush& wal) {
  const struct stat& st = wal.file.stat_at_open;
  return fmt::format(
      "repository={}\nsettings={}\nsystem_id={}\nsegment={}\n"
      "file={}:{}:{}:{}.{:09}:{}.{:09}:{}\n",
      config.repo_url, SettingsFingerprint(config), wal.system_id, wal.name.text,
      static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
      static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec),
      st.st_mtim.tv_nsec, static_cast<int64_t>(st.st_ctim.tv_sec), st.st_ctim.tv_nsec,
      wal.file.birth_time_ns);
}

std::string MarkerText(const Config& config, const WalFileToPush& wal, const PushResult& pushed) {
  return fmt::format("{}sha256={}\nstored_size={}\n", MarkerIdentity(config, wal),
                     ToHex(pushed.sha256), pushed.stored_size);
}

// The value of "name=" in the marker's body after the identity; "" if none.
std::string MarkerValue(const std::string& body, const std::string& name) {
  const std::string prefix = name + "=";
  const size_t at = body.find(prefix);
  if (at != 0 && (at == std::string::npos || body[at - 1] != '\n')) return {};
  const size_t start = at + prefix.size();
  const size_t end = body.find('\n', start);
  return end == std::string::npos ? std::string() : body.substr(start, end - start);
}

// A walpush that pushes a segment itself, or took the worker's marker for it,
// claims it while a worker runs, so that the worker leaves it alone.  The
// claim outlives the call (until PostgreSQL marks the segment .done the
// worker would push it again); the worker removes claims of segments no
// longer .ready.
std::string ClaimName(const std::string& segment) {
  return fmt::format("{}{}", segment, kClaimSuffix);
}

void ClaimSegment(const SpoolDir& spool, const std::string& segment) {
  const int fd = spool.Open(ClaimName(segment), O_WRONLY | O_CREAT);
  if (fd >= 0) close(fd);
}

// The worker's result for `wal` when its marker is valid; nullopt when there
// is none.  An invalid marker is deleted with a warning.
std::optional<PushResult> TakeMarker(const Config& config, const WalFileToPush& wal,
                                     const SpoolDir& spool) {
  const std::string marker = MarkerName(wal.name.text);
  struct stat st {};
  if (!spool.Stat(marker, st)) return std::nullopt;
  const std::string text = spool.Read(marker);
  const std::string identity = MarkerIdentity(config, wal);
  std::string problem;
  std::optional<Sha256Digest> digest;
  uint64_t stored_size = 0;
  if (!S_ISREG(st.st_mode)) {
    problem = "not a regular file";
  } else if (OlderThanSpoolMaxAge(st)) {
    problem = fmt::format("older than {} seconds", kSpoolMaxAgeSeconds);
  } else if (text.compare(0, identity.size(), identity) != 0) {
    problem = "it speaks of another repository, configuration, cluster or file";
  } else {
    const std::string body = text.substr(identity.size());
    digest = ParseSha256Hex(MarkerValue(body, "sha256"));
    const auto size = TryParseNumber<uint64_t>(MarkerValue(body, "stored_size"));
    stored_size = size.value_or(0);
    if (!digest || !size) problem = "it is incomplete";
  }
  // Used once, valid or not.  A valid one turns into a claim first, so the
  // worker never sees the segment unhandled.
  if (problem.empty()) ClaimSegment(spool, wal.name.text);
  spool.Remove(marker);
  if (!problem.empty()) {
    Log(LogLevel::kWarning, "not trusting the push-ahead marker \"{}\": {}; archiving {} again",
        spool.Show(marker), problem, wal.name.text);
    return std::nullopt;
  }
  PushResult result;
  result.outcome = PushOutcome::kPushedAhead;
  result.name = wal.name;
  result.key = wal.key;
  result.system_id = wal.system_id;
  result.plaintext_size = wal.file.size;
  result.stored_size = stored_size;
  result.sha256 = *digest;
  return result;
}

bool InPlan(const SpoolDir& spool, const std::string& segment) {
  const std::string plan = spool.Read(kPlanFile);
  return plan.find(segment + "\n") != std::string::npos;
}

// Waits while the worker runs and has `wal` in its plan, for at most
// kPushAheadMaxWaitSeconds; the worker's result, or nullopt.  A wait in vain
// leaves the "stalled" file, so that later calls push by themselves until
// the worker stores a segment again (it removes the file then).
std::optional<PushResult> AwaitWorker(const Config& config, const WalFileToPush& wal,
                                      const SpoolDir& spool) {
  if (spool.Exists(kStalledFile)) return std::nullopt;
  const auto deadline = Clock::now() + std::chrono::seconds(kPushAheadMaxWaitSeconds);
  while (SpoolWorkerRunning(spool) && InPlan(spool, wal.name.text)) {
    if (auto done = TakeMarker(config, wal, spool)) return done;
    if (Clock::now() > deadline) {
      Log(LogLevel::kWarning, "the push-ahead worker has not stored {} after {} s; archiving it "
          "directly (see {})", wal.name.text, kPushAheadMaxWaitSeconds, spool.Show(kLogFile));
      spool.Write(kStalledFile, "");
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return TakeMarker(config, wal, spool);  // it may have finished just now
}

// Records this call's settings for the worker; true when they differ from
// the last call's (a worker of the old ones then stops before its next
// segment, and is not waited for).
bool PublishSettings(const Config& config, const SpoolDir& spool) {
  const std::string settings = SettingsFingerprint(config) + "\n";
  if (spool.Read(kSettingsFile) == settings) return false;
  spool.Write(kSettingsFile, settings);
  return true;
}

// Under the worker's lock: markers and claims of segments no longer .ready
// (PostgreSQL is done with them) and stale or odd entries go; when the
// worker starts, temp files too.  Returns the segments still marked or
// claimed (MarkedOrClaimed, from the same pass over the spool).
std::set<std::string> CleanSpool(const SpoolDir& spool, const std::vector<std::string>& ready,
                                 bool temp_files_too) {
  const std::set<std::string> ready_set(ready.begin(), ready.end());
  std::set<std::string> kept;
  spool.RemoveEntries({kLogFile, kPlanFile, kSettingsFile, kStalledFile},
                      [&](const std::string& file, const struct stat& st) {
                        if (OlderThanSpoolMaxAge(st) || !S_ISREG(st.st_mode)) return true;
                        const std::string segment =
                            SegmentOf(file, {kMarkerSuffix, kClaimSuffix});
                        // A killed worker's temp files:
                        if (segment.empty()) return temp_files_too;
                        if (ready_set.count(segment) == 0) return true;
                        kept.insert(segment);
                        return false;
                      });
  return kept;
}

// Starts a worker when none runs and the plan has work for one.  True when a
// worker runs now (it was running, or was just started).
bool StartWorkerIfUseful(const Config& config, const std::string& path, const SpoolDir& spool,
                         const std::vector<std::string>& worker_args) {
  if (SpoolWorkerRunning(spool)) return true;
  if (worker_args.empty() ||
      PushAheadPlan(SegmentsWithSuffix(StatusDir(path), {kReadySuffix}), MarkedOrClaimed(spool),
                    config.push_ahead)
          .empty()) {
    return false;
  }
  return StartSpoolWorker(spool, kLogFile, "push-ahead", worker_args);
}

}  // namespace

std::string PushAheadSpoolDir(const std::string& wal_file_path) {
  return DirName(wal_file_path) + "/" + kPushAheadDirName;
}

std::vector<std::string> PushAheadPlan(std::vector<std::string> ready,
                                       const std::set<std::string>& marked_or_claimed,
                                       int push_ahead) {
  std::sort(ready.begin(), ready.end());
  if (push_ahead < 0) push_ahead = 0;
  ready.resize(std::min(ready.size(), static_cast<size_t>(push_ahead) + 1));
  std::erase_if(ready, [&](const std::string& name) { return marked_or_claimed.count(name) > 0; });
  return ready;
}

PushResult PushWalFileWithPushAhead(const StorageOpener& open_storage, const Config& config,
                                    const std::string& path,
                                    const std::vector<std::string>& worker_args) {
  WalFileToPush wal(config, path);
  RemoveStalePrefetch(path);  // what a finished recovery left in pg_wal
  if (config.push_ahead <= 0 || wal.name.kind != WalFileKind::kSegment ||
      !IsDirectory(StatusDir(path))) {
    return PushOpenedWalFile(*open_storage(), config, wal);
  }
  const SpoolDir spool(PushAheadSpoolDir(path), true);
  if (!spool.usable()) {
    Log(LogLevel::kWarning, "no push-ahead: {}", spool.problem());
    return PushOpenedWalFile(*open_storage(), config, wal);
  }
  const bool settings_changed = PublishSettings(config, spool);
  std::optional<PushResult> done = TakeMarker(config, wal, spool);
  if (!done && !settings_changed) done = AwaitWorker(config, wal, spool);
  // A segment pushed here (or whose marker TakeMarker took, claiming it) is
  // claimed so that a worker leaves it alone; with no worker running the
  // claim goes again, so archiving without a backlog leaves nothing behind.
  if (!done) ClaimSegment(spool, wal.name.text);
  if (!StartWorkerIfUseful(config, path, spool, worker_args)) spool.Remove(ClaimName(wal.name.text));
  if (done) return *done;
  return PushOpenedWalFile(*open_storage(), config, wal);
}

int RunPushAheadWorker(Storage& storage, const Config& config, const std::string& path) {
  if (config.push_ahead <= 0) return 0;
  const SpoolDir spool(PushAheadSpoolDir(path), true);
  const std::string status_dir = StatusDir(path);
  if (!spool.usable()) Fail(ErrorCode::kLocalIo, "{}", spool.problem());
  // A walpush probing the lock holds it for an instant: wait that out.
  SpoolLock lock(spool, 50);
  if (lock.errno_value() != 0) {
    FailErrno(lock.errno_value(), fmt::format("could not open the lock in \"{}\"", spool.path()));
  }
  if (!lock.held()) return 0;  // another worker has the spool
  CleanSpool(spool, SegmentsWithSuffix(status_dir, {kReadySuffix}), true);

  // kPushAheadUploads uploaders take segments from one plan: one encodes
  // while another's upload waits on the repository.  The spool is written
  // under `mutex` only.  The worker ends when no uploader had work for
  // kPushAheadIdleMs, when walpush runs with other settings, or at the first
  // error (the others finish the segment in hand).
  const std::string settings = SettingsFingerprint(config) + "\n";
  std::mutex mutex;
  std::set<std::string> in_flight;
  auto last_work = Clock::now();
  bool stop = false;
  int pushed = 0;
  // The next segment for an uploader; "" when there is none now; nullopt
  // when the worker ends.
  auto next = [&]() -> std::optional<std::string> {
    const std::lock_guard guard(mutex);
    if (!stop && spool.Read(kSettingsFile) != settings) {
      Log(LogLevel::kNotice, "walpush runs with other settings now; push-ahead stops");
      stop = true;
    }
    if (stop) return std::nullopt;
    const std::vector<std::string> ready = SegmentsWithSuffix(status_dir, {kReadySuffix});
    const std::vector<std::string> plan =
        PushAheadPlan(ready, CleanSpool(spool, ready, false), config.push_ahead);
    if (plan.empty()) {
      spool.Remove(kPlanFile);
    } else {
      std::string plan_text;
      for (const auto& name : plan) plan_text += name + "\n";
      spool.Write(kPlanFile, plan_text);
      for (const auto& name : plan) {
        if (in_flight.insert(name).second) {
          last_work = Clock::now();
          return name;
        }
      }
    }
    if (in_flight.empty() && Clock::now() - last_work > std::chrono::milliseconds(kPushAheadIdleMs)) {
      stop = true;
      return std::nullopt;
    }
    return std::string();
  };
  auto uploader = [&] {
    // An uploader ending early (an error on its way out) ends the others.
    struct StopOthersUnlessDone {
      std::mutex& mutex;
      bool& stop;
      bool done = false;
      ~StopOthersUnlessDone() {
        if (done) return;
        const std::lock_guard guard(mutex);
        stop = true;
      }
    } stop_others{mutex, stop};
    while (const std::optional<std::string> segment = next()) {
      if (segment->empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      WalFileToPush wal(config, DirName(path) + "/" + *segment);
      const PushResult result = PushOpenedWalFile(storage, config, wal);
      const std::lock_guard guard(mutex);
      spool.Write(MarkerName(*segment), MarkerText(config, wal, result));
      spool.Remove(kStalledFile);  // progress again
      in_flight.erase(*segment);
      last_work = Clock::now();
      ++pushed;
      Log(LogLevel::kDebug, "pushed ahead {}", *segment);
    }
    stop_others.done = true;
  };
  std::vector<std::future<void>> uploaders;
  for (int i = 0; i < kPushAheadUploads; ++i) {
    uploaders.push_back(std::async(std::launch::async, uploader));
  }
  for (auto& done : uploaders) done.wait();
  spool.Remove(kPlanFile);
  Log(LogLevel::kNotice, "pushed ahead {} segment(s)", pushed);
  for (auto& done : uploaders) done.get();  // the first uploader's error, if any
  return pushed;
}

}  // namespace walstore
