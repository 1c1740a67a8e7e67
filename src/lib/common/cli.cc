#include <walstore/cli.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <exception>

namespace walstore {

int RunMain(const char* program, bool for_fetch, const std::function<int()>& body) {
  SetLogProgram(program);
  try {
    return body();
  } catch (const Error& error) {
    LogMessage(LogLevel::kError, error.what());
    LogHint(error.hint());
    const auto& info = InfoFor(error.code());
    return for_fetch ? info.fetch_exit : info.exit_code;
  } catch (const std::exception& error) {
    LogMessage(LogLevel::kError, fmt::format("internal error: {}", error.what()));
    const auto& info = InfoFor(ErrorCode::kInternal);
    return for_fetch ? info.fetch_exit : info.exit_code;
  }
}

void AddCommonOptions(CLI::App& app, ConfigOverrides& overrides, bool with_compression) {
  app.set_version_flag("--version", kVersionText);
  app.add_option_function<std::string>(
         "-c,--config", [&](const std::string& v) { overrides.config_path = v; },
         "config file (default: $WALSTORE_CONFIG, else /etc/walstore/walstore.toml)")
      ->type_name("FILE");
  app.add_option_function<std::string>(
         "--repo", [&](const std::string& v) { overrides.repo_url = v; },
         "repository URL: file:///path or s3://bucket/prefix (overrides WALSTORE_REPO)")
      ->type_name("URL");
  if (with_compression) AddCompressionOption(app, overrides);
  app.add_option_function<std::string>(
         "--key-file", [&](const std::string& v) { overrides.key_file = v; },
         "file holding the 64-hex-digit encryption key (mode 0600)")
      ->type_name("FILE");
  app.add_option_function<uint64_t>(
         "--system-id", [&](uint64_t v) { overrides.system_id = v; },
         "cluster system identifier (default: from the WAL or global/pg_control)")
      ->type_name("ID");
  auto* quiet = app.add_flag_callback(
      "-q,--quiet", [&] { overrides.log_level = LogLevel::kWarning; },
      "print errors and warnings only (log level warning)");
  app.add_flag_function(
         "-v,--verbose",
         [&](std::int64_t count) {
           overrides.log_level = count > 1 ? LogLevel::kDebug : LogLevel::kInfo;
         },
         "print what was done, with sizes and times (log level info); twice (-vv): also "
         "the configuration and each step (debug)")
      ->excludes(quiet);
}

void AddCompressionOption(CLI::App& command, ConfigOverrides& overrides) {
  command
      .add_option_function<std::string>(
          "--compression", [&](const std::string& v) { overrides.compression = v; },
          "none, lz4[:level] or zstd[:level] (overrides WALSTORE_COMPRESSION)")
      ->type_name("SPEC");
}

void AddJobsOption(CLI::App& command, ConfigOverrides& overrides, bool old_name) {
  command
      .add_option_function<int>(
          "-j,--jobs", [&](const int& v) { overrides.parallel = v; },
          fmt::format("worker threads compressing / encrypting and decrypting / decompressing "
                      "(1..{}; default: the parallel setting, else the usable cores, at most {})",
                      kMaxParallel, kDefaultWalctlJobsCap))
      ->check(CLI::Range(1, kMaxParallel))
      ->type_name("N");
  if (!old_name) return;
  // What --parallel accepted before --jobs existed: any number, 0 or less
  // meaning the default; above kMaxParallel it is lowered (with a warning).
  command
      .add_option_function<int>(
          "--parallel", [&](const int& v) { if (v > 0) overrides.parallel = v; },
          "earlier name of --jobs (0: the default)")
      ->type_name("N");
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv, bool for_fetch) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& error) {  // CLI11 reports --help and usage errors this way
    if (error.get_exit_code() == 0) return app.exit(error);
    LogMessage(LogLevel::kError, fmt::format("{} (try --help)", error.what()));
    const auto& info = InfoFor(ErrorCode::kUsage);
    return for_fetch ? info.fetch_exit : info.exit_code;
  }
}

}  // namespace walstore
