// walctl: base backups, PITR restore, listing, retention, verification,
// monitoring and restore drills over a walstore repository (docs/walctl.md).
// A thin front end: the work is in src/lib/backup/.
#include <unistd.h>
#include <walstore/cli.h>
#include <walstore/config.h>
#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/storage.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/base_backup.h"
#include "backup/drill.h"
#include "backup/inspect.h"
#include "backup/restore.h"
#include "backup/util.h"

namespace {

using namespace walstore;
using namespace walstore::backup;
using nlohmann::json;

struct GlobalOptions {
  std::optional<std::string> config_path;
  std::string repo;
  std::string key_file;
  std::string compression;
  std::optional<uint64_t> system_id;
  std::string pgdata;
  int parallel = 0;
  bool quiet = false;
  int verbose = 0;
  bool json = false;
};

struct Context {
  Config config;
  std::unique_ptr<Storage> storage;
  uint64_t system_id = 0;
};

Context Open(const GlobalOptions& g, bool need_system_id = true) {
  Context ctx;
  ConfigOverrides overrides;
  overrides.config_path = g.config_path;
  if (!g.repo.empty()) overrides.repo_url = g.repo;
  if (!g.key_file.empty()) overrides.key_file = g.key_file;
  if (!g.compression.empty()) overrides.compression = g.compression;
  overrides.system_id = g.system_id;
  ctx.config = LoadConfig(overrides, ProcessEnvironment());
  if (g.parallel > 0) ctx.config.parallel = g.parallel;
  LogLevel level = g.quiet ? LogLevel::kWarning : ctx.config.log_level;
  if (g.verbose > 0) level = g.verbose > 1 ? LogLevel::kDebug : LogLevel::kInfo;
  SetLogLevel(level);
  if (ctx.config.repo_url.empty()) {
    throw Error(ErrorCode::kConfig, "no repository configured",
                "set repository in the config file, WALSTORE_REPO or --repo");
  }
  ctx.storage = OpenStorage(ctx.config);
  if (need_system_id) ctx.system_id = DiscoverSystemId(*ctx.storage, ctx.config, g.pgdata);
  return ctx;
}

void PrintJson(const json& j) { std::cout << j.dump(2) << std::endl; }

int VerifyFailedExit() { return InfoFor(ErrorCode::kVerifyFailed).exit_code; }

std::string Time(double t) { return FormatUtc(static_cast<std::time_t>(t)); }

void AddTargetOptions(CLI::App* cmd, RecoveryTarget& t) {
  cmd->add_option("--target-time", t.time, "recover to this time, e.g. '2026-11-21 11:20:14+00'");
  cmd->add_option("--target-xid", t.xid, "recover to this transaction id");
  cmd->add_option("--target-name", t.name, "recover to a restore point (pg_create_restore_point)");
  cmd->add_option("--target-lsn", t.lsn, "recover to this LSN");
  cmd->add_flag("--target-immediate", t.immediate, "stop as soon as the backup is consistent");
  cmd->add_option("--target-action", t.action,
                  "pause, promote (default) or shutdown at the target");
  cmd->add_option("--target-timeline", t.timeline,
                  "recovery_target_timeline (latest, current or a number)");
  cmd->add_flag("--target-exclusive", t.exclusive, "stop just before the target");
}

void AddRestoreOptions(CLI::App* cmd, RestoreOptions& r, std::vector<std::string>& tablespace_map) {
  AddTargetOptions(cmd, r.target);
  cmd->add_option("--tablespace-map", tablespace_map,
                  "OLD=NEW: restore a tablespace elsewhere (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--owner", r.owner, "user to own the restored files when run as root");
  cmd->add_option("--walfetch", r.walfetch, "path of walfetch for restore_command");
  cmd->add_option("--restore-command", r.restore_command, "use this restore_command instead");
}

void ApplyTablespaceMap(const std::vector<std::string>& items, RestoreOptions& r) {
  for (const auto& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      Fail(ErrorCode::kUsage, "--tablespace-map wants OLD=NEW, got '{}'", item);
    }
    r.tablespace_map[item.substr(0, eq)] = item.substr(eq + 1);
  }
}

void PrintBackupLine(const BackupRecord& b) {
  std::printf("%-20s %-10s %-20s %10s %10s  %s .. %s\n", b.label.c_str(),
              b.complete ? "complete" : "incomplete", Time(b.stop_time).c_str(),
              FormatBytes(b.size()).c_str(), FormatBytes(b.stored_size()).c_str(),
              b.wal_start.c_str(), b.wal_stop.c_str());
}

