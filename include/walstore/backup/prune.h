// walctl prune: executes a retention plan (retention.h) in the safe order:
// a diff or incr before its chain (RemovalOrder), else newest first, each one's
// record first (a backup is never half removed yet listed), then its
// objects, then WAL; an interruption at any point leaves every kept backup
// restorable, and every backup still listed with its whole chain.
//
// Thread-safety: runs on the calling thread; nothing else may write the
// cluster's backups meanwhile (a concurrent walctl backup's objects are not
// orphans only because they are newer than the oldest kept backup).
#pragma once

#include <walstore/backup/inventory.h>
#include <walstore/backup/retention.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <string>
#include <vector>

namespace walstore::backup {

struct PruneResult {
  RetentionPlan plan;
  std::vector<std::string> removed_orphans;  // labels of interrupted backups
  std::vector<Leftover> removed_leftovers;   // see kLeftoverMinAgeSeconds
  bool leftovers_unknown = false;            // the backend cannot list them
};

// Plans with `policy` (throws Error(kUsage) for a bad one) and, unless
// `dry_run`, removes what the plan says, orphan objects of interrupted
// backups older than the oldest kept backup, and leftovers of writers that
// died (kLeftoverMinAgeSeconds).  With `dry_run` only returns what it would
// remove.
PruneResult RunPrune(Storage& storage, const Config& config, const Inventory& inventory,
                     const RetentionPolicy& policy, bool dry_run);

}  // namespace walstore::backup
