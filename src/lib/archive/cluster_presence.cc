#include "archive/cluster_presence.h"

#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace walstore {

bool HoldsCluster(Storage& storage, uint64_t system_id) {
  // Not ArchivePrefix: what sync --repair moved aside (<system-id>/damaged/)
  // is nothing a restore can use.
  return storage.AnyBelow(WalPrefix(system_id)) || storage.AnyBelow(BackupPrefix(system_id));
}

void WarnClusterAbsent(Storage& storage, uint64_t system_id) {
  constexpr size_t kShown = 10;
  std::string held;
  try {
    std::vector<std::string> clusters;
    for (const std::string& name : storage.ListChildren("", 100)) {
      if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) {
        clusters.push_back(name);
      }
    }
    held = clusters.empty() ? "; it holds no cluster at all" : "; it holds clusters ";
    for (size_t i = 0; i < std::min(clusters.size(), kShown); ++i) {
      held += (i == 0 ? "" : ", ") + clusters[i];
    }
    if (clusters.size() > kShown) held += ", ...";
  } catch (const Error& error) {
    held = fmt::format(" (listing the clusters it holds failed: {})", error.what());
  }
  Log(LogLevel::kWarning,
      "{} holds no WAL and no backup of cluster {} (the system id walfetch looked for){}",
      storage.Describe(), system_id, held);
  if (GetLogLevel() >= LogLevel::kWarning) {
    LogHint(
        "a standby of a new primary starts from an empty archive, and then this is expected; "
        "otherwise check system_id / WALSTORE_SYSTEM_ID, the data directory's global/pg_control "
        "and the repository URL");
  }
}

void WarnIfClusterAbsent(Storage& storage, uint64_t system_id) {
  try {
    if (HoldsCluster(storage, system_id)) return;
  } catch (const Error& error) {
    Log(LogLevel::kDebug, "could not check whether {} holds cluster {}: {}", storage.Describe(),
        system_id, error.what());
    return;
  }
  WarnClusterAbsent(storage, system_id);
}

}  // namespace walstore
