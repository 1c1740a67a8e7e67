// walctl status: archive and backup health of one cluster, optionally with
// pg_stat_archiver, checked against age thresholds (for cron and
// monitoring).  The report is a plain struct; src/walctl prints it as text,
// JSON or Prometheus metrics.
#pragma once

#include <walstore/backup/copy.h>
#include <walstore/backup/inventory.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace walstore::backup {

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
  std::string newest_segment;                 // "" when none
  std::optional<double> newest_segment_time;
  size_t backups = 0;
  size_t complete_backups = 0;
  std::string newest_backup;                  // "" when none
  std::optional<double> newest_backup_time;  // stop time of the newest complete backup
  PitrWindow pitr;
  std::optional<ArchiverStats> archiver;
  Quarantine quarantine;              // what sync kept aside (copy.h)
  std::vector<std::string> problems;  // threshold violations; empty = healthy
  double now = 0;
};

// Pure: no I/O.  `now` is seconds since the epoch.  Objects in the
// quarantine (ListQuarantine) are a problem: damage was found and something
// was kept aside for the operator to look at and remove.
StatusReport BuildStatus(const Inventory& inventory, const std::string& repository,
                         const std::optional<ArchiverStats>& archiver,
                         const StatusThresholds& thresholds, double now,
                         const Quarantine& quarantine = {});

// "archiving is failing: last failure <wal> at <time> (<n> failures)" when
// PostgreSQL's archiver failed since it last succeeded; nullopt otherwise.
std::optional<std::string> ArchiverFailure(const ArchiverStats& archiver);

// Reads pg_stat_archiver over a normal libpq connection (`conninfo` "" = the
// PG* environment).  Throws Error(kPostgres) when it cannot connect or query.
ArchiverStats QueryArchiver(const std::string& conninfo);

}  // namespace walstore::backup
