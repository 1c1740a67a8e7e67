#include "archive/archive_gap.h"

#include <sys/stat.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>

namespace walstore {

std::optional<std::string> LaterSegmentOfTimeline(Storage& storage, uint64_t system_id,
                                                  const WalFileName& missing) {
  constexpr size_t kPage = 32;
  // The timeline's directories ("TTTTTTTTLLLLLLLL/") all start with its 8 digits.
  const std::string timeline_prefix = WalPrefix(system_id) + missing.text.substr(0, 8);
  std::string after = WalObjectKey(system_id, missing);
  for (;;) {
    const std::vector<std::string> keys = storage.ListKeysAfter(timeline_prefix, after, kPage);
    for (const std::string& key : keys) {
      const auto parsed = ParseWalFileName(key.substr(key.rfind('/') + 1));
      if (parsed && parsed->kind == WalFileKind::kSegment && parsed->timeline == missing.timeline &&
          parsed->text > missing.text) {
        return parsed->text;
      }
    }
    if (keys.size() < kPage) return std::nullopt;
    after = keys.back();
  }
}

void RefuseArchiveGap(RepositorySet& repositories, uint64_t system_id, const WalFileName& missing,
                      const std::string& data_dir) {
  if (missing.kind != WalFileKind::kSegment) return;
  struct stat st {};
  if (stat((data_dir + "/pg_wal/" + missing.text).c_str(), &st) == 0) return;
  for (size_t i = 0; i < repositories.size(); ++i) {
    std::optional<std::string> later;
    try {
      later = LaterSegmentOfTimeline(repositories.storage(i), system_id, missing);
    } catch (const Error& error) {
      if (repositories.size() == 1) {  // as for its cluster-presence probe: a diagnostic
        Log(LogLevel::kWarning, "could not check {} for later WAL than {}: {}",
            repositories.Label(i), missing.text, error.what());
        return;
      }
      throw Error(error.code(),
                  fmt::format("{} is in no repository, but whether {} holds later WAL of its "
                              "timeline is unknown: {}",
                              missing.text, repositories.Label(i), error.what()),
                  error.hint());
    }
    if (!later) continue;
    const std::string hole = fmt::format(
        "{} is in no repository, but {} holds {}, later WAL of the same timeline: the archive "
        "has a hole",
        missing.text, repositories.Label(i), *later);
    if (stat((data_dir + "/standby.signal").c_str(), &st) == 0) {
      Log(LogLevel::kWarning, "{}; this standby waits for {} (archived again or streamed)", hole,
          missing.text);
      return;
    }
    throw Error(ErrorCode::kArchiveGap,
                hole + ", and ending recovery there would silently drop every transaction "
                       "after it",
                fmt::format("put {} back into the repository (from another repository with "
                            "\"walctl sync\", or from the old primary's pg_wal), or copy it into "
                            "this data directory's pg_wal; to end recovery before the hole on "
                            "purpose, set recovery_target_lsn at or before the end of the "
                            "segment before it",
                            missing.text));
  }
}

}  // namespace walstore
