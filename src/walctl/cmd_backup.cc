// walctl backup: take a base backup of a running cluster into the repository.
#include <walstore/backup/base_backup.h>
#include <walstore/backup/util.h>
#include <walstore/cli.h>
#include <walstore/log.h>

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

int RunBackupCommand(const CommonOptions& common, BackupCommandOptions& options) {
  options.backup.fast_checkpoint = options.checkpoint == "fast";
  options.backup.type = *backup::ParseBackupType(options.type);  // CLI checked it
  Repository repo = OpenRepository(common, /*need_system_id=*/false);
  options.backup.progress = MakeProgressDisplay("backup", options.progress, repo.config);
  repo.storage->PrepareForWrites();
  backup::BackupRecord r = backup::RunBackup(*repo.storage, repo.config, options.backup);
  if (options.json) {
    PrintJson(BackupSummaryJson(r));
  } else {
    Log(LogLevel::kNotice, "{} backup {} complete{}: {} (stored {}) in {}, WAL {} .. {}",
        backup::ToString(r.type), r.label,
        r.reference.empty() ? "" : " (reference " + r.reference + ")",
        backup::FormatBytes(r.logical_size()), backup::FormatBytes(r.stored_size()),
        backup::FormatDuration(r.stop_time - r.start_time), r.wal_start, r.wal_stop);
  }
  return 0;
}

}  // namespace

Command AddBackupCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<BackupCommandOptions>();
  backup::BackupOptions& b = options->backup;
  auto* cmd = walctl.add_subcommand("backup", "take a base backup of a running cluster");
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
