// Output pieces several walctl commands share; each command formats its own
// report (text, JSON, Prometheus) in its cmd_<name>.cc.
#pragma once

#include <walstore/backup/repository.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace walstore::walctl {

// `j` indented, on stdout.
void PrintJson(const nlohmann::json& j);

// Seconds since the epoch as "2026-11-21T11:20:14Z".
std::string UtcText(double seconds);
// The same as JSON, null when absent.
nlohmann::json UtcJson(const std::optional<double>& seconds);

// A backup for list, show and backup --json: its record, its duration and
// the earliest point a PITR from it reaches.
nlohmann::json BackupSummaryJson(const backup::BackupRecord& record);

}  // namespace walstore::walctl
