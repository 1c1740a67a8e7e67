// walctl: base backups, PITR restore, listing, retention, verification,
// monitoring and restore drills over a walstore repository (docs/walctl.md).
// A thin front end: each subcommand's options, run and output are in
// cmd_<name>.cc; the work is in libwalstore (walstore/backup/*.h).
#include <walstore/cli.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <CLI/CLI.hpp>
#include <vector>

#include "command.h"

int main(int argc, char** argv) {
  using namespace walstore;
  using namespace walstore::walctl;
  return RunMain("walctl", /*for_fetch=*/false, [&]() -> int {
    CLI::App app{fmt::format(
        "walctl: base backups, point-in-time restore and archive management for walstore\n"
        "Exit status: 0 success; otherwise {}.",
        ExitCodeHelp(false))};
    app.require_subcommand(1);
    app.fallthrough();
    CommonOptions common;
    AddCommonOptions(app, common.overrides, /*with_compression=*/false);
    app.add_option("-D,--pgdata", common.pgdata,
                   "data directory whose pg_control names the cluster");
    const std::vector<Command> commands = {
        AddInitCommand(app, common),   AddBackupCommand(app, common),
        AddRestoreCommand(app, common), AddListCommand(app, common),
        AddShowCommand(app, common),   AddPruneCommand(app, common),
        AddVerifyCommand(app, common), AddStatusCommand(app, common),
        AddDrillCommand(app, common),  AddSyncCommand(app, common),
    };
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : InfoFor(ErrorCode::kUsage).exit_code;
    }
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    return InfoFor(ErrorCode::kUsage).exit_code;
  });
}
