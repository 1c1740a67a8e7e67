// walctl restore: a backup into an empty directory, set up for PITR.
#include <walstore/backup/restore.h>
#include <walstore/backup/util.h>
#include <walstore/cli.h>
#include <walstore/log.h>

#include "command.h"
#include "output.h"
#include "progress_display.h"
#include "restore_options.h"

namespace walstore::walctl {

namespace {

struct RestoreCommandOptions {
  backup::RestoreOptions restore;
  std::vector<std::string> tablespace_map;
  std::string archive_mode = "preserve";
  ProgressChoice progress;
  bool json = false;
};

int RunRestoreCommand(const CommonOptions& common, RestoreCommandOptions& options) {
  backup::RestoreOptions& restore = options.restore;
  ApplyTablespaceMap(options.tablespace_map, restore);
  restore.archive_off = options.archive_mode == "off";
  Repository repo = OpenRepository(common);
  restore.progress = MakeProgressDisplay("restore", options.progress, repo.config);
  backup::RestoreResult r = backup::RunRestore(*repo.storage, repo.config, repo.system_id, restore);
  if (options.json) {
    PrintJson({{"backup", r.backup.label},
               {"directory", restore.target_dir},
               {"files", r.files},
               {"bytes", r.bytes},
               {"delta", r.delta},
               {"bytes_written", r.bytes_written},
               {"seconds", r.seconds},
               {"restore_command", r.restore_command}});
  } else if (r.delta) {
    Log(LogLevel::kNotice,
        "updated data directory {} to backup {}: {} files, {} checked against the block map "
        "and the manifest, {} written, in {}",
        restore.target_dir, r.backup.label, r.files, backup::FormatBytes(r.bytes),
        backup::FormatBytes(r.bytes_written), backup::FormatDuration(r.seconds));
    Log(LogLevel::kNotice, "start it with: pg_ctl -D {} start", restore.target_dir);
  } else {
    Log(LogLevel::kNotice,
        "restored backup {} into {}: {} files, {} in {}, all checked against the manifest",
        r.backup.label, restore.target_dir, r.files, backup::FormatBytes(r.bytes),
        backup::FormatDuration(r.seconds));
    Log(LogLevel::kNotice, "start it with: pg_ctl -D {} start", restore.target_dir);
  }
  return 0;
}

}  // namespace

Command AddRestoreCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<RestoreCommandOptions>();
  auto* cmd = walctl.add_subcommand("restore", "restore a backup into an empty directory for PITR");
  cmd->add_option("backup", options->restore.backup, "backup label or 'latest'")->required();
  cmd->add_option("dir", options->restore.target_dir,
                  "new or empty directory (--delta: an existing data directory)")
      ->required();
  AddRestoreOptions(*cmd, options->restore, options->tablespace_map);
  cmd->add_option("--archive-mode", options->archive_mode,
                  "preserve (default) or off: archiving of the restored cluster")
      ->check(CLI::IsMember({"preserve", "off"}));
  AddJobsOption(*cmd, common.overrides);
  AddProgressOptions(*cmd, options->progress);
  cmd->add_flag("--delta", options->restore.delta,
                "update an existing data directory in place: write only what differs from the "
                "backup, remove what it does not hold");
  cmd->add_flag("--json", options->json, "print a JSON summary");
  return {cmd, [&common, options] { return RunRestoreCommand(common, *options); }};
}

}  // namespace walstore::walctl
