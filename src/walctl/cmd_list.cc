// walctl list: the backups of a cluster and the PITR window, as a table or JSON.
#include <walstore/backup/inventory.h>
#include <walstore/backup/util.h>

#include <cstdio>

#include "command.h"
#include "output.h"

namespace walstore::walctl {

namespace {

void PrintBackupLine(const backup::BackupRecord& b) {
  std::printf("%-20s %-10s %-4s %-20s %10s %10s  %s .. %s%s\n", b.label.c_str(),
              b.complete ? "complete" : "incomplete", backup::ToString(b.type),
              UtcText(b.stop_time).c_str(), backup::FormatBytes(b.logical_size()).c_str(),
              backup::FormatBytes(b.stored_size()).c_str(), b.wal_start.c_str(),
              b.wal_stop.c_str(), b.reference.empty() ? "" : ("  <- " + b.reference).c_str());
}

int RunList(const CommonOptions& common, bool json) {
  Repository repo = OpenRepository(common);
  backup::Inventory inv = backup::LoadInventory(*repo.storage, repo.config, repo.system_id);
  backup::PitrWindow window = backup::ComputePitrWindow(inv);
  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& b : inv.backups) list.push_back(BackupSummaryJson(b));
    PrintJson({{"system_id", std::to_string(repo.system_id)},
               {"repository", repo.storage->Describe()},
               {"backups", list},
               {"pitr_earliest", UtcJson(window.earliest)},
               {"pitr_latest", UtcJson(window.latest)}});
    return 0;
  }
  std::printf("%-20s %-10s %-4s %-20s %10s %10s  %s\n", "LABEL", "STATUS", "TYPE",
              "STOPPED (UTC)", "SIZE", "STORED", "WAL RANGE  <- REFERENCE");
  for (const auto& b : inv.backups) PrintBackupLine(b);
  std::printf("PITR window: %s .. %s\n", window.earliest ? UtcText(*window.earliest).c_str() : "-",
              window.latest ? UtcText(*window.latest).c_str() : "-");
  return 0;
}

}  // namespace

Command AddListCommand(CLI::App& walctl, CommonOptions& common) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = walctl.add_subcommand("list", "list backups and the PITR window");
  cmd->add_flag("--json", *json, "JSON output");
  return {cmd, [&common, json] { return RunList(common, *json); }};
}

}  // namespace walstore::walctl
