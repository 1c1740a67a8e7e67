// Options walctl restore and walctl drill share: the recovery target, the
// tablespace map and how the restored cluster fetches its WAL.
#pragma once

#include <walstore/backup/restore.h>

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace walstore::walctl {

// Adds --target-*, --tablespace-map (into `tablespace_map`, checked by
// ApplyTablespaceMap after parsing), --owner, --walfetch, --restore-command.
void AddRestoreOptions(CLI::App& cmd, backup::RestoreOptions& options,
                       std::vector<std::string>& tablespace_map);

// "OLD=NEW" items into options.tablespace_map; throws Error(kUsage) for any
// other form.
void ApplyTablespaceMap(const std::vector<std::string>& items, backup::RestoreOptions& options);

}  // namespace walstore::walctl
