// walctl status: archive and backup health (walstore/backup/status.h), as
// text, JSON or Prometheus metrics; with thresholds a check for cron and
// monitoring.
#include <walstore/backup/status.h>
#include <walstore/backup/repository.h>
#include <walstore/backup/util.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/repositories.h>

#include <fmt/format.h>
#include <functional>
#include <iostream>
#include <map>

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
            {"pitr_latest", UtcJson(s.pitr.latest)},
            {"quarantined_objects", s.quarantine.objects},
            {"quarantined_bytes", s.quarantine.bytes},
            {"oldest_quarantined_time", UtcJson(s.quarantine.oldest)}};
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

// One repository's status: `readable` false when it could not be read (then
// only walstore_up 0 and the problem are reported).
struct RepositoryStatus {
  backup::StatusReport report;
  std::string url;
  bool readable = true;
  std::optional<uint64_t> best_effort_misses;  // with --pgdata
};

// Every metric carries its repository; a metric's samples stay together
// under one HELP/TYPE, as the text format wants.
std::string StatusPrometheus(const std::vector<RepositoryStatus>& all) {
  std::string out;
  auto escape = [](std::string text) {
    std::string escaped;
    for (char c : text) {
      if (c == '\\' || c == '"') escaped += '\\';
      if (c == '\n') {
        escaped += "\\n";
        continue;
      }
      escaped += c;
    }
    return escaped;
  };
  using Value = std::function<std::optional<double>(const RepositoryStatus&)>;
  auto metric = [&](const char* name, const char* help, bool unreadable_too, const Value& value) {
    std::string samples;
    for (const auto& r : all) {
      if (!r.readable && !unreadable_too) continue;
      const auto v = value(r);
      if (!v) continue;
      samples += fmt::format("{}{{system_id=\"{}\",repository=\"{}\"}} {}\n", name,
                             r.report.system_id, escape(r.url), *v);
    }
    if (samples.empty()) return;
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name) + samples;
  };
  metric("walstore_up", "1 when no status check failed", true,
         [](const auto& r) { return r.report.problems.empty() ? 1.0 : 0.0; });
  metric("walstore_wal_objects", "WAL objects in the archive", false,
         [](const auto& r) { return static_cast<double>(r.report.wal_objects); });
  metric("walstore_archive_bytes", "bytes stored (WAL and backups)", false, [](const auto& r) {
    return static_cast<double>(r.report.wal_bytes + r.report.backup_bytes);
  });
  metric("walstore_backups", "backups in the repository", false,
         [](const auto& r) { return static_cast<double>(r.report.backups); });
  metric("walstore_complete_backups", "complete backups", false,
         [](const auto& r) { return static_cast<double>(r.report.complete_backups); });
  metric("walstore_newest_segment_age_seconds", "age of the newest archived segment", false,
         [](const auto& r) -> std::optional<double> {
           if (!r.report.newest_segment_time) return std::nullopt;
           return r.report.now - *r.report.newest_segment_time;
         });
  metric("walstore_newest_backup_age_seconds", "age of the newest complete backup", false,
         [](const auto& r) -> std::optional<double> {
           if (!r.report.newest_backup_time) return std::nullopt;
           return r.report.now - *r.report.newest_backup_time;
         });
  metric("walstore_pitr_window_seconds", "span a PITR can reach", false,
         [](const auto& r) -> std::optional<double> {
           if (!r.report.pitr.earliest || !r.report.pitr.latest) return std::nullopt;
           return *r.report.pitr.latest - *r.report.pitr.earliest;
         });
  metric("walstore_quarantined_objects",
         "objects walctl sync kept aside under <system-id>/damaged/ (inspect and remove)", false,
         [](const auto& r) { return static_cast<double>(r.report.quarantine.objects); });
  metric("walstore_quarantined_bytes", "bytes kept aside under <system-id>/damaged/", false,
         [](const auto& r) { return static_cast<double>(r.report.quarantine.bytes); });
  metric("walstore_oldest_quarantined_age_seconds",
         "age of the oldest object kept aside under <system-id>/damaged/", false,
         [](const auto& r) -> std::optional<double> {
           if (!r.report.quarantine.oldest) return std::nullopt;
           return r.report.now - *r.report.quarantine.oldest;
         });
  metric("walstore_archiver_failed_count", "pg_stat_archiver.failed_count", false,
         [](const auto& r) -> std::optional<double> {
           if (!r.report.archiver) return std::nullopt;
           return static_cast<double>(r.report.archiver->failed_count);
         });
  metric("walstore_best_effort_misses",
         "WAL files walpush recorded as not stored in this best-effort repository (pg_wal/" 
         ".walstore-best-effort; walctl sync -D clears them)", true,
         [](const auto& r) -> std::optional<double> {
           if (!r.best_effort_misses) return std::nullopt;
           return static_cast<double>(*r.best_effort_misses);
         });
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
  if (s.quarantine.objects > 0) {
    out += fmt::format("kept aside:      {} objects, {} in {}, oldest {}\n", s.quarantine.objects,
                       FormatBytes(s.quarantine.bytes), backup::QuarantinePrefix(s.system_id),
                       age(s.quarantine.oldest));
  }
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
  Repositories all_repositories(common);
  const Config& config = all_repositories.config;
  RepositorySet& repositories = all_repositories.set;
  std::optional<backup::ArchiverStats> archiver;
  if (!options.conninfo.empty() || options.connect) {
    archiver = backup::QueryArchiver(options.conninfo);
  }
  const std::map<std::string, BestEffortMisses> misses =
      common.pgdata.empty() ? std::map<std::string, BestEffortMisses>()
                            : ReadBestEffortMisses(common.pgdata + "/pg_wal");
  const double now = backup::NowSeconds();
  std::vector<RepositoryStatus> all;
  for (size_t i = 0; i < repositories.size(); ++i) {
    const Config& repo_config = repositories.config(i);
    RepositoryStatus r;
    r.url = repo_config.repo_url;
    try {
      Storage& storage = repositories.storage(i);
      const uint64_t system_id = backup::DiscoverSystemId(storage, repo_config, common.pgdata);
      const backup::Inventory inv = backup::LoadInventory(storage, repo_config, system_id);
      r.report = backup::BuildStatus(inv, storage.Describe(), archiver, options.thresholds, now,
                                     backup::ListQuarantine(storage, system_id));
    } catch (const Error& error) {
      if (repositories.size() == 1) throw;  // one repository: its error is the answer
      r.readable = false;
      r.report.repository = repositories.Label(i);
      r.report.system_id = config.system_id.value_or(0);
      r.report.now = now;
      r.report.problems.push_back(fmt::format("cannot read the repository: {} [{}]", error.what(),
                                              InfoFor(error.code()).name));
    }
    if (!common.pgdata.empty()) {
      const auto found = misses.find(r.url);
      r.best_effort_misses = found == misses.end() ? 0 : found->second.count;
      if (found != misses.end()) {
        const BestEffortMisses& m = found->second;
        r.report.problems.push_back(fmt::format(
            "{} WAL file(s) did not reach this best-effort repository (the last {} at {}: {}); "
            "run walctl sync -D {} once it answers",
            m.count, m.last_name, FormatUtc(m.last_time), m.last_error, common.pgdata));
      }
    }
    all.push_back(std::move(r));
  }
  bool ok = true;
  for (const auto& r : all) ok = ok && r.report.problems.empty();
  if (options.json) {
    if (all.size() == 1) {
      PrintJson(StatusJson(all[0].report));
    } else {
      json list = json::array();
      for (const auto& r : all) {
        json j = StatusJson(r.report);
        j["repository"] = r.url;
        j["readable"] = r.readable;
        list.push_back(j);
      }
      PrintJson({{"ok", ok}, {"repositories", list}});
    }
  } else if (options.prometheus) {
    std::cout << StatusPrometheus(all);
  } else {
    for (size_t i = 0; i < all.size(); ++i) {
      if (all.size() > 1) std::cout << (i == 0 ? "" : "\n") << repositories.Label(i) << ":\n";
      std::cout << StatusText(all[i].report);
    }
  }
  return ok ? 0 : CheckFailedExit();
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
