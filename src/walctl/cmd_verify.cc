// walctl verify: check backups and WAL continuity (walstore/backup/verify.h);
// prints every problem as text or JSON and fails on any.
#include <walstore/backup/util.h>
#include <walstore/cli.h>
#include <walstore/backup/verify.h>

#include <fmt/format.h>
#include <cstdio>

#include "command.h"
#include "output.h"

namespace walstore::walctl {

namespace {

using nlohmann::json;

struct VerifyOptions {
  bool full = false;
  bool json = false;
};

json VerifyJson(const backup::VerifyReport& r) {
  json gaps = json::array();
  for (const auto& g : r.gaps) {
    gaps.push_back(
        {{"timeline", g.timeline}, {"first", g.first}, {"last", g.last}, {"count", g.count}});
  }
  json leftovers = json::array();
  for (const auto& l : r.leftovers) {
    leftovers.push_back({{"name", l.description}, {"size", l.size}, {"since", l.since}});
  }
  return {{"ok", r.ok()},
          {"problems", r.problems},
          {"leftovers", r.leftovers_unknown ? json(nullptr) : leftovers},
          {"gaps", gaps},
          {"objects_checked", r.objects_checked},
          {"bytes_decoded", r.bytes_decoded}};
}

void PrintVerifyText(const backup::VerifyReport& r, const backup::Inventory& inv, bool full) {
  using backup::FormatBytes;
  using backup::FormatUtc;
  for (const auto& p : r.problems) std::printf("PROBLEM: %s\n", p.c_str());
  for (const auto& l : r.leftovers) {
    std::printf("LEFTOVER: %s (%s, since %s): left by a writer that died; walctl prune "
                "removes it\n",
                l.description.c_str(), FormatBytes(l.size).c_str(), FormatUtc(l.since).c_str());
  }
  for (const auto& gap : r.gaps) {
    std::printf("GAP: timeline %u: %s .. %s (%llu segments missing)\n", gap.timeline,
                gap.first.c_str(), gap.last.c_str(), static_cast<unsigned long long>(gap.count));
  }
  std::printf("verify %s: %zu backups, %zu WAL objects, %llu objects checked%s\n",
              r.ok() ? "OK" : "FAILED", inv.backups.size(), inv.wal.size(),
              static_cast<unsigned long long>(r.objects_checked),
              full ? fmt::format(", {} decoded", FormatBytes(r.bytes_decoded)).c_str() : "");
}

int RunVerifyCommand(const CommonOptions& common, const VerifyOptions& options) {
  Repository repo = OpenRepository(common);
  backup::Inventory inv = backup::LoadInventory(*repo.storage, repo.config, repo.system_id);
  backup::VerifyReport r = backup::RunVerify(*repo.storage, repo.config, inv, options.full,
                                                backup::WalctlJobs(repo.config));
  if (options.json) {
    PrintJson(VerifyJson(r));
  } else {
    PrintVerifyText(r, inv, options.full);
  }
  return r.ok() ? 0 : CheckFailedExit();
}

}  // namespace

Command AddVerifyCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<VerifyOptions>();
  auto* cmd = walctl.add_subcommand(
      "verify", "check backups and WAL continuity; non-zero exit on any problem");
  cmd->add_flag("--full", options->full, "decode every object and check every checksum");
  cmd->add_flag("--json", options->json, "JSON output");
  AddJobsOption(*cmd, common.overrides);
  return {cmd, [&common, options] { return RunVerifyCommand(common, *options); }};
}

}  // namespace walstore::walctl
