#include "archive/cluster_presence.h"

#include <walstore/archive.h>
#include <walstore/log.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace walstore {

void WarnIfClusterAbsent(Storage& storage, uint64_t system_id) {
  if (!storage.ListChildren(ArchivePrefix(system_id), 1).empty()) return;
  constexpr size_t kShown = 10;
  std::vector<std::string> clusters;
  for (const std::string& name : storage.ListChildren("", 100)) {
    if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) clusters.push_back(name);
  }
  std::string held = clusters.empty() ? "no cluster at all" : "clusters ";
  for (size_t i = 0; i < std::min(clusters.size(), kShown); ++i) {
    held += (i == 0 ? "" : ", ") + clusters[i];
  }
  if (clusters.size() > kShown) held += ", ...";
  Log(LogLevel::kWarning,
      "{} holds no WAL and no backup of cluster {} (the system id walfetch looked for); it holds "
      "{}",
      storage.Describe(), system_id, held);
  if (GetLogLevel() >= LogLevel::kWarning) {
    LogHint(
        "a standby of a new primary starts from an empty archive, and then this is expected; "
        "otherwise check system_id / WALSTORE_SYSTEM_ID, the data directory's global/pg_control "
        "and the repository URL");
  }
}

}  // namespace walstore
