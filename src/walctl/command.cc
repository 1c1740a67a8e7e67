#include "command.h"

#include <walstore/backup/repository.h>
#include <walstore/error.h>
#include <walstore/log.h>

namespace walstore::walctl {

Config LoadCommandConfig(const CommonOptions& common) {
  return LoadProgramConfig(common.overrides, ProcessEnvironment());
}

Repository OpenRepository(const CommonOptions& common, bool need_system_id) {
  return OpenRepository(LoadCommandConfig(common), common, need_system_id);
}

Repository OpenRepository(Config loaded, const CommonOptions& common, bool need_system_id) {
  Repository repo;
  repo.config = std::move(loaded);
  if (repo.config.repositories.size() > 1) {
    std::string choices;
    for (size_t i = 0; i < repo.config.repositories.size(); ++i) {
      choices += fmt::format("{}--repo {} for {}", i == 0 ? "" : ", ", i + 1,
                             repo.config.repositories[i].repo_url);
    }
    throw Error(ErrorCode::kConfig,
                fmt::format("{} repositories are configured: this command works on one",
                            repo.config.repositories.size()),
                "choose it with " + choices);
  }
  if (repo.config.repositories.empty()) {
    throw Error(ErrorCode::kConfig, "no repository configured",
                "set repository (or [[repository]] tables) in the config file, WALSTORE_REPO "
                "or --repo");
  }
  const Config chosen = repo.config.repositories[0];  // its own settings (a [[repository]])
  repo.config = chosen;
  repo.storage = OpenStorage(repo.config);
  if (need_system_id) {
    repo.system_id = backup::DiscoverSystemId(*repo.storage, repo.config, common.pgdata);
  }
  return repo;
}

size_t ReportSyncProblems(RepositorySet& repositories, const std::vector<SyncProblem>& problems) {
  size_t failing = 0;
  for (const auto& problem : problems) {
    const bool tolerated =
        repositories.config(problem.repository).best_effort && !problem.fails_always;
    Log(tolerated ? LogLevel::kWarning : LogLevel::kError, "{}{}: {}: {}",
        repositories.Label(problem.repository), tolerated ? " (best_effort)" : "", problem.name,
        problem.message);
    if (!tolerated) ++failing;
  }
  return failing;
}

int CheckFailedExit() { return InfoFor(ErrorCode::kVerifyFailed).exit_code; }

}  // namespace walstore::walctl
