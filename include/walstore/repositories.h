// Several repositories (config.repositories, in order of preference) for
// walpush and walfetch (docs/configuration.md, "Several repositories").
//
// walpush archives to every repository.  It succeeds only when the file is
// durable (stored, or an identical copy found) in every repository that is
// not best_effort.  A conflict (different content archived) in any
// repository, best-effort or not, fails the push.  Any other failure in a
// best-effort repository is logged as a WARNING and recorded in the
// best-effort record beside %p (below); `walctl sync` copies the file later.
//
// walfetch tries the repositories in order and restores the first verified
// copy.  It answers "missing" only when every repository positively lacks
// the file (storage.h); when none has a copy and any of them failed
// (unreachable, damaged object, wrong key, ...) it throws that failure, so
// recovery stops instead of ending early.  A failure followed by a copy from
// a later repository is a WARNING naming the failed repository.  When every
// repository lacks the file but one of them holds nothing at all of the
// cluster while another holds some of it (a wrong URL or prefix, a new
// repository not yet synced), that lack proves nothing: kNotARepository
// (walfetch 126).  Read-ahead follows the same rule.
//
// Both catch walstore::Error per repository: one repository's failure is
// what makes them try (or still push to) the next.
#pragma once

#include <walstore/archive.h>
#include <walstore/backup/repository.h>
#include <walstore/best_effort_record.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace walstore {

// The repositories of one Config, each opened on first use.
class RepositorySet {
 public:
  using Opener = std::function<std::unique_ptr<Storage>(const Config&)>;
  // `config` must outlive the set.  Throws kConfig when no repository is
  // configured.
  explicit RepositorySet(const Config& config, Opener open = OpenStorage);
  // One repository, already open: `config` with `storage` (both must
  // outlive the set).
  RepositorySet(const Config& config, Storage& storage);

  size_t size() const { return configs_.size(); }
  const Config& config(size_t index) const { return *configs_[index]; }
  // The settings that hold for all of them (read-ahead depth, system id).
  const Config& top() const { return top_; }
  // Whose reader settings a read-ahead spool records (SpoolOriginText): the
  // one repository's, or with several the top-level Config (all of them).
  const Config& spool_origin() const { return size() == 1 ? config(0) : top_; }
  // Opens repository `index` the first time; throws as OpenStorage does.
  // Thread-safe, as the Storage it returns (read-ahead fetches from two
  // threads through one set).
  Storage& storage(size_t index);
  std::string Label(size_t index) const { return RepositoryLabel(top_, index); }

 private:
  const Config& top_;
  std::vector<const Config*> configs_;
  std::vector<std::unique_ptr<Storage>> owned_;
  std::vector<Storage*> storages_;
  Opener open_;
  std::unique_ptr<std::mutex> open_mutex_ = std::make_unique<std::mutex>();  // storage()'s first open
  std::atomic<bool> warned_empty_{false};  // WarnIfLackingRepositoryEmpty: once per set
  friend void WarnIfLackingRepositoryEmpty(RepositorySet&, const std::vector<size_t>&,
                                           const ExpectedWal&, size_t);
};

// After repository `served_by` restored `expected` that the repositories
// `lacking` lacked: logs a WARNING for each of those that holds nothing at
// all of the cluster (a wrong URL or prefix, an empty new repository), so the
// misconfiguration shows during recovery and not only at its end.  At most
// once per set (one walfetch process); a probe that fails is logged at DEBUG.
// Never throws.
void WarnIfLackingRepositoryEmpty(RepositorySet& repositories, const std::vector<size_t>& lacking,
                                  const ExpectedWal& expected, size_t served_by);

// Restores the object `key` from the first repository that has a verified
// copy (RestoreObjectToFile, with `expected` as there).  Returns the index
// of that repository; nullopt when every repository positively lacks the
// key.  When none restored it and at least one failed, throws the first
// failure, its message naming the repository.
std::optional<size_t> RestoreFromRepositories(RepositorySet& repositories, const std::string& key,
                                              const std::string& dest_path,
                                              uint64_t* plaintext_size = nullptr,
                                              const ExpectedWal* expected = nullptr);

