#include <walstore/backup/prune.h>
#include <walstore/archive.h>
#include <walstore/log.h>

#include <algorithm>

namespace walstore::backup {

PruneResult RunPrune(Storage& storage, const Config& config, const Inventory& inv,
                     const RetentionPolicy& policy, bool dry_run) {
  (void)config;
  PruneResult result;
  result.plan = PlanRetention(inv.backups, inv.wal, policy);
  double oldest_kept = 0;
  for (const auto& b : inv.backups) {
    if (std::find(result.plan.keep_backups.begin(), result.plan.keep_backups.end(), b.label) !=
        result.plan.keep_backups.end()) {
      oldest_kept = b.start_time;
      break;
    }
  }
  for (const auto& label : OrphanLabels(storage, inv.system_id, inv.backups)) {
    bool old = true;
    storage.List(BackupDirKey(inv.system_id, label), [&](const ObjectInfo& info) {
      if (static_cast<double>(info.modified) >= oldest_kept || info.modified == 0) old = false;
    });
    if (old && oldest_kept > 0) result.removed_orphans.push_back(label);
  }
  auto leftovers = storage.ListLeftovers(kLeftoverMinAgeSeconds);
  result.leftovers_unknown = !leftovers;
  if (leftovers) result.removed_leftovers = std::move(*leftovers);
  if (dry_run) return result;
  std::erase_if(result.removed_leftovers, [&](const Leftover& l) {
    const bool removed = storage.RemoveLeftover(l);
    if (removed) Log(LogLevel::kInfo, "removed leftover {}", l.description);
    return !removed;
  });

  auto remove_dir = [&](const std::string& label) {
    std::vector<std::string> keys;
    storage.List(BackupDirKey(inv.system_id, label),
                 [&](const ObjectInfo& info) { keys.push_back(info.key); });
    storage.RemoveMany(keys);
  };
  // A diff or incr goes before the backups of its chain, so a backup still
  // listed after an interruption still has its whole chain.
  for (const std::string& label : RemovalOrder(inv.backups, result.plan.remove_backups)) {
    // The record first: from then on the backup is no longer listed or used.
    storage.Remove(BackupObjectKey(inv.system_id, label, kRecordName));
    remove_dir(label);
    Log(LogLevel::kInfo, "removed backup {}", label);
  }
  for (const auto& label : result.removed_orphans) remove_dir(label);
  std::vector<std::string> keys;
  for (const auto& w : result.plan.remove_wal) {
    keys.push_back(w.key);
    if (keys.size() == 1000) {
      storage.RemoveMany(keys);
      keys.clear();
    }
  }
  storage.RemoveMany(keys);
  return result;
}

}  // namespace walstore::backup
