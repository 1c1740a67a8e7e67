// walfetch: PostgreSQL restore_command.  restore_command = 'walfetch %f %p'
#include <walstore/archive.h>
#include <walstore/cli.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/prefetch.h>
#include <walstore/repositories.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>


using namespace walstore;

namespace {

// Starts the read-ahead worker for the segments after `name` (a segment just
// restored to `dest`), or moves a lingering one's window: this same program
// with the same options, plus --prefetch-worker and the segment size read
// from the restored file.
void StartWorker(int argc, char** argv, RepositorySet& repositories, uint64_t system_id,
                 const std::string& name, const std::string& dest) {
  const auto parsed = ParseWalFileName(name);
  if (!parsed || parsed->kind != WalFileKind::kSegment) return;
  const uint64_t segment_size = SegmentSizeOf(dest);
  if (segment_size == 0) return;
  std::vector<std::string> args(argv + 1, argv + argc);
  args.insert(args.begin(), {"--prefetch-worker", std::to_string(segment_size)});
  StartPrefetchWorker(repositories.spool_origin(), system_id, *parsed, dest, args);
}

}  // namespace

int main(int argc, char** argv) {
  // A signal (PostgreSQL's shutdown, promotion) leaves no temp file behind.
  InstallTempFileSignalCleanup();
  return RunMain("walfetch", true, [&] {
    CLI::App app{
        fmt::format(
            "walfetch: restore one WAL file from a walstore repository (PostgreSQL "
            "restore_command).\n"
            "  restore_command = 'walfetch %f %p'\n"
            "Verifies, decrypts and decompresses the object, then writes DEST atomically.\n"
            "Exit status: 0 restored; 1 only when the repository is positively there and "
            "positively lacks the file (PostgreSQL asks for files that do not exist, and ends "
            "recovery at the first one); {}: PostgreSQL then stops recovery rather than end it "
            "early and lose the rest of the WAL.",
            ExitCodeHelp(true)),
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
    app.add_option_function<int>(
           "--prefetch", [&](int n) { overrides.prefetch = n; },
           "segments to fetch ahead in the background after each restored segment "
           "(0 = off; overrides prefetch / WALSTORE_PREFETCH, default 8)")
        ->type_name("N");
    // Internal: how walfetch starts its own background prefetch worker.
    uint64_t worker_segment_size = 0;
    app.add_option("--prefetch-worker", worker_segment_size)->group("");
    if (auto code = ParseCommandLine(app, argc, argv, true)) return *code;

    const auto start = std::chrono::steady_clock::now();
    const Config config = LoadProgramConfig(overrides, ProcessEnvironment());
    RepositorySet repositories(config);
    if (worker_segment_size > 0) {
      RunPrefetchWorker(repositories, ResolveSystemId(config, "."), ParseWalFileNameOrThrow(name),
                        worker_segment_size, dest, kPrefetchLinger);
      return 0;
    }
    size_t restored_from = 0;
    const FetchResult result =
        FetchWalFileFromRepositories(repositories, name, dest, &restored_from);
    if (result.outcome == FetchOutcome::kRestored && config.prefetch > 0) {
      StartWorker(argc, argv, repositories, result.system_id, name, dest);  // no second pg_control read
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool restored = result.outcome == FetchOutcome::kRestored;
    if (restored) {
      Log(LogLevel::kInfo, "restored {} ({} bytes{}) from {} in {:.3f} s", name,
          result.plaintext_size, result.prefetched ? ", prefetched" : "",
          result.prefetched ? "the read-ahead spool" : repositories.Label(restored_from), seconds);
    } else {
      std::string where;
      for (size_t i = 0; i < repositories.size(); ++i) {
        where += (i == 0 ? "" : ", ") + repositories.Label(i);
      }
      Log(LogLevel::kInfo, "{} is not in {}", name, where);
    }
    if (json) {
      nlohmann::json out = {{"outcome", restored ? "restored" : "missing"},
                            {"name", name},
                            {"key", result.key},
                            {"size", result.plaintext_size},
                            {"prefetched", result.prefetched},
                            {"repository", restored && !result.prefetched
                                               ? nlohmann::json(repositories.config(restored_from).repo_url)
                                               : nlohmann::json(nullptr)},
                            {"seconds", seconds}};
      std::puts(out.dump().c_str());
    }
    return restored ? 0 : kFetchExitMissing;
  });
}
