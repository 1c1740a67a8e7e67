#include <walstore/backup/status.h>
#include <walstore/backup/util.h>
#include <walstore/number.h>

#include <fmt/format.h>

#include "backup/archiver_stats.h"
#include "backup/pg_connection.h"

namespace walstore::backup {

StatusReport BuildStatus(const Inventory& inv, const std::string& repository,
                         const std::optional<ArchiverStats>& archiver,
                         const StatusThresholds& thresholds, double now,
                         const Quarantine& quarantine) {
  StatusReport s;
  s.repository = repository;
  s.system_id = inv.system_id;
  s.now = now;
  s.archiver = archiver;
  for (const auto& w : inv.wal) {
    ++s.wal_objects;
    s.wal_bytes += w.size;
    if (w.name.kind == WalFileKind::kSegment && w.name.text > s.newest_segment) {
      // Segment names of one cluster sort by (timeline, log, segment).
      s.newest_segment = w.name.text;
      s.newest_segment_time = static_cast<double>(w.modified);
    }
  }
  s.backups = inv.backups.size();
  for (const auto& b : inv.backups) {
    s.backup_bytes += b.stored_size();
    if (b.complete) {
      ++s.complete_backups;
      s.newest_backup = b.label;
      s.newest_backup_time = b.stop_time;
    }
  }
  s.pitr = ComputePitrWindow(inv);
  if (thresholds.max_archive_age) {
    if (!s.newest_segment_time) {
      s.problems.push_back("no WAL segment archived");
    } else if (now - *s.newest_segment_time > *thresholds.max_archive_age) {
      s.problems.push_back(fmt::format("newest archived segment {} is {} old (limit {})",
                                       s.newest_segment,
                                       FormatDuration(now - *s.newest_segment_time),
                                       FormatDuration(*thresholds.max_archive_age)));
    }
  }
  if (thresholds.max_backup_age) {
    if (!s.newest_backup_time) {
      s.problems.push_back("no complete backup");
    } else if (now - *s.newest_backup_time > *thresholds.max_backup_age) {
      s.problems.push_back(fmt::format("newest backup {} is {} old (limit {})", s.newest_backup,
                                       FormatDuration(now - *s.newest_backup_time),
                                       FormatDuration(*thresholds.max_backup_age)));
    }
  }
  if (archiver) {
    if (auto failing = ArchiverFailure(*archiver)) s.problems.push_back(*failing);
  }
  s.quarantine = quarantine;
  if (quarantine.objects > 0) {
    s.problems.push_back(fmt::format(
        "{} object(s) ({}) kept aside under {}{}: damage was found there; inspect and remove "
        "them (docs/operations.md, \"Objects kept aside\")",
        quarantine.objects, FormatBytes(quarantine.bytes), QuarantinePrefix(inv.system_id),
        quarantine.oldest
            ? ", the oldest since " + FormatUtc(static_cast<std::time_t>(*quarantine.oldest))
            : std::string()));
  }
  return s;
}

std::optional<std::string> ArchiverFailure(const ArchiverStats& a) {
  if (a.failed_count == 0 || a.last_failed_time.value_or(0) <= a.last_archived_time.value_or(0)) {
    return std::nullopt;
  }
  return fmt::format("archiving is failing: last failure {} at {} ({} failures)", a.last_failed_wal,
                     FormatUtc(static_cast<std::time_t>(*a.last_failed_time)), a.failed_count);
}

ArchiverStats ReadArchiverStats(PgConnection& conn) {
  auto rows = conn.Query(
      "SELECT archived_count, coalesce(last_archived_wal, ''), "
      "extract(epoch FROM last_archived_time), failed_count, coalesce(last_failed_wal, ''), "
      "extract(epoch FROM last_failed_time) FROM pg_stat_archiver");
  ArchiverStats a;
  if (rows.empty()) return a;
  const auto& r = rows[0];
  auto num = [](const std::optional<std::string>& v) -> std::optional<double> {
    if (!v) return std::nullopt;
    return ParseNumber<double>(*v, ErrorCode::kPostgres, "a time in pg_stat_archiver");
  };
  a.archived_count =
      ParseNumber<uint64_t>(r[0].value_or("0"), ErrorCode::kPostgres, "pg_stat_archiver's count");
  a.last_archived_wal = r[1].value_or("");
  a.last_archived_time = num(r[2]);
  a.failed_count =
      ParseNumber<uint64_t>(r[3].value_or("0"), ErrorCode::kPostgres, "pg_stat_archiver's count");
  a.last_failed_wal = r[4].value_or("");
  a.last_failed_time = num(r[5]);
  return a;
}

ArchiverStats QueryArchiver(const std::string& conninfo) {
  PgConnection conn(conninfo, /*replication=*/false);
  return ReadArchiverStats(conn);
}

}  // namespace walstore::backup
