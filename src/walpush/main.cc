// walpush: PostgreSQL archive_command.  archive_command = 'walpush %p'
#include <walstore/archive.h>
#include <walstore/cli.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/push_ahead.h>
#include <walstore/repositories.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>


using namespace walstore;

namespace {
const char* OutcomeName(PushOutcome outcome) {
  switch (outcome) {
    case PushOutcome::kStored: return "stored";
    case PushOutcome::kAlreadyArchived: return "already_archived";
    case PushOutcome::kPushedAhead: return "pushed_ahead";
  }
  return "stored";
}
}  // namespace

int main(int argc, char** argv) {
  // A signal (PostgreSQL's shutdown, promotion) leaves no temp file behind.
  InstallTempFileSignalCleanup();
  return RunMain("walpush", false, [&] {
    CLI::App app{
        fmt::format(
            "walpush: archive one WAL file into a walstore repository (PostgreSQL "
            "archive_command).\n"
            "  archive_command = 'walpush %p'\n"
            "Compresses, encrypts (AES-256-GCM when a key is configured) and checksums (SHA-256) "
            "the file, then publishes it atomically. An identical copy already archived is "
            "success; a different one is an error and is never overwritten.\n"
            "Exit status: 0 archived; on failure (PostgreSQL retries) {} (see walpush(1)).",
            ExitCodeHelp(false)),
        "walpush"};
    ConfigOverrides overrides;
    std::string path;
    bool json = false;
    AddCommonOptions(app, overrides, true);
    app.add_option("path", path, "the file to archive (%p, relative to the data directory)")
        ->required()
        ->type_name("PATH");
    app.add_flag("--json", json, "print the outcome as one JSON object on stdout");
    app.add_option_function<int>(
           "--push-ahead", [&](int n) { overrides.push_ahead = n; },
           "while PostgreSQL has a backlog of .ready segments, push up to N of them ahead in "
           "the background (0 = off; overrides push_ahead / WALSTORE_PUSH_AHEAD, default 8)")
        ->type_name("N");
    // Internal: how walpush starts its own background push-ahead worker.
    bool worker = false;
    app.add_flag("--push-ahead-worker", worker)->group("");
    if (auto code = ParseCommandLine(app, argc, argv, false)) return *code;

    const auto start = std::chrono::steady_clock::now();
    const Config config = LoadProgramConfig(overrides, ProcessEnvironment());
    RepositorySet repositories(config);
    if (worker) {  // only started with one repository (repositories.h)
      if (repositories.size() == 1) {
        RunPushAheadWorker(repositories.storage(0), repositories.config(0), path);
      }
      return 0;
    }
    // The worker is this program with the same options (argv[1..]), flagged.
    std::vector<std::string> worker_args(argv + 1, argv + argc);
    worker_args.insert(worker_args.begin(), "--push-ahead-worker");
    const PushResult result = PushWalFileToRepositories(repositories, path, worker_args);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (result.outcome == PushOutcome::kPushedAhead) {
      Log(LogLevel::kInfo, "archived {} ({} bytes, stored {} bytes) by push-ahead; checked in "
          "{:.3f} s", result.name.text, result.plaintext_size, result.stored_size, seconds);
    } else if (result.outcome == PushOutcome::kAlreadyArchived) {
      Log(LogLevel::kNotice, "{} was already archived with the same content (SHA-256 {})",
          result.name.text, ToHex(result.sha256));
    } else {
      Log(LogLevel::kInfo, "archived {} ({} bytes, stored {} bytes) in {:.3f} s", result.name.text,
          result.plaintext_size, result.stored_size, seconds);
    }
    if (json) {
      nlohmann::json out = {
          {"outcome", OutcomeName(result.outcome)},
          {"name", result.name.text},
          {"key", result.key},
          {"system_id", std::to_string(result.system_id)},
          {"size", result.plaintext_size},
          {"stored_size", result.stored_size},
          {"sha256", ToHex(result.sha256)},
          {"seconds", seconds}};
      std::puts(out.dump().c_str());
    }
    return 0;
  });
}
