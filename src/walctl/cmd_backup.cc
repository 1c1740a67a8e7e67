// walctl backup: take a base backup of a running cluster into the repository.
#include <walstore/backup/base_backup.h>
#include <walstore/backup/copy.h>
#include <walstore/backup/repository.h>
#include <walstore/backup/util.h>
#include <walstore/cli.h>
#include <walstore/log.h>
#include <walstore/repositories.h>

#include <algorithm>
#include <optional>
#include <set>

#include "command.h"
#include "output.h"
#include "progress_display.h"

namespace walstore::walctl {

namespace {

struct BackupCommandOptions {
  backup::BackupOptions backup;
  std::string checkpoint = "fast";
  ProgressChoice progress;
  bool json = false;
  std::string type = "full";
};

// --repo all: the backup goes to the first repository and is then copied
// to every other one (SyncBackups with its label: verified, re-encoded with
// each repository's own key, recorded only where its WAL is).  Returns the
// exit code: 0 only when every repository that is not best_effort holds a
// record of the same backup afterwards (checked, not inferred from the
// copy's report); a best-effort one that lacks it is a WARNING (walctl sync
// copies it later).  walpush archives to the repositories in order, so each
// is first given `wal_timeout` seconds to receive the backup's WAL.
int CopyToEveryRepository(RepositorySet& repositories, const backup::BackupRecord& record,
                          double wal_timeout) {
  for (size_t i = 1; i < repositories.size(); ++i) {
    try {
      backup::WaitForWal(repositories.storage(i), record.system_id, backup::RequiredWal(record),
                         wal_timeout);
    } catch (const Error&) {
      // Unreachable: SyncBackups reports it for this repository.
    }
  }
  const BackupSyncReport report =
      SyncBackups(repositories, record.system_id, /*dry_run=*/false, /*all=*/false, record.label);
  std::vector<SyncProblem> problems = report.problems;
  std::set<size_t> reported;
  for (const auto& problem : report.problems) reported.insert(problem.repository);
  for (size_t i = 1; i < repositories.size(); ++i) {
    if (report.copied[i] > 0) {
      Log(LogLevel::kNotice, "backup {} copied to {}", record.label, repositories.Label(i));
    }
    if (reported.count(i) != 0 || repositories.config(i).best_effort) continue;
    try {
      const auto held =
          backup::LoadBackups(repositories.storage(i), repositories.config(i), record.system_id);
      if (std::none_of(held.begin(), held.end(), [&](const backup::BackupRecord& r) {
            return backup::SameBackup(r, record);
          })) {
        problems.push_back({i, record.label, "it holds no record of this backup after the copy"});
      }
    } catch (const Error& error) {
      problems.push_back({i, record.label,
                          fmt::format("its backups could not be listed: {} [{}]", error.what(),
                                      InfoFor(error.code()).name)});
    }
  }
  const bool failed = ReportSyncProblems(repositories, problems) > 0;
  if (!problems.empty()) {
    LogHint(fmt::format("backup {} is complete in {}; \"walctl sync\" copies it to the others "
                        "once the problem is fixed",
                        record.label, repositories.Label(0)));
  }
  return failed ? CheckFailedExit() : 0;
}

int RunBackupCommand(const CommonOptions& given, BackupCommandOptions& options) {
  options.backup.fast_checkpoint = options.checkpoint == "fast";
  options.backup.type = *backup::ParseBackupType(options.type);  // CLI checked it
  CommonOptions common = given;
  common.overrides.repo_all_allowed = true;  // --repo all / WALSTORE_REPO=all
  Config config = LoadCommandConfig(common);  // once: its WARNINGs are said once
  const bool to_all = config.every_repository;
  std::optional<Repositories> all;
  Repository repo;
  if (to_all) {
    all.emplace(std::move(config));
    repo.config = all->set.config(0);
  } else {
    repo = OpenRepository(std::move(config), common, /*need_system_id=*/false);
  }
  Storage& storage = to_all ? all->set.storage(0) : *repo.storage;
  options.backup.progress = MakeProgressDisplay("backup", options.progress, repo.config);
  storage.PrepareForWrites();
  backup::BackupRecord r = backup::RunBackup(storage, repo.config, options.backup);
  const int exit_code =
      to_all ? CopyToEveryRepository(all->set, r, options.backup.wal_timeout_seconds) : 0;
  if (options.json) {
    PrintJson(BackupSummaryJson(r));
  } else {
    Log(LogLevel::kNotice, "{} backup {} complete{}: {} (stored {}) in {}, WAL {} .. {}",
        backup::ToString(r.type), r.label,
        r.reference.empty() ? "" : " (reference " + r.reference + ")",
        backup::FormatBytes(r.logical_size()), backup::FormatBytes(r.stored_size()),
        backup::FormatDuration(r.stop_time - r.start_time), r.wal_start, r.wal_stop);
  }
  return exit_code;
}

}  // namespace

Command AddBackupCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<BackupCommandOptions>();
  backup::BackupOptions& b = options->backup;
  auto* cmd = walctl.add_subcommand(
      "backup", "take a base backup of a running cluster (--repo all: into the first "
                "repository, then copied to every other one)");
  cmd->add_option("-d,--dbname", b.conninfo,
                  "libpq connection string or URI (else PGHOST, PGPORT, PGUSER...)");
  cmd->add_option("--primary", b.primary_conninfo,
                  "when -d reaches a standby: the primary's connection string, to switch its WAL "
                  "after the backup so the backup's last segment is archived at once");
  cmd->add_option("--label", b.label, "backup label (default: UTC time, 20261121T112014Z)");
  cmd->add_option("--type", options->type,
                  "full (default); diff: only what changed since the newest full backup; incr: "
                  "since the newest backup of any type")
      ->check(CLI::IsMember({"full", "diff", "incr"}));
  cmd->add_option("--checkpoint", options->checkpoint, "fast (default) or spread")
      ->check(CLI::IsMember({"fast", "spread"}));
  AddCompressionOption(*cmd, common.overrides);
  AddJobsOption(*cmd, common.overrides, /*old_name=*/true);
  cmd->add_option("--manifest-checksums", b.manifest_checksums, "CRC32C (default), SHA256, ...");
  cmd->add_option("--wal-timeout", b.wal_timeout_seconds,
                  "seconds to wait for the WAL range in the archive (300)");
  cmd->add_option("--max-rate", b.max_rate_kb, "limit the server's send rate (kB/s)");
  AddProgressOptions(*cmd, options->progress);
  cmd->add_flag("--json", options->json, "print the backup record as JSON");
  return {cmd, [&common, options] { return RunBackupCommand(common, *options); }};
}

}  // namespace walstore::walctl
