// Small helpers shared by the walctl commands: LSNs, UTC timestamps, sizes,
// quoting for shells and postgresql.conf, local directory utilities.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include <walstore/config.h>

namespace walstore::backup {

// "16/B374D848" <-> 0x16B374D848.  ParseLsn throws Error(kUsage) on bad text;
// TryParseLsn returns nullopt instead (LSNs read from a repository).
uint64_t ParseLsn(std::string_view text);
std::optional<uint64_t> TryParseLsn(std::string_view text);
std::string FormatLsn(uint64_t lsn);

// "2026-11-21T11:20:14Z", or `t` in UTC with another strftime format.
std::string FormatUtc(std::time_t t, const char* format = "%Y-%m-%dT%H:%M:%SZ");
// Parses the timestamps PostgreSQL accepts for recovery_target_time in the
// forms people use: "YYYY-MM-DD HH:MM:SS[.fff][Z|+HH|+HH:MM|-HHMM]" (a 'T'
// may replace the space; without a zone the time is local).  Returns
// seconds since the epoch (fraction kept); nullopt when not understood.
std::optional<double> ParseTimestamp(std::string_view text);

// "1.5 GiB".
std::string FormatBytes(uint64_t bytes);
// "1h02m", "3m20s", "12s".
std::string FormatDuration(double seconds);

// 'text' quoted for /bin/sh (single quotes, embedded ' as '\'').
std::string ShellQuote(std::string_view text);
// 'text' quoted for postgresql.conf (embedded ' doubled).
std::string ConfQuote(std::string_view text);

// True when `dir` does not exist or is an empty directory; false for a non-empty directory or
// anything else.  kLocalIo (naming it) when that cannot be told, e.g. an unreadable directory.
bool IsMissingOrEmptyDir(const std::string& dir);
// Whether `path` exists (following symlinks); kLocalIo when that cannot be told (a parent
// directory that may not be searched, ...).
bool PathExists(const std::string& path);
// `path` made absolute against the working directory; kLocalIo when that is gone.
std::string AbsolutePath(const std::string& path);
// The absolute path of a sibling program of the running executable, or of
// `name` found on $PATH; nullopt when neither exists.
std::optional<std::string> FindProgram(const std::string& name);

// walctl's worker threads (--jobs): WorkerThreads(config.parallel,
// kDefaultWalctlJobsCap).  With parallel = 0 it reads the CPU quota
// (UsableCpus): call it once per run and pass the count down
// (RestoreOptions::jobs, RunVerify's jobs, BackupOptions::threads).
int WalctlJobs(const Config& config);

// Seconds since the epoch, wall clock, with sub-second precision.
double NowSeconds();

}  // namespace walstore::backup
