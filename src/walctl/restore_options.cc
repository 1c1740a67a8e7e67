#include "restore_options.h"

#include <walstore/error.h>

namespace walstore::walctl {

namespace {

void AddTargetOptions(CLI::App& cmd, backup::RecoveryTarget& t) {
  cmd.add_option("--target-time", t.time, "recover to this time, e.g. '2026-11-21 11:20:14+00'");
  cmd.add_option("--target-xid", t.xid, "recover to this transaction id");
  cmd.add_option("--target-name", t.name, "recover to a restore point (pg_create_restore_point)");
  cmd.add_option("--target-lsn", t.lsn, "recover to this LSN");
  cmd.add_flag("--target-immediate", t.immediate, "stop as soon as the backup is consistent");
  cmd.add_option("--target-action", t.action,
                 "pause, promote (default) or shutdown at the target");
  cmd.add_option("--target-timeline", t.timeline,
                 "recovery_target_timeline (latest, current or a number)");
  cmd.add_flag("--target-exclusive", t.exclusive, "stop just before the target");
}

}  // namespace

void AddRestoreOptions(CLI::App& cmd, backup::RestoreOptions& r,
                       std::vector<std::string>& tablespace_map) {
  AddTargetOptions(cmd, r.target);
  cmd.add_option("--tablespace-map", tablespace_map,
                 "OLD=NEW: restore a tablespace elsewhere (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd.add_option("--owner", r.owner, "user to own the restored files when run as root");
  cmd.add_option("--walfetch", r.walfetch, "path of walfetch for restore_command");
  cmd.add_option("--restore-command", r.restore_command, "use this restore_command instead");
}

void ApplyTablespaceMap(const std::vector<std::string>& items, backup::RestoreOptions& r) {
  for (const auto& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      Fail(ErrorCode::kUsage, "--tablespace-map wants OLD=NEW, got '{}'", item);
    }
    r.tablespace_map[item.substr(0, eq)] = item.substr(eq + 1);
  }
}

}  // namespace walstore::walctl