// walfetch %f %p over every repository (FetchWalFile's contract, with the
// rules above; FetchWalFile is this over one repository).  After a miss it
// asks each repository whether it holds WAL or a backup of the cluster
// (HoldsCluster: one or two requests each; quarantined objects do not count): with one repository only for the
// WARNING of cluster_presence.h (never changing the answer), with several
// for the rule above (a probe that fails throws).  Then, for a segment, the
// hole check (src/lib/archive/archive_gap.h, one ListObjectsAfter request
// per repository, more only past many .partial/.backup files): later WAL of
// the timeline stored over 10 minutes ago (or more than push-ahead can store
// ahead) throws kArchiveGap, unless ./pg_wal holds the segment or
// ./standby.signal exists (a WARNING, and kMissing); newer later WAL is a
// WARNING and kMissing.  `restored_from` (when given) is set to the repository's
// index; untouched for the read-ahead spool or a miss.
FetchResult FetchWalFileFromRepositories(RepositorySet& repositories, const std::string& name,
                                         const std::string& dest_path,
                                         size_t* restored_from = nullptr);

// walpush %p over every repository.  With one repository exactly
// PushWalFileWithPushAhead (push_ahead.h).  With several, the file goes to
// each in order, without push-ahead.  The result is the first durable
// repository's, its outcome kStored when any repository stored a new
// object.  Throws a conflict of any repository, else the first failure of
// a repository that is not best_effort (after trying all), naming it.
PushResult PushWalFileToRepositories(RepositorySet& repositories, const std::string& path,
                                     const std::vector<std::string>& worker_args);

// walctl sync (WAL only): copies every WAL archive object of cluster
// `system_id` that some repository has and another lacks.  For each
// repository, in order, and each WAL file it lacks: the first other
// repository whose copy verifies is decoded into `work_dir` (with that
// repository's settings), the WAL file is checked as walpush checks it and
// pushed under the destination's own settings and key, never overwriting
// (PushWalFile).  A source copy that does not verify is reported and the
// next source tried.  A repository whose listing failed is left out
// (RepositoryListing::errors; the overload that lists reports them as
// problems).
//
// Per-repository retention: into a repository that holds WAL, only WAL at or
// after the oldest WAL it holds (by position in the history, any timeline)
// is copied; what lies before was pruned there on purpose (walctl --repo N
// prune) and sync must not bring it back.  Timeline history files are always
// copied.  `all` copies everything regardless (a repository that should hold
// the whole history).  A repository without any WAL gets everything.  WAL
// that a backup SyncBackups will copy into the repository needs (its
// wal_start .. wal_stop) is copied whatever the horizon.
// What every repository holds of cluster `system_id`, listed once for a
// whole walctl sync (CheckHeldObjects, SyncWal and SyncBackups read it; the
// overloads without it list for themselves).  Never throws for one
// repository: see `errors`.
struct SyncProblem {
  size_t repository = 0;  // the destination
  std::string name;       // the WAL file
  std::string message;
  // A failure whichever repository it is in, best_effort or not: two
  // different valid objects or backups under one name (as for walpush),
  // whether the listing showed it or a copy met it, and every problem
  // CheckHeldObjects finds (damage does not heal by a later sync, unlike a
  // copy a best_effort repository missed).
  bool fails_always = false;
};
struct RepositoryListing {
  std::vector<std::vector<backup::WalObject>> wal;         // per repository: ListWal
  std::vector<std::vector<backup::BackupRecord>> backups;  // per repository: LoadBackups
  // Per repository: its WAL / backups could not be listed (unreachable, a
  // damaged backup.json, ...).  SyncWal / SyncBackups leave such a
  // repository out of that part (neither source nor destination) and go on
  // with the others; `errors` says why (`name` is "WAL" or "backups"), for
  // the caller to report (an ERROR, a WARNING for a best_effort one).
  std::vector<bool> wal_failed;
  std::vector<bool> backups_failed;
  std::vector<SyncProblem> errors;
};
// `wal` / `backups` false leaves that part empty.
RepositoryListing ListRepositories(RepositorySet& repositories, uint64_t system_id,
                                   bool wal = true, bool backups = true);

struct SyncReport {
  std::vector<size_t> copied;     // per repository: WAL files copied into it
  std::vector<size_t> listed;     // per repository: WAL files it held before
  // Per repository: the WAL file names it holds now (held before or copied;
  // with dry_run only those held before), for ClearBestEffortMisses.
  std::vector<std::set<std::string>> held_names;
  // Per repository: WAL files not copied because they are older than the
  // oldest WAL it holds (its retention horizon; see SyncWal).
  std::vector<size_t> below_horizon;
  std::vector<SyncProblem> problems;
};
SyncReport SyncWal(RepositorySet& repositories, uint64_t system_id, const std::string& work_dir,
                   bool dry_run, bool all = false);
