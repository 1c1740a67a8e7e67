// Shared pieces of the command-line tools' main().
#pragma once

#include <walstore/config.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

namespace walstore {

inline constexpr const char* kVersionText = "walstore " WALSTORE_VERSION;

// Runs `body`, catching walstore::Error and std::exception: prints
// "<program>: ERROR:  message" (and a HINT line), and returns the exit code
// from the error table (exit_code, or fetch_exit when for_fetch).
int RunMain(const char* program, bool for_fetch, const std::function<int()>& body);

// Adds the options every tool (walpush, walfetch, walctl) shares and
// --version, writing into `overrides` while `app` parses (so `overrides` must
// outlive the parse):
//   -c/--config, --repo, --key-file, --system-id, --compression when
//   `with_compression` (walctl adds it to its backup command instead, with
//   AddCompressionOption);
//   -q/--quiet    log level "warning": errors and warnings only;
//   -v/--verbose  log level "info": what was done, with sizes and times;
//   -vv           log level "debug": also the configuration used and each step.
// -q and -v exclude each other.  Without either, the log_level setting
// (default "notice") applies.  One meaning in all three tools (docs/configuration.md).
void AddCommonOptions(CLI::App& app, ConfigOverrides& overrides, bool with_compression);

// Adds --compression (none, lz4[:level], zstd[:level]) to `command`.
void AddCompressionOption(CLI::App& command, ConfigOverrides& overrides);

// Adds -j/--jobs N (1..kMaxParallel; overrides the parallel setting) to
// `command`; `old_name`: also --parallel N, walctl backup's earlier name,
// which keeps its earlier range (any number; 0 or less: the default).
void AddJobsOption(CLI::App& command, ConfigOverrides& overrides, bool old_name = false);

// Makes SIGTERM, SIGINT and SIGHUP first unlink the temp files this
// process's atomic file writers have open (a published file is never
// touched), then take their default action (the process ends as before).
// Signals set to SIG_IGN stay ignored.  Call once, first thing in main();
// the handler is async-signal-safe.  (Implemented in src/lib/common/file_util.cc.)
void InstallTempFileSignalCleanup();

// Parses argv.  Returns nullopt to go on, or the exit code to return at once:
// 0 after --help / --version, the usage error's code otherwise (after printing
// the error and "try --help").
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv, bool for_fetch);

}  // namespace walstore