int CmdList(const GlobalOptions& g) {
  Context ctx = Open(g);
  Inventory inv = LoadInventory(*ctx.storage, ctx.config, ctx.system_id);
  PitrWindow window = ComputePitrWindow(inv);
  if (g.json) {
    json list = json::array();
    for (const auto& b : inv.backups) list.push_back(BackupSummaryJson(b));
    PrintJson({{"system_id", std::to_string(ctx.system_id)},
               {"repository", ctx.storage->Describe()},
               {"backups", list},
               {"pitr_earliest", window.earliest ? json(Time(*window.earliest)) : json(nullptr)},
               {"pitr_latest", window.latest ? json(Time(*window.latest)) : json(nullptr)}});
    return 0;
  }
  std::printf("%-20s %-10s %-20s %10s %10s  %s\n", "LABEL", "STATUS", "STOPPED (UTC)", "SIZE",
              "STORED", "WAL RANGE");
  for (const auto& b : inv.backups) PrintBackupLine(b);
  std::printf("PITR window: %s .. %s\n", window.earliest ? Time(*window.earliest).c_str() : "-",
              window.latest ? Time(*window.latest).c_str() : "-");
  return 0;
}

int CmdShow(const GlobalOptions& g, const std::string& which) {
  Context ctx = Open(g);
  Inventory inv = LoadInventory(*ctx.storage, ctx.config, ctx.system_id);
  const BackupRecord& b = SelectBackup(inv.backups, which);
  PitrWindow window = ComputePitrWindow(inv);
  json j = BackupSummaryJson(b);
  j["pitr_latest"] = window.latest ? json(Time(*window.latest)) : json(nullptr);
  if (g.json) {
    PrintJson(j);
    return 0;
  }
  std::printf("label:          %s (%s)\n", b.label.c_str(), b.complete ? "complete" : "incomplete");
  std::printf("system id:      %llu, PostgreSQL %d, segment size %s\n",
              static_cast<unsigned long long>(b.system_id), b.pg_version,
              FormatBytes(b.segment_size).c_str());
  std::printf("started:        %s at %s (timeline %u)\n", Time(b.start_time).c_str(),
              FormatLsn(b.start_lsn).c_str(), b.timeline);
  std::printf("stopped:        %s at %s (timeline %u), took %s\n", Time(b.stop_time).c_str(),
              FormatLsn(b.stop_lsn).c_str(), b.stop_timeline,
              FormatDuration(b.stop_time - b.start_time).c_str());
  std::printf("size:           %s, stored %s (%s%s)\n", FormatBytes(b.size()).c_str(),
              FormatBytes(b.stored_size()).c_str(), b.compression.c_str(),
              b.key_id.empty() ? "" : (", encrypted, key " + b.key_id).c_str());
  std::printf("WAL needed:     %s .. %s\n", b.wal_start.c_str(), b.wal_stop.c_str());
  std::printf("PITR reach:     %s .. %s\n", Time(b.stop_time).c_str(),
              window.latest ? Time(*window.latest).c_str() : "-");
  for (const auto& a : b.archives) {
    std::printf("archive:        %s %s%s\n", a.name.c_str(), FormatBytes(a.size).c_str(),
                a.tablespace_path.empty() ? "" : (" (" + a.tablespace_path + ")").c_str());
  }
  return 0;
}

