// walctl drill: the automated restore test (walstore/backup/drill.h); prints
// the RTO/RPO report as text or JSON and fails when the drill failed.
#include <walstore/backup/drill.h>
#include <walstore/backup/util.h>

#include <fmt/format.h>
#include <iostream>

#include "command.h"
#include "output.h"
#include "restore_options.h"

namespace walstore::walctl {

namespace {

using backup::FormatDuration;
using backup::FormatUtc;
using nlohmann::json;

struct DrillCommandOptions {
  backup::DrillOptions drill;
  std::vector<std::string> tablespace_map;
  bool json = false;
};

json DrillJson(const backup::DrillReport& r) {
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  return {
      {"ok", r.ok},
      {"backup", r.backup},
      {"failure", r.failure},
      {"restore_seconds", r.restore_seconds},
      {"recovery_seconds", r.recovery_seconds},
      {"rto_seconds", r.rto_seconds},
      {"last_transaction_time",
       r.last_transaction_time ? json(FormatUtc(static_cast<std::time_t>(*r.last_transaction_time)))
                               : json(nullptr)},
      {"rpo_seconds", opt(r.rpo_seconds)},
      {"timeline", r.timeline},
      {"databases", r.databases},
      {"checks", r.checks},
      {"sql_output", r.sql_output},
      {"log_tail", r.log_tail}};
}

std::string DrillText(const backup::DrillReport& r) {
  std::string out = fmt::format("drill of backup {}: {}\n", r.backup, r.ok ? "PASSED" : "FAILED");
  if (!r.ok) out += "failure: " + r.failure + "\n";
  out += fmt::format("RTO {} (restore {}, recovery {})\n", FormatDuration(r.rto_seconds),
                     FormatDuration(r.restore_seconds), FormatDuration(r.recovery_seconds));
  if (r.last_transaction_time) {
    out += fmt::format("last replayed transaction {}, RPO {}\n",
                       FormatUtc(static_cast<std::time_t>(*r.last_transaction_time)),
                       FormatDuration(r.rpo_seconds.value_or(0)));
  }
  for (const auto& c : r.checks) out += "ok: " + c + "\n";
  if (!r.log_tail.empty()) out += "server log (tail):\n" + r.log_tail;
  return out;
}

int RunDrillCommand(const CommonOptions& common, DrillCommandOptions& options) {
  ApplyTablespaceMap(options.tablespace_map, options.drill.restore);
  Repository repo = OpenRepository(common);
  backup::DrillReport r =
      backup::RunDrill(*repo.storage, repo.config, repo.system_id, options.drill);
  if (options.json) {
    PrintJson(DrillJson(r));
  } else {
    std::cout << DrillText(r);
  }
  return r.ok ? 0 : CheckFailedExit();
}

}  // namespace

Command AddDrillCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<DrillCommandOptions>();
  backup::DrillOptions& drill = options->drill;
  auto* cmd = walctl.add_subcommand(
      "drill", "restore into a temp dir, start PostgreSQL, check it, report RTO/RPO, clean up");
  cmd->add_option("backup", drill.restore.backup, "backup label or 'latest' (default)");
  AddRestoreOptions(*cmd, drill.restore, options->tablespace_map);
  cmd->add_option("--sql", drill.sql_file,
                  "SQL file to run after recovery (any error fails the drill)");
  cmd->add_option("--database", drill.database, "database for --sql (postgres)");
  cmd->add_option("--work-dir", drill.work_dir,
                  "where to create the temporary directory ($TMPDIR or /tmp)");
  cmd->add_option("--pg-bin", drill.pg_bin,
                  "PostgreSQL bin directory (default /usr/lib/postgresql/<major>/bin)");
  cmd->add_option("--timeout", drill.timeout_seconds, "seconds for startup and recovery (3600)");
  cmd->add_option("--max-rpo", drill.max_rpo_seconds,
                  "fail when the last replayed transaction is older (seconds)");
  cmd->add_flag("--keep", drill.keep, "keep the temporary directory");
  cmd->add_flag("--json", options->json, "JSON output");
  return {cmd, [&common, options] { return RunDrillCommand(common, *options); }};
}

}  // namespace walstore::walctl
