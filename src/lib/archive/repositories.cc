#include <fcntl.h>
#include <unistd.h>
#include <walstore/backup/base_backup.h>
#include <walstore/backup/copy.h>
#include <walstore/backup/repository.h>
#include <walstore/backup/util.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/prefetch.h>
#include <walstore/push_ahead.h>
#include <walstore/repositories.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include "archive/archive_gap.h"
#include "archive/cluster_presence.h"
#include "archive/local_wal.h"
#include "common/file_util.h"

namespace walstore {
namespace {

// `error` again, its message naming the repository it came from.
Error InRepository(const Error& error, const std::string& label) {
  return Error(error.code(), fmt::format("{}: {}", label, error.what()), error.hint());
}

// After every repository lacked `name`: with one repository the diagnostic
// only (it never changes the answer).  With several, a repository that holds
// nothing at all of the cluster while another holds some of it is no proof
// of absence (a wrong URL or prefix, a repository added without its history):
// that throws, so recovery stops instead of ending at a gap.  A probe that
// fails throws too: "missing" needs every repository's answer.
void ConfirmAbsence(RepositorySet& repositories, uint64_t system_id, const std::string& name) {
  if (repositories.size() == 1) {
    WarnIfClusterAbsent(repositories.storage(0), system_id);
    return;
  }
  std::vector<size_t> empty;
  for (size_t i = 0; i < repositories.size(); ++i) {
    try {
      if (!HoldsCluster(repositories.storage(i), system_id)) empty.push_back(i);
    } catch (const Error& error) {
      throw Error(error.code(),
                  fmt::format("{} is in no repository, but whether {} holds anything of cluster "
                              "{} is unknown: {}",
                              name, repositories.Label(i), system_id, error.what()),
                  error.hint());
    }
  }
  if (empty.size() == repositories.size()) {  // a new cluster: every archive is empty
    for (size_t i : empty) WarnClusterAbsent(repositories.storage(i), system_id);
  }
  if (empty.empty() || empty.size() == repositories.size()) return;
  std::string labels;
  for (size_t i : empty) labels += (labels.empty() ? "" : " and ") + repositories.Label(i);
  throw Error(ErrorCode::kNotARepository,
              fmt::format("{} is in no repository, but {} {} nothing at all of cluster {} "
                          "while another repository holds its WAL: its \"not here\" proves "
                          "nothing, and recovery must not end on it",
                          name, labels, empty.size() == 1 ? "holds" : "hold", system_id),
              "fix the repository URL (bucket and prefix), or copy the cluster's WAL into a "
              "newly added repository with \"walctl sync\", or remove the repository from the "
              "configuration");
}


// A copy into `to` that failed with `error`.  A conflict (the destination
// holds other content under the name, stored since the listing) fails the
// command whichever repository it is in, as it does for walpush.
SyncProblem CopyFailed(size_t to, const std::string& name, const std::string& from_label,
                       const Error& error) {
  return {to, name,
          fmt::format("copying from {} failed: {} [{}]", from_label, error.what(),
                      InfoFor(error.code()).name),
          error.code() == ErrorCode::kConflict};
}

// Where a WAL file sits in the history, for the retention horizon: (log,
// segment); nullopt for timeline history files, which have no place.
std::optional<std::pair<uint32_t, uint32_t>> HistoryPosition(const WalFileName& name) {
  if (name.kind == WalFileKind::kHistory) return std::nullopt;
  return std::make_pair(name.log, name.segment);
}


}  // namespace

void WarnIfLackingRepositoryEmpty(RepositorySet& repositories, const std::vector<size_t>& lacking,
                                  const ExpectedWal& expected, size_t served_by) {
  if (lacking.empty() || repositories.warned_empty_.exchange(true)) return;
  for (size_t i : lacking) {
    try {
      if (HoldsCluster(repositories.storage(i), expected.system_id)) continue;
    } catch (const Error& error) {
      Log(LogLevel::kDebug, "could not check whether {} holds cluster {}: {}",
          repositories.Label(i), expected.system_id, error.what());
      continue;
    }
    Log(LogLevel::kWarning,
        "{} holds nothing at all of cluster {}: it lacked {}, which {} served",
        repositories.Label(i), expected.system_id, expected.name.text,
        repositories.Label(served_by));
    LogHint("fix its URL (bucket and prefix), copy the cluster's WAL into it with \"walctl "
            "sync\", or remove it from the configuration; where no repository has a file, "
            "walfetch stops recovery because of it");
  }
}

RepositorySet::RepositorySet(const Config& config, Opener open)
    : top_(config), open_(std::move(open)) {
  for (const Config& repo : config.repositories) configs_.push_back(&repo);
  if (configs_.empty() && !config.repo_url.empty()) configs_.push_back(&config);
  if (configs_.empty()) {
    throw Error(ErrorCode::kConfig, "no repository configured",
                "set repository (or [[repository]] tables) in the config file, WALSTORE_REPO "
                "or --repo");
  }
  owned_.resize(configs_.size());
  storages_.resize(configs_.size(), nullptr);
}

RepositorySet::RepositorySet(const Config& config, Storage& storage)
    : top_(config), configs_{&config}, owned_(1), storages_{&storage} {}

Storage& RepositorySet::storage(size_t index) {
  const std::lock_guard lock(*open_mutex_);
  if (storages_[index] == nullptr) {
    owned_[index] = open_(*configs_[index]);
    storages_[index] = owned_[index].get();
  }
  return *storages_[index];
}

std::optional<size_t> RestoreFromRepositories(RepositorySet& repositories, const std::string& key,
                                              const std::string& dest_path,
                                              uint64_t* plaintext_size,
                                              const ExpectedWal* expected) {
  if (repositories.size() == 1) {  // its error as it is, without a repository label
    if (!RestoreObjectToFile(repositories.storage(0), repositories.config(0), key, dest_path,
                             plaintext_size, expected)) {
      return std::nullopt;
    }
    return 0;
  }
  std::optional<Error> first_failure;
  std::vector<size_t> lacking;
  for (size_t i = 0; i < repositories.size(); ++i) {
    try {
      if (RestoreObjectToFile(repositories.storage(i), repositories.config(i), key, dest_path,
                              plaintext_size, expected)) {
        if (first_failure) {
          Log(LogLevel::kWarning, "restored {} from {} after an earlier repository failed",
              key, repositories.Label(i));
        }
        if (expected != nullptr) WarnIfLackingRepositoryEmpty(repositories, lacking, *expected, i);
        return i;
      }
      Log(LogLevel::kDebug, "{} is not in {}", key, repositories.Label(i));
      lacking.push_back(i);
    } catch (const Error& error) {
      const bool more = i + 1 < repositories.size();
      Log(LogLevel::kWarning, "{}: {}{}", repositories.Label(i), error.what(),
          more ? "; trying the next repository" : "");
      if (!first_failure) first_failure = InRepository(error, repositories.Label(i));
    }
  }
  if (first_failure) {
    throw Error(first_failure->code(),
                fmt::format("{} was restored from no repository, and not every repository "
                            "positively lacks it: {}",
                            key, first_failure->what()),
                first_failure->hint());
  }
  return std::nullopt;
}

FetchResult FetchWalFileFromRepositories(RepositorySet& repositories, const std::string& name,
                                         const std::string& dest_path, size_t* restored_from) {
  const Config& top = repositories.top();
  const WalFileName parsed = ParseWalFileNameOrThrow(name);
  const uint64_t system_id = ResolveSystemId(top, ".");
  FetchResult result;
  result.system_id = system_id;
  result.key = WalObjectKey(system_id, parsed);
  if (top.prefetch > 0) {
    result.plaintext_size =
        TakePrefetchedSegment(repositories.spool_origin(), system_id, parsed, dest_path);
    if (result.plaintext_size > 0) {
      result.outcome = FetchOutcome::kRestored;
      result.prefetched = true;
      return result;
    }
  }
  const ExpectedWal expected{parsed, system_id};
  const auto from =
      RestoreFromRepositories(repositories, result.key, dest_path, &result.plaintext_size, &expected);
  if (from) {
    result.outcome = FetchOutcome::kRestored;
    if (restored_from != nullptr) *restored_from = *from;
    return result;
  }
  ConfirmAbsence(repositories, system_id, name);
  RefuseArchiveGap(repositories, system_id, parsed, ".", std::time(nullptr));
  result.outcome = FetchOutcome::kMissing;
  return result;
}

PushResult PushWalFileToRepositories(RepositorySet& repositories, const std::string& path,
                                     const std::vector<std::string>& worker_args) {
  if (repositories.size() == 1) {
    return PushWalFileWithPushAhead([&] { return OpenStorage(repositories.config(0)); },
                                    repositories.config(0), path, worker_args);
  }
  std::optional<PushResult> result;
  bool stored_any = false;
  std::optional<Error> conflict;
  std::optional<Error> required_failure;
  std::vector<std::pair<size_t, std::string>> best_effort_misses;  // repository, error name
  // Opened and checked once: every repository gets the same file (were it
  // replaced in pg_wal meanwhile, the open one still), read from the page
  // cache again for each.
  WalFileToPush wal(repositories.top(), path);
  RemoveStalePrefetch(path);  // what a finished recovery left in pg_wal
  for (size_t i = 0; i < repositories.size(); ++i) {
    const Config& config = repositories.config(i);
    try {
      const PushResult pushed = PushOpenedWalFile(repositories.storage(i), config, wal);
      stored_any = stored_any || pushed.outcome == PushOutcome::kStored;
      if (!result) result = pushed;
    } catch (const Error& error) {
      const Error named = InRepository(error, repositories.Label(i));
      if (error.code() == ErrorCode::kConflict) {
        if (!conflict) conflict = named;
      } else if (!config.best_effort) {
        if (!required_failure) required_failure = named;
      }
      if (config.best_effort && error.code() != ErrorCode::kConflict) {
        // Loud, counted, and caught up by walctl sync: never forgotten.
        Log(LogLevel::kWarning, "{} did not reach the best-effort {}: {} [{}]", BaseName(path),
            repositories.Label(i), error.what(), InfoFor(error.code()).name);
        LogHint("run \"walctl sync\" once the repository answers again; the miss is recorded "
                "in pg_wal/" + std::string(kBestEffortRecordName));
        best_effort_misses.emplace_back(i, InfoFor(error.code()).name);
      } else if (i + 1 < repositories.size()) {
        Log(LogLevel::kWarning, "{}; archiving to the other repositories all the same",
            named.what());
      }
    }
  }
  if (conflict) throw *conflict;
  if (required_failure) throw *required_failure;
  if (!result) Fail(ErrorCode::kInternal, "no repository took {}", path);  // all best-effort
  // Only now: a failed push is retried by PostgreSQL and recorded then.
  for (const auto& [i, error_name] : best_effort_misses) {
    RecordBestEffortMiss(DirName(path), repositories.config(i).repo_url, BaseName(path),
                         error_name);
  }
  if (stored_any) result->outcome = PushOutcome::kStored;
  return *result;
}

namespace {

using backup::BackupRecord;

// The record of `label` in `records`; nullptr when there is none.
const BackupRecord* FindLabel(const std::vector<BackupRecord>& records, const std::string& label) {
  for (const auto& record : records) {
    if (record.label == label) return &record;
  }
  return nullptr;
}

// What SyncBackups will copy into one repository (BackupsToCopy).
struct BackupPlan {
  std::vector<const BackupRecord*> copy;  // oldest first; records of the source repositories
  size_t below_horizon = 0;
  std::vector<SyncProblem> problems;  // conflicts and broken chains, for `to`
};

// The one rule for which backups go into repository `to` (SyncBackups copies
// them, SyncWal first copies the WAL they need whatever its horizon): every
// label some other repository holds and `to` lacks, oldest first, unless
//   - the holders do not all hold the same backup under it (a conflict:
//     with `to`'s own record, or among the sources);
//   - it started before `to`'s oldest backup (pruned there), unless `all` or
//     asked for by `only_label`;
//   - it is a diff or incr whose chain is not whole in `to` once the
//     backups before it in this plan are copied.
BackupPlan BackupsToCopy(RepositorySet& repositories, const RepositoryListing& listing, size_t to,
                         bool all, const std::string& only_label) {
  const size_t n = repositories.size();
  const std::vector<std::vector<BackupRecord>>& held = listing.backups;
  BackupPlan plan;
  std::map<std::string, std::pair<size_t, const BackupRecord*>> by_label;  // the first holder's
  std::vector<const BackupRecord*> order;  // every label once, oldest first
  for (size_t i = 0; i < n; ++i) {
    if (listing.backups_failed.at(i)) continue;
    for (const auto& record : held.at(i)) {
      if (by_label.emplace(record.label, std::make_pair(i, &record)).second) {
        order.push_back(&record);
      }
    }
  }
  std::stable_sort(order.begin(), order.end(), [](const BackupRecord* a, const BackupRecord* b) {
    return a->start_time != b->start_time ? a->start_time < b->start_time : a->label < b->label;
  });
  std::optional<double> horizon;
  if (!held[to].empty()) horizon = held[to].front().start_time;  // oldest first
  std::vector<BackupRecord> will_hold = held[to];  // as the plan goes on
  for (const BackupRecord* wanted : order) {
    if (!only_label.empty() && wanted->label != only_label) continue;
    const BackupRecord* ours = FindLabel(held[to], wanted->label);
    const size_t first_holder = by_label.at(wanted->label).first;
    bool conflict = false;
    for (size_t from = 0; from < n && !conflict; ++from) {
      const BackupRecord* theirs = FindLabel(held[from], wanted->label);
      if (from == to || theirs == nullptr || listing.backups_failed.at(from)) continue;
      if (ours != nullptr && !backup::SameBackup(*ours, *theirs)) {
        plan.problems.push_back(
            {to, wanted->label,
             fmt::format("conflict: {} holds another backup under this label (started at LSN {} "
                         "there, {} in {}); neither is copied over the other [conflict]",
                         repositories.Label(to), backup::FormatLsn(ours->start_lsn),
                         backup::FormatLsn(theirs->start_lsn), repositories.Label(from)),
             true});
        conflict = true;
      } else if (ours == nullptr && !backup::SameBackup(*wanted, *theirs)) {
        plan.problems.push_back(
            {to, wanted->label,
             fmt::format("conflict: {} and {} hold different backups under this label (started "
                         "at LSN {} and {}); none is copied into {} [conflict]",
                         repositories.Label(first_holder), repositories.Label(from),
                         backup::FormatLsn(wanted->start_lsn),
                         backup::FormatLsn(theirs->start_lsn), repositories.Label(to)),
             true});
        conflict = true;
      }
    }
    if (conflict || ours != nullptr) continue;
    // The horizon guards against undoing a prune; a backup asked for by
    // label (walctl --repo all backup) is always wanted.
    if (!all && only_label.empty() && horizon && wanted->start_time < *horizon) {
      ++plan.below_horizon;
      continue;
    }
    if (wanted->type != backup::BackupType::kFull) {
      const std::string missing = backup::ChainProblem(will_hold, *wanted);
      if (!missing.empty()) {
        plan.problems.push_back(
            {to, wanted->label,
             fmt::format("not copied: its reference chain is not whole in {}: {} (copy or keep "
                         "its references there first) [corrupt]",
                         repositories.Label(to), missing)});
        continue;
      }
    }
    plan.copy.push_back(wanted);
    will_hold.push_back(*wanted);
  }
  return plan;
}

// Removes a local file when it goes out of scope.
class RemovedAtEnd {
 public:
  explicit RemovedAtEnd(std::string path) : path_(std::move(path)) {}
  ~RemovedAtEnd() { unlink(path_.c_str()); }
  RemovedAtEnd(const RemovedAtEnd&) = delete;
  RemovedAtEnd& operator=(const RemovedAtEnd&) = delete;

