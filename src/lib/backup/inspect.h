// walctl verify, status and prune: read-mostly operations over a cluster's
// backups and WAL archive.  Reports are plain structs; src/walctl prints them
// as text, JSON or Prometheus metrics.
#pragma once

#include <walstore/config.h>
#include <walstore/storage.h>

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backup/continuity.h"
#include "backup/repository.h"
#include "backup/retention.h"

namespace walstore::backup {

// Everything walctl knows about one cluster's repository contents.
struct Inventory {
  uint64_t system_id = 0;
  std::vector<BackupRecord> backups;           // oldest first
  std::vector<WalObject> wal;                  // key order
  std::vector<TimelineSwitch> latest_history;  // of the newest timeline
  uint64_t segment_size = 0;                   // from the backups; 0 if none
};
Inventory LoadInventory(Storage& storage, const Config& config, uint64_t system_id);

// The earliest and latest points a PITR can reach: from the oldest complete
// backup's stop to the newest archived segment's modification time.
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

struct VerifyReport {
  std::vector<std::string> problems;  // one line each
  // Reported, not problems: they hide nothing and cost only space.
  std::vector<Leftover> leftovers;
  bool leftovers_unknown = false;  // the backend cannot list them
  std::vector<WalGap> gaps;
  uint64_t objects_checked = 0;
  uint64_t bytes_decoded = 0;
  bool ok() const { return problems.empty() && gaps.empty(); }
};
nlohmann::json ToJson(const VerifyReport& report);

// Checks every backup object and WAL object header (and with `full` decodes
// every object, verifying its SHA-256 and, for backups, every file against
// the backup manifest), and WAL continuity from every backup.
VerifyReport RunVerify(Storage& storage, const Config& config, const Inventory& inventory,
                       bool full);

struct ArchiverStats {  // pg_stat_archiver
  uint64_t archived_count = 0;
  std::string last_archived_wal;
  std::optional<double> last_archived_time;
  uint64_t failed_count = 0;
  std::string last_failed_wal;
  std::optional<double> last_failed_time;
};

struct StatusThresholds {
  std::optional<double> max_archive_age;  // seconds
  std::optional<double> max_backup_age;   // seconds
};

struct StatusReport {
  std::string repository;
  uint64_t system_id = 0;
  uint64_t wal_objects = 0;
  uint64_t wal_bytes = 0;
  uint64_t backup_bytes = 0;
  std::string newest_segment;
  std::optional<double> newest_segment_time;
  size_t backups = 0;
  size_t complete_backups = 0;
  std::string newest_backup;
  std::optional<double> newest_backup_time;  // stop time of the newest complete backup
  PitrWindow pitr;
  std::optional<ArchiverStats> archiver;
  std::vector<std::string> problems;  // threshold violations
  double now = 0;
};
StatusReport BuildStatus(const Inventory& inventory, const std::string& repository,
                         const std::optional<ArchiverStats>& archiver,
                         const StatusThresholds& thresholds, double now);
nlohmann::json ToJson(const StatusReport& report);
std::string ToPrometheus(const StatusReport& report);
std::string ToText(const StatusReport& report);
// Reads pg_stat_archiver over a normal connection.
ArchiverStats QueryArchiver(const std::string& conninfo);

// Executes a retention plan in the safe order (see retention.h); with
// `dry_run` only returns it.  Also removes orphan objects of interrupted
// backups older than the oldest kept backup, and leftovers of writers that
// died (kLeftoverMinAgeSeconds).
struct PruneResult {
  RetentionPlan plan;
  std::vector<std::string> removed_orphans;
  std::vector<Leftover> removed_leftovers;  // see kLeftoverMinAgeSeconds
  bool leftovers_unknown = false;
};
PruneResult RunPrune(Storage& storage, const Config& config, const Inventory& inventory,
                     const RetentionPolicy& policy, bool dry_run);

// JSON summary of a backup for list/show: times, sizes, WAL range and the
// PITR points it allows.
nlohmann::json BackupSummaryJson(const BackupRecord& record);

}  // namespace walstore::backup
