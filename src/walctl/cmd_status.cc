// walctl status: archive and backup health (walstore/backup/status.h), as
// text, JSON or Prometheus metrics; with thresholds a check for cron and
// monitoring.
#include <walstore/backup/status.h>
#include <walstore/backup/util.h>

#include <fmt/format.h>
#include <iostream>

#include "command.h"
#include "output.h"

namespace walstore::walctl {

namespace {

using backup::FormatBytes;
using backup::FormatDuration;
using backup::FormatUtc;
using nlohmann::json;

struct StatusOptions {
  backup::StatusThresholds thresholds;
  bool prometheus = false;
  std::string conninfo;
  bool connect = false;
  bool json = false;
};

json StatusJson(const backup::StatusReport& s) {
  json j = {{"repository", s.repository},
            {"system_id", std::to_string(s.system_id)},
            {"ok", s.problems.empty()},
            {"problems", s.problems},
            {"wal_objects", s.wal_objects},
            {"wal_bytes", s.wal_bytes},
            {"backup_bytes", s.backup_bytes},
            {"archive_bytes", s.wal_bytes + s.backup_bytes},
            {"newest_segment", s.newest_segment.empty() ? json(nullptr) : json(s.newest_segment)},
            {"newest_segment_time", UtcJson(s.newest_segment_time)},
            {"newest_segment_age_seconds",
             s.newest_segment_time ? json(s.now - *s.newest_segment_time) : json(nullptr)},
            {"backups", s.backups},
            {"complete_backups", s.complete_backups},
            {"newest_backup", s.newest_backup.empty() ? json(nullptr) : json(s.newest_backup)},
            {"newest_backup_time", UtcJson(s.newest_backup_time)},
            {"newest_backup_age_seconds",
             s.newest_backup_time ? json(s.now - *s.newest_backup_time) : json(nullptr)},
            {"pitr_earliest", UtcJson(s.pitr.earliest)},
            {"pitr_latest", UtcJson(s.pitr.latest)}};
  if (s.archiver) {
    j["archiver"] = {{"archived_count", s.archiver->archived_count},
                     {"last_archived_wal", s.archiver->last_archived_wal},
                     {"last_archived_time", UtcJson(s.archiver->last_archived_time)},
                     {"failed_count", s.archiver->failed_count},
                     {"last_failed_wal", s.archiver->last_failed_wal},
                     {"last_failed_time", UtcJson(s.archiver->last_failed_time)}};
  }
  return j;
}

std::string StatusPrometheus(const backup::StatusReport& s) {
  std::string out;
  std::string labels = fmt::format("{{system_id=\"{}\"}}", s.system_id);
  auto metric = [&](const char* name, const char* help, double value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{}{} {}\n", name, help, name, name, labels,
                       value);
  };
  metric("walstore_up", "1 when no status check failed", s.problems.empty() ? 1 : 0);
  metric("walstore_wal_objects", "WAL objects in the archive", static_cast<double>(s.wal_objects));
  metric("walstore_archive_bytes", "bytes stored (WAL and backups)",
         static_cast<double>(s.wal_bytes + s.backup_bytes));
  metric("walstore_backups", "backups in the repository", static_cast<double>(s.backups));
  metric("walstore_complete_backups", "complete backups", static_cast<double>(s.complete_backups));
  if (s.newest_segment_time) {
    metric("walstore_newest_segment_age_seconds", "age of the newest archived segment",
           s.now - *s.newest_segment_time);
  }
  if (s.newest_backup_time) {
    metric("walstore_newest_backup_age_seconds", "age of the newest complete backup",
           s.now - *s.newest_backup_time);
  }
  if (s.pitr.earliest && s.pitr.latest) {
    metric("walstore_pitr_window_seconds", "span a PITR can reach",
           *s.pitr.latest - *s.pitr.earliest);
  }
  if (s.archiver) {
    metric("walstore_archiver_failed_count", "pg_stat_archiver.failed_count",
           static_cast<double>(s.archiver->failed_count));
  }
  return out;
}

std::string StatusText(const backup::StatusReport& s) {
  auto age = [&](const std::optional<double>& t) {
    return t ? fmt::format("{} ({} ago)", FormatUtc(static_cast<std::time_t>(*t)),
                           FormatDuration(s.now - *t))
             : std::string("-");
  };
  std::string out =
      fmt::format("repository:      {}\nsystem id:       {}\n", s.repository, s.system_id);
  out += fmt::format("newest segment:  {} {}\n", s.newest_segment.empty() ? "-" : s.newest_segment,
                     s.newest_segment.empty() ? "" : age(s.newest_segment_time));
  out += fmt::format("archive size:    {} (WAL {} in {} objects, backups {})\n",
                     FormatBytes(s.wal_bytes + s.backup_bytes), FormatBytes(s.wal_bytes),
                     s.wal_objects, FormatBytes(s.backup_bytes));
  out += fmt::format("backups:         {} ({} complete), newest {} {}\n", s.backups,
                     s.complete_backups, s.newest_backup.empty() ? "-" : s.newest_backup,
                     age(s.newest_backup_time));
  out += fmt::format("PITR window:     {} .. {}\n",
                     s.pitr.earliest ? FormatUtc(static_cast<std::time_t>(*s.pitr.earliest)) : "-",
                     s.pitr.latest ? FormatUtc(static_cast<std::time_t>(*s.pitr.latest)) : "-");
  if (s.archiver) {
    out += fmt::format("pg_stat_archiver: {} archived (last {}), {} failed (last {})\n",
                       s.archiver->archived_count, s.archiver->last_archived_wal,
                       s.archiver->failed_count,
                       s.archiver->last_failed_wal.empty() ? "-" : s.archiver->last_failed_wal);
  }
  for (const auto& p : s.problems) out += "PROBLEM: " + p + "\n";
  return out;
}

int RunStatusCommand(const CommonOptions& common, const StatusOptions& options) {
  Repository repo = OpenRepository(common);
  backup::Inventory inv = backup::LoadInventory(*repo.storage, repo.config, repo.system_id);
  std::optional<backup::ArchiverStats> archiver;
  if (!options.conninfo.empty() || options.connect) {
    archiver = backup::QueryArchiver(options.conninfo);
  }
  backup::StatusReport s = backup::BuildStatus(inv, repo.storage->Describe(), archiver,
                                               options.thresholds, backup::NowSeconds());
  if (options.json) {
    PrintJson(StatusJson(s));
  } else if (options.prometheus) {
    std::cout << StatusPrometheus(s);
  } else {
    std::cout << StatusText(s);
  }
  return s.problems.empty() ? 0 : CheckFailedExit();
}

}  // namespace

Command AddStatusCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<StatusOptions>();
  auto* cmd = walctl.add_subcommand(
      "status", "archive and backup health; with thresholds a check for cron/monitoring");
  cmd->add_flag("--json", options->json, "JSON output");
  cmd->add_flag("--prometheus", options->prometheus, "Prometheus text format");
  cmd->add_option("--max-archive-age", options->thresholds.max_archive_age,
                  "fail when the newest segment is older (seconds)");
  cmd->add_option("--max-backup-age", options->thresholds.max_backup_age,
                  "fail when the newest complete backup is older (seconds)");
  cmd->add_option("-d,--dbname", options->conninfo,
                  "also read pg_stat_archiver over this connection");
  cmd->add_flag("--connect", options->connect,
                "read pg_stat_archiver using PG* environment settings");
  return {cmd, [&common, options] { return RunStatusCommand(common, *options); }};
}

}  // namespace walstore::walctl
