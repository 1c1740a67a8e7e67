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

// Adds the options every tool shares (--config, --repo, --key-file,
// --system-id, -q/--quiet, -v/--verbose; --compression when asked) and
// --version, writing into `overrides`.
void AddCommonOptions(CLI::App& app, ConfigOverrides& overrides, bool with_compression);

// Parses argv.  Returns nullopt to go on, or the exit code to return at once:
// 0 after --help / --version, the usage error's code otherwise (after printing
// the error and "try --help").
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv, bool for_fetch);

}  // namespace walstore