int CmdInit(const GlobalOptions& g, bool parents) {
  Context ctx = Open(g, /*need_system_id=*/false);
  const std::string where = ctx.storage->Describe();
  switch (ctx.storage->Initialize(parents)) {
    case InitResult::kCreated:
      Log(LogLevel::kNotice, "created the repository {}", where);
      break;
    case InitResult::kAlreadyRepository:
      Log(LogLevel::kNotice, "{} already is a walstore repository: nothing to do", where);
      break;
    case InitResult::kNothingToCreate:
      Log(LogLevel::kNotice, "{} answers: nothing to create (the bucket must exist already)",
          where);
      break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return walstore::RunMain("walctl", /*for_fetch=*/false, [&]() -> int {
    SetLogProgram("walctl");
    CLI::App app{fmt::format(
        "walctl: base backups, point-in-time restore and archive management for walstore\n"
        "Exit status: 0 success; otherwise {}.",
        ExitCodeHelp(false))};
    app.require_subcommand(1);
    app.fallthrough();
    app.set_version_flag("--version", std::string(kVersionText));
    GlobalOptions g;
    app.add_option("-c,--config", g.config_path,
                   "config file (default $WALSTORE_CONFIG, /etc/walstore/walstore.toml)");
    app.add_option("--repo", g.repo, "repository URL, e.g. file:///var/lib/walstore");
    app.add_option("--key-file", g.key_file, "encryption key file (64 hex characters)");
    app.add_option("--system-id", g.system_id, "cluster system identifier (default: discovered)");
    app.add_option("-D,--pgdata", g.pgdata, "data directory whose pg_control names the cluster");
    app.add_flag("-q,--quiet", g.quiet, "only warnings and errors");
    app.add_flag("-v,--verbose", g.verbose, "more detail (twice for debug)");

    // init
    bool init_parents = false;
    auto* cmd_init = app.add_subcommand(
        "init", "create a new, empty repository (file://: its directory; s3://: checks the bucket)");
    cmd_init->add_flag("--parents", init_parents,
                       "also create missing parent directories (else they must exist)");

    // backup
    BackupOptions backup;
    std::string checkpoint = "fast";
    bool progress = false, no_progress = false;
    auto* cmd_backup = app.add_subcommand("backup", "take a base backup of a running cluster");
    cmd_backup->add_option("-d,--dbname", backup.conninfo,
                           "libpq connection string or URI (else PGHOST, PGPORT, PGUSER...)");
    cmd_backup->add_option("--label", backup.label,
                           "backup label (default: UTC time, 20261121T112014Z)");
    cmd_backup->add_option("--checkpoint", checkpoint, "fast (default) or spread")
        ->check(CLI::IsMember({"fast", "spread"}));
    cmd_backup->add_option("--compression", g.compression,
                           "lz4, zstd[:level] or none (default from config)");
    cmd_backup->add_option("--parallel", g.parallel, "compression threads (default: cores)");
    cmd_backup->add_option("--manifest-checksums", backup.manifest_checksums,
                           "CRC32C (default), SHA256, ...");
    cmd_backup->add_option("--wal-timeout", backup.wal_timeout_seconds,
                           "seconds to wait for the WAL range in the archive (300)");
    cmd_backup->add_option("--max-rate", backup.max_rate_kb, "limit the server's send rate (kB/s)");
    cmd_backup->add_flag("--progress", progress,
                         "show progress (default: when stderr is a terminal)");
    cmd_backup->add_flag("--no-progress", no_progress, "never show progress");
    cmd_backup->add_flag("--json", g.json, "print the backup record as JSON");

    // restore
    RestoreOptions restore;
    std::vector<std::string> tablespace_map;
    std::string archive_mode = "preserve";
    auto* cmd_restore =
        app.add_subcommand("restore", "restore a backup into an empty directory for PITR");
    cmd_restore->add_option("backup", restore.backup, "backup label or 'latest'")->required();
    cmd_restore->add_option("dir", restore.target_dir, "new or empty data directory")->required();
    AddRestoreOptions(cmd_restore, restore, tablespace_map);
    cmd_restore
        ->add_option("--archive-mode", archive_mode,
                     "preserve (default) or off: archiving of the restored cluster")
        ->check(CLI::IsMember({"preserve", "off"}));
    cmd_restore->add_flag("--progress", progress,
                          "show progress (default: when stderr is a terminal)");
    cmd_restore->add_flag("--no-progress", no_progress, "never show progress");
    cmd_restore->add_flag("--json", g.json, "print a JSON summary");

    // list / show
    auto* cmd_list = app.add_subcommand("list", "list backups and the PITR window");
    cmd_list->add_flag("--json", g.json, "JSON output");
    std::string show_which;
    auto* cmd_show = app.add_subcommand("show", "details of one backup");
    cmd_show->add_option("backup", show_which, "backup label or 'latest'")->required();
    cmd_show->add_flag("--json", g.json, "JSON output");

    // prune
    RetentionPolicy policy;
    bool dry_run = false;
    auto* cmd_prune = app.add_subcommand(
        "prune", "remove backups outside a retention policy and the WAL no kept backup needs");
    auto* keep_full = cmd_prune->add_option("--keep-full", policy.keep_full,
                                            "keep the newest N complete backups");
    auto* keep_days = cmd_prune->add_option(
        "--keep-days", policy.keep_days, "keep what a PITR to any point of the last D days needs");
    keep_full->excludes(keep_days);
    cmd_prune->add_flag("--dry-run", dry_run, "only list what would be removed");
    cmd_prune->add_flag("--json", g.json, "JSON output");

    // verify
    bool full = false;
    auto* cmd_verify = app.add_subcommand(
        "verify", "check backups and WAL continuity; non-zero exit on any problem");
    cmd_verify->add_flag("--full", full, "decode every object and check every checksum");
    cmd_verify->add_flag("--json", g.json, "JSON output");

    // status
    StatusThresholds thresholds;
    bool prometheus = false;
    std::string status_conninfo;
    bool status_connect = false;
    auto* cmd_status = app.add_subcommand(
        "status", "archive and backup health; with thresholds a check for cron/monitoring");
    cmd_status->add_flag("--json", g.json, "JSON output");
    cmd_status->add_flag("--prometheus", prometheus, "Prometheus text format");
    cmd_status->add_option("--max-archive-age", thresholds.max_archive_age,
                           "fail when the newest segment is older (seconds)");
    cmd_status->add_option("--max-backup-age", thresholds.max_backup_age,
                           "fail when the newest complete backup is older (seconds)");
    auto* status_d = cmd_status->add_option("-d,--dbname", status_conninfo,
                                            "also read pg_stat_archiver over this connection");
    cmd_status->add_flag("--connect", status_connect,
                         "read pg_stat_archiver using PG* environment settings");
    (void)status_d;

    // drill
    DrillOptions drill;
    std::vector<std::string> drill_tablespace_map;
    auto* cmd_drill = app.add_subcommand(
        "drill", "restore into a temp dir, start PostgreSQL, check it, report RTO/RPO, clean up");
    cmd_drill->add_option("backup", drill.restore.backup, "backup label or 'latest' (default)");
    AddRestoreOptions(cmd_drill, drill.restore, drill_tablespace_map);
    cmd_drill->add_option("--sql", drill.sql_file,
                          "SQL file to run after recovery (any error fails the drill)");
    cmd_drill->add_option("--database", drill.database, "database for --sql (postgres)");
    cmd_drill->add_option("--work-dir", drill.work_dir,
                          "where to create the temporary directory ($TMPDIR or /tmp)");
    cmd_drill->add_option("--pg-bin", drill.pg_bin,
                          "PostgreSQL bin directory (default /usr/lib/postgresql/<major>/bin)");
    cmd_drill->add_option("--timeout", drill.timeout_seconds,
                          "seconds for startup and recovery (3600)");
    cmd_drill->add_option("--max-rpo", drill.max_rpo_seconds,
                          "fail when the last replayed transaction is older (seconds)");
    cmd_drill->add_flag("--keep", drill.keep, "keep the temporary directory");
    cmd_drill->add_flag("--json", g.json, "JSON output");

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : InfoFor(ErrorCode::kUsage).exit_code;
    }
    bool show_progress = !no_progress && (progress || (isatty(STDERR_FILENO) && !g.quiet));

    if (cmd_init->parsed()) return CmdInit(g, init_parents);
    if (cmd_backup->parsed()) {
      backup.fast_checkpoint = checkpoint == "fast";
      backup.progress = show_progress;
      Context ctx = Open(g, /*need_system_id=*/false);
      ctx.storage->PrepareForWrites();
      BackupRecord r = RunBackup(*ctx.storage, ctx.config, backup);
      if (g.json) {
        PrintJson(BackupSummaryJson(r));
      } else {
        Log(LogLevel::kNotice, "backup {} complete: {} (stored {}) in {}, WAL {} .. {}", r.label,
            FormatBytes(r.size()), FormatBytes(r.stored_size()),
            FormatDuration(r.stop_time - r.start_time), r.wal_start, r.wal_stop);
      }
      return 0;
    }
    if (cmd_restore->parsed()) {
      ApplyTablespaceMap(tablespace_map, restore);
      restore.archive_off = archive_mode == "off";
      restore.progress = show_progress;
      Context ctx = Open(g);
      RestoreResult r = RunRestore(*ctx.storage, ctx.config, ctx.system_id, restore);
      if (g.json) {
        PrintJson({{"backup", r.backup.label},
                   {"directory", restore.target_dir},
                   {"files", r.files},
                   {"bytes", r.bytes},
                   {"seconds", r.seconds},
                   {"restore_command", r.restore_command}});
      } else {
        Log(LogLevel::kNotice,
            "restored backup {} into {}: {} files, {} in {}, all checked against the manifest",
            r.backup.label, restore.target_dir, r.files, FormatBytes(r.bytes),
            FormatDuration(r.seconds));
        Log(LogLevel::kNotice, "start it with: pg_ctl -D {} start", restore.target_dir);
      }
      return 0;
    }
    if (cmd_list->parsed()) return CmdList(g);
    if (cmd_show->parsed()) return CmdShow(g, show_which);
    if (cmd_prune->parsed()) {
      policy.now = NowSeconds();
      Context ctx = Open(g);
      Inventory inv = LoadInventory(*ctx.storage, ctx.config, ctx.system_id);
      PruneResult r = RunPrune(*ctx.storage, ctx.config, inv, policy, dry_run);
      if (g.json) {
        json wal = json::array();
        for (const auto& w : r.plan.remove_wal) wal.push_back(w.name.text);
        json leftovers = json::array();
        for (const auto& l : r.removed_leftovers) leftovers.push_back(l.description);
        if (r.leftovers_unknown) leftovers = nullptr;
        PrintJson({{"dry_run", dry_run},
                   {"keep_backups", r.plan.keep_backups},
                   {"remove_backups", r.plan.remove_backups},
                   {"remove_wal", wal},
                   {"remove_orphans", r.removed_orphans},
                   {"remove_leftovers", leftovers}});
        return 0;
      }
      const char* verb = dry_run ? "would remove" : "removed";
      for (const auto& l : r.plan.remove_backups) std::printf("%s backup %s\n", verb, l.c_str());
      for (const auto& l : r.removed_orphans)
        std::printf("%s interrupted backup %s\n", verb, l.c_str());
      if (!r.plan.remove_wal.empty()) {
        std::printf("%s %zu WAL files (%s .. %s)\n", verb, r.plan.remove_wal.size(),
                    r.plan.remove_wal.front().name.text.c_str(),
                    r.plan.remove_wal.back().name.text.c_str());
      }
      for (const auto& l : r.removed_leftovers) {
        std::printf("%s leftover %s (%s, since %s)\n", verb, l.description.c_str(),
                    FormatBytes(l.size).c_str(), FormatUtc(l.since).c_str());
      }
      if (r.leftovers_unknown) {
        std::printf("could not list leftovers (incomplete uploads): the repository does not "
                    "support it\n");
      }
      std::printf("kept %zu backups\n", r.plan.keep_backups.size());
      return 0;
    }
    if (cmd_verify->parsed()) {
      Context ctx = Open(g);
      Inventory inv = LoadInventory(*ctx.storage, ctx.config, ctx.system_id);
      VerifyReport r = RunVerify(*ctx.storage, ctx.config, inv, full);
      if (g.json) {
        PrintJson(ToJson(r));
      } else {
        for (const auto& p : r.problems) std::printf("PROBLEM: %s\n", p.c_str());
        for (const auto& l : r.leftovers) {
          std::printf("LEFTOVER: %s (%s, since %s): left by a writer that died; walctl prune "
                      "removes it\n",
                      l.description.c_str(), FormatBytes(l.size).c_str(),
                      FormatUtc(l.since).c_str());
        }
        for (const auto& gap : r.gaps) {
          std::printf("GAP: timeline %u: %s .. %s (%llu segments missing)\n", gap.timeline,
                      gap.first.c_str(), gap.last.c_str(),
                      static_cast<unsigned long long>(gap.count));
        }
        std::printf("verify %s: %zu backups, %zu WAL objects, %llu objects checked%s\n",
                    r.ok() ? "OK" : "FAILED", inv.backups.size(), inv.wal.size(),
                    static_cast<unsigned long long>(r.objects_checked),
                    full ? fmt::format(", {} decoded", FormatBytes(r.bytes_decoded)).c_str() : "");
      }
      return r.ok() ? 0 : VerifyFailedExit();
    }
    if (cmd_status->parsed()) {
      Context ctx = Open(g);
      Inventory inv = LoadInventory(*ctx.storage, ctx.config, ctx.system_id);
      std::optional<ArchiverStats> archiver;
      if (!status_conninfo.empty() || status_connect) archiver = QueryArchiver(status_conninfo);
      StatusReport s =
          BuildStatus(inv, ctx.storage->Describe(), archiver, thresholds, NowSeconds());
      if (g.json) {
        PrintJson(ToJson(s));
      } else if (prometheus) {
        std::cout << ToPrometheus(s);
      } else {
        std::cout << ToText(s);
      }
      return s.problems.empty() ? 0 : VerifyFailedExit();
    }
    if (cmd_drill->parsed()) {
      ApplyTablespaceMap(drill_tablespace_map, drill.restore);
      Context ctx = Open(g);
      DrillReport r = RunDrill(*ctx.storage, ctx.config, ctx.system_id, drill);
      if (g.json) {
        PrintJson(ToJson(r));
      } else {
        std::cout << ToText(r);
      }
      return r.ok ? 0 : VerifyFailedExit();
    }
    return InfoFor(ErrorCode::kUsage).exit_code;
  });
}
