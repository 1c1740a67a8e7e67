// walctl prune: remove backups outside a retention policy and the WAL no
// kept backup needs (the plan: walstore/backup/retention.h; the removal:
// walstore/backup/prune.h).
#include <walstore/backup/prune.h>
#include <walstore/backup/util.h>

#include <fmt/ranges.h>

#include <cstdio>

#include "command.h"
#include "output.h"

namespace walstore::walctl {

namespace {

struct PruneOptions {
  backup::RetentionPolicy policy;
  bool dry_run = false;
  bool json = false;
};

// "full1 <- diff1 <- incr2" for a diff / incr: what restoring it reads.
std::string ChainText(const backup::Inventory& inv, const std::string& label) {
  for (const auto& b : inv.backups) {
    if (b.label != label) continue;
    std::string text = fmt::format("{} ({}", label, backup::ToString(b.type));
    if (!b.chain.empty()) text += fmt::format(", chain {} <- {}", fmt::join(b.chain, " <- "), label);
    return text + ")";
  }
  return label;
}

// label -> the labels restoring it reads, its full first and itself last.
nlohmann::json ChainsJson(const backup::Inventory& inv) {
  nlohmann::json chains = nlohmann::json::object();
  for (const auto& b : inv.backups) {
    std::vector<std::string> chain = b.chain;
    chain.push_back(b.label);
    chains[b.label] = chain;
  }
  return chains;
}

void PrintPruneJson(const backup::PruneResult& r, bool dry_run, const backup::Inventory& inv) {
  nlohmann::json wal = nlohmann::json::array();
  for (const auto& w : r.plan.remove_wal) wal.push_back(w.name.text);
  nlohmann::json leftovers = nlohmann::json::array();
  for (const auto& l : r.removed_leftovers) leftovers.push_back(l.description);
  if (r.leftovers_unknown) leftovers = nullptr;
  PrintJson({{"dry_run", dry_run},
             {"keep_backups", r.plan.keep_backups},
             {"remove_backups", r.plan.remove_backups},
             {"remove_wal", wal},
             {"remove_orphans", r.removed_orphans},
             {"remove_leftovers", leftovers},
             {"chains", ChainsJson(inv)}});
}

void PrintPruneText(const backup::PruneResult& r, bool dry_run, const backup::Inventory& inv) {
  const char* verb = dry_run ? "would remove" : "removed";
  for (const auto& l : r.plan.remove_backups) {
    std::printf("%s backup %s\n", verb, ChainText(inv, l).c_str());
  }
  for (const auto& l : r.removed_orphans) std::printf("%s interrupted backup %s\n", verb, l.c_str());
  if (!r.plan.remove_wal.empty()) {
    std::printf("%s %zu WAL files (%s .. %s)\n", verb, r.plan.remove_wal.size(),
                r.plan.remove_wal.front().name.text.c_str(),
                r.plan.remove_wal.back().name.text.c_str());
  }
  for (const auto& l : r.removed_leftovers) {
    std::printf("%s leftover %s (%s, since %s)\n", verb, l.description.c_str(),
                backup::FormatBytes(l.size).c_str(), backup::FormatUtc(l.since).c_str());
  }
  if (r.leftovers_unknown) {
    std::printf("could not list leftovers (incomplete uploads): the repository does not "
                "support it\n");
  }
  for (const auto& l : r.plan.keep_backups) {
    std::printf("%s backup %s\n", dry_run ? "would keep" : "kept", ChainText(inv, l).c_str());
  }
  std::printf("kept %zu backups\n", r.plan.keep_backups.size());
}

int RunPruneCommand(const CommonOptions& common, PruneOptions& options) {
  options.policy.now = backup::NowSeconds();
  Repository repo = OpenRepository(common);
  backup::Inventory inv = backup::LoadInventory(*repo.storage, repo.config, repo.system_id);
  backup::PruneResult r =
      backup::RunPrune(*repo.storage, repo.config, inv, options.policy, options.dry_run);
  if (options.json) {
    PrintPruneJson(r, options.dry_run, inv);
  } else {
    PrintPruneText(r, options.dry_run, inv);
  }
  return 0;
}

}  // namespace

Command AddPruneCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<PruneOptions>();
  auto* cmd = walctl.add_subcommand(
      "prune", "remove backups outside a retention policy and the WAL no kept backup needs");
  auto* keep_full = cmd->add_option("--keep-full", options->policy.keep_full,
                                    "keep the newest N complete full backups with their diffs and incrs");
  auto* keep_days =
      cmd->add_option("--keep-days", options->policy.keep_days,
                      "keep what a PITR to any point of the last D days needs");
  keep_full->excludes(keep_days);
  cmd->add_flag("--dry-run", options->dry_run, "only list what would be removed");
  cmd->add_flag("--json", options->json, "JSON output");
  return {cmd, [&common, options] { return RunPruneCommand(common, *options); }};
}

}  // namespace walstore::walctl
