#include "archive/archive_gap.h"

#include <sys/stat.h>
#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <ctime>
#include <tuple>

namespace walstore {

LaterWal FindLaterWal(Storage& storage, uint64_t system_id, const WalFileName& missing,
                      std::time_t now) {
  constexpr size_t kPage = 32;
  const auto position = [](const WalFileName& n) { return std::tie(n.log, n.segment); };
  // The timeline's directories ("TTTTTTTTLLLLLLLL/") all start with its 8 digits.
  const std::string timeline_prefix = WalPrefix(system_id) + missing.text.substr(0, 8);
  std::string after = WalObjectKey(system_id, missing);
  LaterWal later;
  size_t positions = 0;  // later segment positions seen, counted once each
  WalFileName last{};
  for (;;) {
    const std::vector<ObjectInfo> page = storage.ListObjectsAfter(timeline_prefix, after, kPage);
    for (const ObjectInfo& object : page) {
      const auto name = ParseWalFileName(object.key.substr(object.key.rfind('/') + 1));
      if (!name || name->kind == WalFileKind::kHistory || name->timeline != missing.timeline ||
          position(*name) <= position(missing)) {
        continue;  // the segment's own .partial or .backup proves nothing
      }
      if (positions == 0 || position(*name) != position(last)) ++positions;
      last = *name;
      if (!later.first) later.first = name->text;
      // 0: the backend does not know (treated as old).
      const bool settled = object.modified == 0 || now - object.modified >= kHoleSettleSeconds;
      if (settled || positions > static_cast<size_t>(kMaxPushAhead)) {
        later.proof = name->text;
        return later;
      }
    }
    if (page.size() < kPage) return later;
    after = page.back().key;
  }
}

void RefuseArchiveGap(RepositorySet& repositories, uint64_t system_id, const WalFileName& missing,
                      const std::string& data_dir, std::time_t now) {
  if (missing.kind != WalFileKind::kSegment) return;
  struct stat st {};
  if (stat((data_dir + "/pg_wal/" + missing.text).c_str(), &st) == 0) return;
  for (size_t i = 0; i < repositories.size(); ++i) {
    LaterWal later;
    try {
      later = FindLaterWal(repositories.storage(i), system_id, missing, now);
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
    if (!later.first) continue;
    if (!later.proof) {
      Log(LogLevel::kWarning,
          "{} is in no repository, but {} holds {}, later WAL of the same timeline, stored in "
          "the last {} minutes: walpush's push-ahead stores segments ahead of one PostgreSQL "
          "is still archiving, so this is taken for the end of the archive",
          missing.text, repositories.Label(i), *later.first, kHoleSettleSeconds / 60);
      continue;
    }
    const std::string hole = fmt::format(
        "{} is in no repository, but {} holds {}, later WAL of the same timeline: the archive "
        "has a hole",
        missing.text, repositories.Label(i), *later.proof);
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
