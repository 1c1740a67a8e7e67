// walctl init: create a new, empty repository.
#include <walstore/log.h>

#include "command.h"

namespace walstore::walctl {

Command AddInitCommand(CLI::App& walctl, CommonOptions& common) {
  auto parents = std::make_shared<bool>(false);
  auto* cmd = walctl.add_subcommand(
      "init", "create a new, empty repository (file://: its directory; s3://: checks the bucket)");
  cmd->add_flag("--parents", *parents,
                "also create missing parent directories (else they must exist)");
  return {cmd, [&common, parents] {
            Repository repo = OpenRepository(common, /*need_system_id=*/false);
            const std::string where = repo.storage->Describe();
            switch (repo.storage->Initialize(*parents)) {
              case InitResult::kCreated:
                Log(LogLevel::kNotice, "created the repository {}", where);
                break;
              case InitResult::kAlreadyRepository:
                Log(LogLevel::kNotice, "{} already is a walstore repository: nothing to do",
                    where);
                break;
              case InitResult::kNothingToCreate:
                Log(LogLevel::kNotice,
                    "{} answers: nothing to create (the bucket must exist already)", where);
                break;
            }
            return 0;
          }};
}

}  // namespace walstore::walctl
