#include "command.h"

#include <walstore/backup/repository.h>
#include <walstore/error.h>
#include <walstore/log.h>

namespace walstore::walctl {

Repository OpenRepository(const CommonOptions& common, bool need_system_id) {
  Repository repo;
  repo.config = LoadConfig(common.overrides, ProcessEnvironment());
  SetLogLevel(repo.config.log_level);
  if (repo.config.repo_url.empty()) {
    throw Error(ErrorCode::kConfig, "no repository configured",
                "set repository in the config file, WALSTORE_REPO or --repo");
  }
  repo.storage = OpenStorage(repo.config);
  if (need_system_id) {
    repo.system_id = backup::DiscoverSystemId(*repo.storage, repo.config, common.pgdata);
  }
  return repo;
}

int CheckFailedExit() { return InfoFor(ErrorCode::kVerifyFailed).exit_code; }

}  // namespace walstore::walctl
