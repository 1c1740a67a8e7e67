// Retention planning for walctl prune: pure logic, no I/O.
//
// Given the backups, the WAL archive's objects and a policy, decide what to
// remove.  Rules:
//   - Policy keep_full N: keep the newest N complete full backups and every
//     complete diff and incr whose chain starts at one of them.  keep_days D:
//     keep every complete backup that stopped within D days, plus the newest
//     one before that, so any point of the last D days stays reachable.
//     The newest complete backup is always kept; with no complete backup
//     nothing is removed.
//   - Incomplete backups are removed when older than the oldest kept
//     backup; newer ones are kept (their WAL may still arrive).
//   - Chains: every backup of a kept diff's or incr's chain (its full, and
//     the diff / incrs between) is kept, whatever the policy says of it.
//   - WAL: timeline history files are always kept.  On timeline T, a
//     segment, .partial or .backup file is removed when its segment number is
//     below the start segment of the oldest kept backup on a timeline <= T
//     (or of any kept backup when none is), so the WAL every kept backup
//     needs to replay forward, on its timeline and every later one, stays.
// Execution order (prune.cc, RemovalOrder): every diff / incr before the
// backups of its chain, else newest first; each record first (so a
// backup is never half removed yet listed, and a listed backup's chain is
// never removed before it), then its objects, then WAL; an interruption at
// any point leaves every kept backup restorable.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <walstore/backup/repository.h>

namespace walstore::backup {

struct RetentionPolicy {
  std::optional<int> keep_full;
  std::optional<double> keep_days;
  double now = 0;  // seconds since the epoch
};

struct RetentionPlan {
  std::vector<std::string> keep_backups;    // labels, oldest first
  std::vector<std::string> remove_backups;  // labels, oldest first
  std::vector<WalObject> remove_wal;
  std::map<uint32_t, uint64_t> wal_threshold;  // timeline -> first segment number kept
};

// Throws Error(kUsage) unless exactly one policy is set with a sane value.
RetentionPlan PlanRetention(const std::vector<BackupRecord>& backups,
                            const std::vector<WalObject>& wal, const RetentionPolicy& policy);

// The labels `remove` in the order prune removes them: a backup only after
// every backup in `remove` whose chain holds it (by dependency, not by start
// time, which is the walctl host's clock and may be skewed); among those
// free to go, the newest first.
std::vector<std::string> RemovalOrder(const std::vector<BackupRecord>& backups,
                                      const std::vector<std::string>& remove);

}  // namespace walstore::backup