SyncReport SyncWal(RepositorySet& repositories, const RepositoryListing& listing,
                   uint64_t system_id, const std::string& work_dir, bool dry_run, bool all);

// walctl sync (base backups): copies every complete backup (one with a
// record) of cluster `system_id` that some repository has and another lacks
// (backup::CopyBackup: decoded, verified, encoded with the destination's
// settings and key, read back, the record last).  Backups are taken oldest
// first, so a diff or incr follows its chain; one whose chain is not whole
// in the destination (ChainProblem) is refused and reported.  A label the
// destination holds for another backup (backup::SameBackup) is a conflict,
// reported; an identical one is left as it is.  So are two other
// repositories holding different backups under one label: a conflict for
// each destination that lacks it, nothing copied for that label.  A source
// copy that fails is reported and the next source holding the same backup
// tried.
//
// Per-repository retention as for WAL: into a repository that holds
// backups, a backup that started before its oldest one is not copied (it was
// pruned there) unless `all`.  `only_label` (non-empty) copies that backup
// only (walctl backup --repo all), whatever the horizon.  A backup is copied
// only into a repository that holds every WAL file it needs (RequiredWal),
// else a problem: a record there means "restorable from there".  A
// repository whose listing failed is left out (as for SyncWal).
struct BackupSyncReport {
  std::vector<size_t> listed;        // per repository: backups it held before
  std::vector<size_t> copied;        // per repository: backups copied into it
  std::vector<size_t> below_horizon; // per repository: older than its oldest backup
  std::vector<SyncProblem> problems; // `name` is the backup label
};
// walctl sync --verify / --repair: every object that two or more
// repositories hold (WAL archive objects, and the objects of a backup they
// hold alike) is decoded in each with that repository's settings and keys.
// A backup object must decode to what its record names; a WAL object to the
// same plaintext in every repository that holds it intact.  Reads everything.
//   - a damaged copy (backup::IsDamage: does not decode, missing, misplaced,
//     not what the record names) while another repository's copy is intact:
//     a problem; with `repair` it is replaced by a copy of the intact one
//     (backup::ReplaceDamagedObject: staged and verified first, the damaged
//     bytes moved aside under "<system-id>/damaged/<stamp>/", put back if
//     publishing fails);
//   - a copy that could not be checked (wrong key, unsupported format,
//     unauthenticated, any read failure): a "could not check" problem, never
//     repaired, and it counts neither as intact nor as damaged;
//   - damaged in every repository that holds it: a problem, nothing touched;
//   - intact everywhere but different plaintext (two valid objects under one
//     name): a conflict, reported, nothing touched.
// A copy that is intact but may not leave its repository (an unencrypted
// object in a repository with a key, backup::StoredDigest::may_leave) is no
// repair source.  A WAL object is repaired the way SyncWal copies one:
// restored from the source with walfetch's checks (cluster, file name, WAL
// page header) through `work_dir`, then encoded for the destination.
// `stamp` names the quarantine directory (a UTC time).
struct HeldCheckReport {
  std::vector<size_t> checked;        // per repository: objects decoded
  std::vector<size_t> repaired;       // per repository: objects replaced
  std::vector<SyncProblem> moved_aside;  // per object moved: `message` is the new key
  std::vector<SyncProblem> problems;  // `name` is the object's key
};
HeldCheckReport CheckHeldObjects(RepositorySet& repositories, const RepositoryListing& listing,
                                 uint64_t system_id, bool repair, const std::string& stamp,
                                 const std::string& work_dir);

// walctl sync's one WARNING per run about confidentiality: when objects
// were copied (`copied_into`: per repository, WAL files and backups) into a
// repository without a key while another repository has one, what was
// encrypted there is now stored unencrypted (each repository keeps its own
// settings, as for walpush).  The WARNING's text naming those
// repositories; "" when there are none.
std::string UnencryptedCopiesWarning(RepositorySet& repositories,
                                     const std::vector<size_t>& copied_into);

BackupSyncReport SyncBackups(RepositorySet& repositories, uint64_t system_id, bool dry_run,
                             bool all = false, const std::string& only_label = {});
BackupSyncReport SyncBackups(RepositorySet& repositories, const RepositoryListing& listing,
                             uint64_t system_id, bool dry_run, bool all,
                             const std::string& only_label = {});

}  // namespace walstore