 private:
  std::string path_;
};

// The one way walctl sync takes a WAL file out of repository `from`, for a
// copy (SyncWal) or a repair (CheckHeldObjects): restored to
// "<work_dir>/<name>" from `from` read as a copy source (CopySourceConfig:
// only authenticated objects leave a repository with a key) with the checks
// walfetch applies (ExpectedWal: cluster, file name, WAL page header), then
// handed to `put`; the local file is removed whatever happens.  False when
// `from` no longer holds it.
bool PassWalFile(RepositorySet& repositories, size_t from, const std::string& key,
                 const ExpectedWal& expected, const std::string& work_dir,
                 const std::function<void(const std::string& local)>& put) {
  const std::string local = work_dir + "/" + expected.name.text;
  RemovedAtEnd removed(local);
  if (!RestoreObjectToFile(repositories.storage(from),
                           CopySourceConfig(repositories.config(from)), key, local, nullptr,
                           &expected)) {
    return false;
  }
  put(local);
  return true;
}

}  // namespace

RepositoryListing ListRepositories(RepositorySet& repositories, uint64_t system_id, bool wal,
                                   bool backups) {
  const size_t n = repositories.size();
  RepositoryListing listing;
  listing.wal.resize(wal ? n : 0);
  listing.backups.resize(backups ? n : 0);
  listing.wal_failed.assign(n, false);
  listing.backups_failed.assign(n, false);
  const auto list = [&](size_t i, bool& failed, const char* what, const auto& read) {
    try {
      read();
    } catch (const Error& error) {
      failed = true;
      listing.errors.push_back(
          {i, what, fmt::format("could not be listed, so it is left out of this part of the "
                                "sync: {} [{}]",
                                error.what(), InfoFor(error.code()).name)});
    }
  };
  for (size_t i = 0; i < n; ++i) {
    bool wal_failed = false;
    bool backups_failed = false;
    if (wal) {
      list(i, wal_failed, "WAL",
           [&] { listing.wal[i] = backup::ListWal(repositories.storage(i), system_id); });
    }
    if (backups) {
      list(i, backups_failed, "backups", [&] {
        listing.backups[i] =
            backup::LoadBackups(repositories.storage(i), repositories.config(i), system_id);
      });
    }
    listing.wal_failed[i] = wal_failed;
    listing.backups_failed[i] = backups_failed;
  }
  return listing;
}

SyncReport SyncWal(RepositorySet& repositories, uint64_t system_id, const std::string& work_dir,
                   bool dry_run, bool all) {
  const RepositoryListing listing = ListRepositories(repositories, system_id, true, false);
  SyncReport report = SyncWal(repositories, listing, system_id, work_dir, dry_run, all);
  report.problems.insert(report.problems.begin(), listing.errors.begin(), listing.errors.end());
  return report;
}

SyncReport SyncWal(RepositorySet& repositories, const RepositoryListing& listing,
                   uint64_t system_id, const std::string& work_dir, bool dry_run, bool all) {
  const size_t n = repositories.size();
  SyncReport report;
  report.copied.assign(n, 0);
  report.listed.assign(n, 0);
  std::vector<std::set<std::string>> held(n);  // keys
  std::map<std::string, WalFileName> names;     // key -> name
  for (size_t i = 0; i < n; ++i) {
    for (const auto& object : listing.wal.at(i)) {
      held[i].insert(object.key);
      names.emplace(object.key, object.name);
    }
    report.listed[i] = held[i].size();
  }
  report.held_names.resize(n);
  report.below_horizon.assign(n, 0);
  for (size_t to = 0; to < n; ++to) {
    if (listing.wal_failed.at(to)) continue;  // listing.errors says why
    // WAL a backup SyncBackups will copy into `to` needs: copied whatever
    // the horizon (a backup without its WAL restores nothing).
    std::set<std::string> needed;
    if (!listing.backups.empty() && !listing.backups_failed.at(to)) {
      for (const BackupRecord* record : BackupsToCopy(repositories, listing, to, all, {}).copy) {
        for (auto& name : backup::RequiredWal(*record)) needed.insert(std::move(name));
      }
    }
    Config destination = repositories.config(to);
    destination.system_id = system_id;  // .history / .backup files have no WAL header
    // The oldest WAL the destination holds: what lies before it was pruned
    // there on purpose (its own retention), not missed.
    std::optional<std::pair<uint32_t, uint32_t>> horizon;
    for (const std::string& key : held[to]) {
      const auto position = HistoryPosition(names.at(key));
      if (position && (!horizon || *position < *horizon)) horizon = position;
    }
    for (const auto& [key, name] : names) {
      if (held[to].count(key) != 0) continue;
      const auto position = HistoryPosition(name);
      if (!all && horizon && position && *position < *horizon && needed.count(name.text) == 0) {
        ++report.below_horizon[to];
        continue;
      }
      if (dry_run) {
        ++report.copied[to];
        continue;
      }
      const ExpectedWal expected{name, system_id};
      bool copied = false;
      for (size_t from = 0; from < n && !copied; ++from) {
        if (from == to || held[from].count(key) == 0) continue;
        try {
          // Pushed as walpush would push it: checked, never overwriting.
          copied = PassWalFile(repositories, from, key, expected, work_dir,
                               [&](const std::string& local) {
                                 PushWalFile(repositories.storage(to), destination, local);
                               });
          if (copied) ++report.copied[to];  // else removed since the listing
        } catch (const Error& error) {
          report.problems.push_back(CopyFailed(to, name.text, repositories.Label(from), error));
        }
      }
      if (copied) held[to].insert(key);
    }
    for (const std::string& key : held[to]) report.held_names[to].insert(names.at(key).text);
  }
  return report;
}

BackupSyncReport SyncBackups(RepositorySet& repositories, uint64_t system_id, bool dry_run,
                             bool all, const std::string& only_label) {
  const RepositoryListing listing = ListRepositories(repositories, system_id, false, true);
  BackupSyncReport report =
      SyncBackups(repositories, listing, system_id, dry_run, all, only_label);
  report.problems.insert(report.problems.begin(), listing.errors.begin(), listing.errors.end());
  return report;
}

BackupSyncReport SyncBackups(RepositorySet& repositories, const RepositoryListing& listing,
                             uint64_t system_id, bool dry_run, bool all,
                             const std::string& only_label) {
  const size_t n = repositories.size();
  const std::vector<std::vector<BackupRecord>>& held = listing.backups;
  BackupSyncReport report;
  report.listed.assign(n, 0);
  report.copied.assign(n, 0);
  report.below_horizon.assign(n, 0);
  for (size_t i = 0; i < n; ++i) report.listed[i] = held.at(i).size();
  for (size_t to = 0; to < n; ++to) {
    if (listing.backups_failed.at(to)) continue;  // listing.errors says why
    BackupPlan plan = BackupsToCopy(repositories, listing, to, all, only_label);
    report.below_horizon[to] = plan.below_horizon;
    report.problems.insert(report.problems.end(), plan.problems.begin(), plan.problems.end());
    std::vector<BackupRecord> now = held[to];  // what `to` holds as copies are made
    for (const BackupRecord* wanted : plan.copy) {
      if (dry_run) {
        ++report.copied[to];
        continue;
      }
      // Planned with every earlier copy done: one that failed breaks the chain.
      if (wanted->type != backup::BackupType::kFull) {
        const std::string missing = backup::ChainProblem(now, *wanted);
        if (!missing.empty()) {
          report.problems.push_back(
              {to, wanted->label,
               fmt::format("not copied: its reference chain is not whole in {}: {} (its "
                           "reference failed to copy) [corrupt]",
                           repositories.Label(to), missing)});
          continue;
        }
      }
      // Recorded only where its WAL is: "complete" means restorable there.
      const std::vector<std::string> required = backup::RequiredWal(*wanted);
      const std::vector<std::string> missing_wal =
          backup::WaitForWal(repositories.storage(to), system_id, required, 0);
      if (!missing_wal.empty()) {
        report.problems.push_back(
            {to, wanted->label,
             fmt::format("not copied: {} lacks {} of the {} WAL files it needs ({} .. {}), so "
                         "it could not be restored from there; copy that WAL there first "
                         "(walctl sync), then sync again [corrupt]",
                         repositories.Label(to), missing_wal.size(), required.size(),
                         missing_wal.front(), missing_wal.back())});
        continue;
      }
      for (size_t from = 0; from < n; ++from) {
        const BackupRecord* source = FindLabel(held[from], wanted->label);
        if (from == to || source == nullptr || listing.backups_failed.at(from) ||
            !backup::SameBackup(*source, *wanted)) {
          continue;
        }
        try {
          now.push_back(backup::CopyBackup({repositories.storage(from), repositories.config(from)},
                                           {repositories.storage(to), repositories.config(to)},
                                           system_id, *source));
          ++report.copied[to];
          break;
        } catch (const Error& error) {
          report.problems.push_back(CopyFailed(to, wanted->label, repositories.Label(from), error));
        }
      }
    }
  }
  return report;
}

std::string UnencryptedCopiesWarning(RepositorySet& repositories,
                                     const std::vector<size_t>& copied_into) {
  std::string keyed;
  std::string plain;
  for (size_t i = 0; i < repositories.size(); ++i) {
    const bool has_key = !repositories.config(i).ReadKeys().empty();
    if (has_key && keyed.empty()) keyed = repositories.Label(i);
    if (!has_key && copied_into.at(i) > 0) {
      plain += (plain.empty() ? "" : ", ") + repositories.Label(i);
    }
  }
  if (keyed.empty() || plain.empty()) return {};
  return fmt::format("{} has no encryption key, while {} is encrypted: what sync copied into it "
                     "is stored unencrypted there",
                     plain, keyed);
}

namespace {

// One object held by several repositories, and what its copies must decode to.
struct HeldObject {
  std::vector<size_t> holders;
  std::optional<backup::BackupObject> expected;  // backup objects: the record's digest
  std::optional<WalFileName> wal;                // WAL objects: the file's name
};

// Every object that two or more repositories hold, by key.
std::map<std::string, HeldObject> ObjectsHeldTwice(const RepositoryListing& listing,
                                                   uint64_t system_id) {
  std::map<std::string, HeldObject> held;
  const auto& records = listing.backups;  // empty when only WAL was listed, and the reverse
  for (size_t i = 0; i < listing.wal.size(); ++i) {
    for (const auto& object : listing.wal[i]) {
      HeldObject& entry = held[object.key];
      entry.holders.push_back(i);
      entry.wal = object.name;
    }
  }
  for (size_t i = 0; i < records.size(); ++i) {
    for (const auto& record : records[i]) {
      for (size_t j = 0; j < i; ++j) {
        // Another backup under the label is SyncBackups' conflict, not compared here.
        const auto same = std::find_if(records[j].begin(), records[j].end(), [&](const auto& r) {
          return r.label == record.label && backup::SameBackup(r, record);
        });
        if (same == records[j].end()) continue;
        for (const backup::BackupObject* object : backup::RecordObjects(record)) {
          HeldObject& entry =
              held[backup::BackupObjectKey(system_id, record.label, object->name)];
          entry.expected = *object;
          for (size_t k : {j, i}) {
            if (std::find(entry.holders.begin(), entry.holders.end(), k) == entry.holders.end()) {
              entry.holders.push_back(k);
            }
          }
        }
      }
    }
  }
  std::erase_if(held, [](const auto& entry) { return entry.second.holders.size() < 2; });
  return held;
}

}  // namespace

HeldCheckReport CheckHeldObjects(RepositorySet& repositories, const RepositoryListing& listing,
                                 uint64_t system_id, bool repair, const std::string& stamp,
                                 const std::string& work_dir) {
  using State = backup::StoredCheck::State;
  const size_t n = repositories.size();
  HeldCheckReport report;
  report.checked.assign(n, 0);
  report.repaired.assign(n, 0);
  const auto ref = [&](size_t i) -> backup::RepositoryRef {
    return {repositories.storage(i), repositories.config(i)};
  };
  // Named variables, not structured bindings: the repair lambdas capture
  // them, which clang before 16 refuses for bindings.
  for (const auto& held_entry : ObjectsHeldTwice(listing, system_id)) {
    const std::string& key = held_entry.first;
    const auto& object = held_entry.second;
    std::map<size_t, backup::StoredDigest> intact;
    std::map<size_t, std::string> damaged;  // repository -> what is wrong
    for (size_t i : object.holders) {
      ++report.checked[i];
      try {
        backup::StoredCheck check =
            backup::CheckStoredObject(ref(i), key, object.expected ? &*object.expected : nullptr);
        if (check.state == State::kIntact) {
          intact.emplace(i, std::move(check.digest));
        } else {
          damaged.emplace(i, check.state == State::kDamaged
                                 ? check.damage
                                 : fmt::format("{}: {} is missing [corrupt]",
                                               repositories.storage(i).Describe(), key));
        }
      } catch (const Error& error) {
        // Says nothing about the object (a key, format, policy or I/O
        // problem): reported, never repaired.
        report.problems.push_back(
            {i, key,
             fmt::format("could not check: {} [{}]; fix that and run walctl sync --verify "
                         "again (nothing is repaired from this)",
                         error.what(), InfoFor(error.code()).name)});
      }
    }
    if (intact.size() > 1) {
      const auto& [first, digest] = *intact.begin();
      bool differ = false;
      for (const auto& [i, other] : intact) differ |= other.sha256 != digest.sha256;
      if (differ) {
        for (const auto& [i, other] : intact) {
          if (i == first) continue;
          report.problems.push_back(
              {i, key,
               fmt::format("conflict: decodes intact to SHA-256 {} here and to {} in {}: two "
                           "different valid objects under one name; neither is replaced "
                           "[conflict]",
                           other.sha256, digest.sha256, repositories.Label(first)),
               true});
        }
        continue;
      }
    }
    // A repair source: an intact copy that may leave its repository
    // (StoredDigest::may_leave, the rule sync copies by).
    const auto source = std::find_if(intact.begin(), intact.end(),
                                     [](const auto& entry) { return entry.second.may_leave; });
    for (const auto& damaged_entry : damaged) {
      const size_t to = damaged_entry.first;
      const std::string& what = damaged_entry.second;
      if (intact.empty()) {
        report.problems.push_back(
            {to, key,
             fmt::format("damaged: {}; no repository holds an intact copy, so it is left as it "
                         "is",
                         what)});
        continue;
      }
      if (source == intact.end()) {
        report.problems.push_back(
            {to, key,
             fmt::format("damaged: {}; {} holds an intact copy, but unencrypted in a repository "
                         "with a key (allow_plaintext_objects): only authenticated objects are "
                         "copied out of it, so nothing is repaired from it",
                         what, repositories.Label(intact.begin()->first))});
        continue;
      }
      const size_t from = source->first;
      const backup::StoredDigest& digest = source->second;
      if (!repair) {
        report.problems.push_back(
            {to, key,
             fmt::format("damaged: {}; {} holds an intact copy (walctl sync --repair moves this "
                         "one aside and replaces it)",
                         what, repositories.Label(from))});
        continue;
      }
      backup::BackupObject expected;
      expected.size = digest.size;
      expected.sha256 = digest.sha256;
      try {
        std::string aside;
        if (object.wal) {
          // Taken out of `from` as SyncWal copies WAL, checked as walfetch checks it.
          const ExpectedWal wal{*object.wal, system_id};
          aside = backup::ReplaceDamagedObject(
              ref(to), system_id, key, expected, stamp, [&](const std::string& staged) {
                const bool there = PassWalFile(
                    repositories, from, key, wal, work_dir, [&](const std::string& local) {
                      if (StoreFileObject(repositories.storage(to), repositories.config(to),
                                          local, staged, key)
                              .commit != CommitResult::kCreated) {
                        Fail(ErrorCode::kConflict, "{}: {} already exists",
                             repositories.storage(to).Describe(), staged);
                      }
                    });
                if (!there) {
                  Fail(ErrorCode::kCorrupt, "{}: {} is missing",
                       repositories.storage(from).Describe(), key);
                }
              });
        } else {
          aside = backup::ReplaceDamagedObject(ref(from), ref(to), system_id, key,
                                               object.expected.value_or(expected), stamp);
        }
        if (!aside.empty()) report.moved_aside.push_back({to, key, aside});
        ++report.repaired[to];
        Log(LogLevel::kWarning, "{}: {} was damaged ({}); {} and replaced by a verified copy "
                                "from {}",
            repositories.Label(to), key, what,
            aside.empty() ? std::string("it was missing") : "moved aside to " + aside,
            repositories.Label(from));
      } catch (const Error& error) {
        report.problems.push_back(
            {to, key,
             fmt::format("damaged: {}; repairing it from {} failed: {} [{}]", what,
                         repositories.Label(from), error.what(), InfoFor(error.code()).name)});
      }
    }
  }
  for (SyncProblem& problem : report.problems) problem.fails_always = true;
  return report;
}

}  // namespace walstore
