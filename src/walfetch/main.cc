// walfetch: PostgreSQL restore_command.  restore_command = 'walfetch %f %p'
#include <walstore/archive.h>
#include <walstore/cli.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

using namespace walstore;

int main(int argc, char** argv) {
  return RunMain("walfetch", true, [&] {
    CLI::App app{
        "walfetch: restore one WAL file from a walstore repository (PostgreSQL "
        "restore_command).\n"
        "  restore_command = 'walfetch %f %p'\n"
        "Verifies, decrypts and decompresses the object, then writes DEST atomically.\n"
        "Exit status: 0 restored; 1 not in the repository (PostgreSQL asks for files that do not "
        "exist); 126 any other failure (damaged or undecryptable object, unreachable repository, "
        "bad configuration or usage): PostgreSQL then stops recovery rather than end it early "
        "and lose the rest of the WAL.",
        "walfetch"};
    ConfigOverrides overrides;
    std::string name;
    std::string dest;
    bool json = false;
    AddCommonOptions(app, overrides, false);
    app.add_option("name", name, "the WAL file name PostgreSQL asks for (%f)")
        ->required()
        ->type_name("NAME");
    app.add_option("dest", dest, "where to write it (%p, relative to the data directory)")
        ->required()
        ->type_name("DEST");
    app.add_flag("--json", json, "print the outcome as one JSON object on stdout");
    if (auto code = ParseCommandLine(app, argc, argv, true)) return *code;

    const auto start = std::chrono::steady_clock::now();
    const Config config = LoadConfig(overrides, ProcessEnvironment());
    SetLogLevel(config.log_level);
    Log(LogLevel::kDebug, "{}", config.Describe());
    auto storage = OpenStorage(config);
    const FetchResult result = FetchWalFile(*storage, config, name, dest);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool restored = result.outcome == FetchOutcome::kRestored;
    if (restored) {
      Log(LogLevel::kInfo, "restored {} ({} bytes) in {:.3f} s", name, result.plaintext_size,
          seconds);
    } else {
      Log(LogLevel::kInfo, "{} is not in {}", name, storage->Describe());
    }
    if (json) {
      nlohmann::json out = {{"outcome", restored ? "restored" : "missing"},
                            {"name", name},
                            {"key", result.key},
                            {"size", result.plaintext_size},
                            {"seconds", seconds}};
      std::puts(out.dump().c_str());
    }
    return restored ? 0 : kFetchExitMissing;
  });
}
