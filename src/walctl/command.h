// What every walctl subcommand shares.  Each subcommand lives in
// cmd_<name>.cc: Add<Name>Command declares its options on the walctl app
// and returns how to run it once the command line is parsed.
#pragma once

#include <walstore/config.h>
#include <walstore/repositories.h>
#include <walstore/storage.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace walstore::walctl {

// Options given before or after the subcommand name (walctl -v list, walctl
// list -v): the tools' common ones (walstore/cli.h) and -D/--pgdata.
struct CommonOptions {
  ConfigOverrides overrides;
  std::string pgdata;
};

// A repository opened for one command.
struct Repository {
  Config config;
  std::unique_ptr<Storage> storage;
  uint64_t system_id = 0;  // 0 when not asked for
};

// The configuration (common options over environment over file), with the
// log level set from it.
Config LoadCommandConfig(const CommonOptions& common);

// Every configured repository, for the commands that work on all of them
// (status, sync, backup --repo all).  Not copyable: `set` refers to `config`.
struct Repositories {
  explicit Repositories(const CommonOptions& common) : Repositories(LoadCommandConfig(common)) {}
  explicit Repositories(Config loaded) : config(std::move(loaded)), set(config) {}
  Repositories(const Repositories&) = delete;
  Repositories& operator=(const Repositories&) = delete;
  const Config config;
  RepositorySet set;
};

// Loads the configuration (LoadCommandConfig) and opens the repository; with `need_system_id` also finds
// the cluster (DiscoverSystemId).  Throws Error(kConfig) without a repository.
Repository OpenRepository(const CommonOptions& common, bool need_system_id = true);
// The same on a configuration already loaded (LoadCommandConfig, once per run).
Repository OpenRepository(Config loaded, const CommonOptions& common, bool need_system_id);

// The best_effort rule of walctl sync and walctl --repo all backup, in one
// place: each problem goes to stderr (PostgreSQL-log style, "<repository>:
// <object or label>: <what>"; stdout keeps the report): for a repository
// that is not best_effort an ERROR that fails the command, for a best_effort
// one a WARNING that does not (a later walctl sync copies what it lacks),
// except a conflict, which fails the command in any repository (as for
// walpush).  Returns how many fail the command.
size_t ReportSyncProblems(RepositorySet& repositories, const std::vector<SyncProblem>& problems);

struct Command {
  CLI::App* app = nullptr;    // the subcommand; parsed() says it was chosen
  std::function<int()> run;   // returns the exit code; throws walstore::Error
};

Command AddInitCommand(CLI::App& walctl, CommonOptions& common);
Command AddBackupCommand(CLI::App& walctl, CommonOptions& common);
Command AddRestoreCommand(CLI::App& walctl, CommonOptions& common);
Command AddListCommand(CLI::App& walctl, CommonOptions& common);
Command AddShowCommand(CLI::App& walctl, CommonOptions& common);
Command AddPruneCommand(CLI::App& walctl, CommonOptions& common);
Command AddVerifyCommand(CLI::App& walctl, CommonOptions& common);
Command AddStatusCommand(CLI::App& walctl, CommonOptions& common);
Command AddDrillCommand(CLI::App& walctl, CommonOptions& common);
Command AddSyncCommand(CLI::App& walctl, CommonOptions& common);

// The exit code of a failed check (verify, status thresholds, drill).
int CheckFailedExit();

}  // namespace walstore::walctl
