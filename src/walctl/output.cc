#include "output.h"

#include <walstore/backup/util.h>

#include <iostream>

namespace walstore::walctl {

using nlohmann::json;

void PrintJson(const json& j) { std::cout << j.dump(2) << std::endl; }

std::string UtcText(double seconds) {
  return backup::FormatUtc(static_cast<std::time_t>(seconds));
}

json UtcJson(const std::optional<double>& seconds) {
  return seconds ? json(UtcText(*seconds)) : json(nullptr);
}

json BackupSummaryJson(const backup::BackupRecord& b) {
  json j = backup::ToJson(b);
  j["duration_seconds"] = b.stop_time - b.start_time;
  j["pitr_earliest"] = UtcText(b.stop_time);
  j["pitr_earliest_lsn"] = backup::FormatLsn(b.stop_lsn);
  return j;
}

}  // namespace walstore::walctl
