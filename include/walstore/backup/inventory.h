// What one cluster's repository holds, for walctl list, show, verify, status
// and prune: its backup records and WAL objects, read once.
//
// Thread-safety: LoadInventory only reads through `storage`; an Inventory is
// a plain value.  Absence: a cluster with nothing stored yields an empty
// Inventory, not an error; an unreadable or forged record throws (see
// LoadBackups in repository.h).
#pragma once

#include <walstore/backup/continuity.h>
#include <walstore/backup/repository.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace walstore::backup {

// Everything walctl knows about one cluster's repository contents.
struct Inventory {
  uint64_t system_id = 0;
  std::vector<BackupRecord> backups;           // oldest first
  std::vector<WalObject> wal;                  // key order
  std::vector<WalObject> misplaced_wal;        // named like WAL, not where walfetch looks
  std::vector<TimelineSwitch> latest_history;  // of the newest timeline
  uint64_t segment_size = 0;                   // from the backups; 0 if none
};
Inventory LoadInventory(Storage& storage, const Config& config, uint64_t system_id);

// The earliest and latest points a PITR can reach: from the oldest complete
// backup's stop to the newest archived segment's modification time.  Both
// are nullopt without a complete backup.
struct PitrWindow {
  std::optional<double> earliest;
  std::optional<double> latest;
};
PitrWindow ComputePitrWindow(const Inventory& inventory);

// walctl verify reports, and walctl prune removes, what writers that died
// left in the repository (Storage::ListLeftovers) once it is this old: temp
// files of a file repository whose process is gone after a minute, any
// after a day; S3 multipart uploads after a day.
inline constexpr int64_t kLeftoverMinAgeSeconds = 24 * 3600;

}  // namespace walstore::backup
