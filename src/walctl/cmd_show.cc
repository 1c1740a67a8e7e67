// walctl show: the details of one backup, as text or JSON.
#include <walstore/backup/inventory.h>
#include <walstore/backup/util.h>

#include <fmt/ranges.h>

#include <cstdio>

#include "command.h"
#include "output.h"

namespace walstore::walctl {

namespace {

struct ShowOptions {
  std::string which;
  bool json = false;
};

int RunShow(const CommonOptions& common, const ShowOptions& options) {
  using backup::FormatBytes;
  Repository repo = OpenRepository(common);
  backup::Inventory inv = backup::LoadInventory(*repo.storage, repo.config, repo.system_id);
  const backup::BackupRecord& b = backup::SelectBackup(inv.backups, options.which);
  backup::PitrWindow window = backup::ComputePitrWindow(inv);
  nlohmann::json j = BackupSummaryJson(b);
  j["pitr_latest"] = UtcJson(window.latest);
  if (options.json) {
    PrintJson(j);
    return 0;
  }
  std::printf("label:          %s (%s)\n", b.label.c_str(), b.complete ? "complete" : "incomplete");
  std::printf("system id:      %llu, PostgreSQL %d, segment size %s\n",
              static_cast<unsigned long long>(b.system_id), b.pg_version,
              FormatBytes(b.segment_size).c_str());
  std::printf("started:        %s at %s (timeline %u)\n", UtcText(b.start_time).c_str(),
              backup::FormatLsn(b.start_lsn).c_str(), b.timeline);
  std::printf("stopped:        %s at %s (timeline %u), took %s\n", UtcText(b.stop_time).c_str(),
              backup::FormatLsn(b.stop_lsn).c_str(), b.stop_timeline,
              backup::FormatDuration(b.stop_time - b.start_time).c_str());
  std::printf("type:           %s%s\n", backup::ToString(b.type),
              b.chain.empty() ? ""
                              : (", chain " + fmt::format("{}", fmt::join(b.chain, " -> ")) +
                                 " -> " + b.label)
                                    .c_str());
  std::printf("size:           %s, stored %s (%s%s)\n", FormatBytes(b.logical_size()).c_str(),
              FormatBytes(b.stored_size()).c_str(), b.compression.c_str(),
              b.key_id.empty() ? "" : (", encrypted, key " + b.key_id).c_str());
  std::printf("WAL needed:     %s .. %s\n", b.wal_start.c_str(), b.wal_stop.c_str());
  std::printf("PITR reach:     %s .. %s\n", UtcText(b.stop_time).c_str(),
              window.latest ? UtcText(*window.latest).c_str() : "-");
  for (const auto& a : b.archives) {
    std::printf("archive:        %s %s%s\n", a.name.c_str(), FormatBytes(a.size).c_str(),
                a.tablespace_path.empty() ? "" : (" (" + a.tablespace_path + ")").c_str());
  }
  return 0;
}

}  // namespace

Command AddShowCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<ShowOptions>();
  auto* cmd = walctl.add_subcommand("show", "details of one backup");
  cmd->add_option("backup", options->which, "backup label or 'latest'")->required();
  cmd->add_flag("--json", options->json, "JSON output");
  return {cmd, [&common, options] { return RunShow(common, *options); }};
}

}  // namespace walstore::walctl
