// Internal: walfetch must not end recovery at a hole in the archive.
// PostgreSQL archives a timeline's segments in order, so when segment N of a
// timeline is in no repository but a later segment of the same timeline is,
// N was lost (deleted, pruned by hand, never copied into a restored
// repository): "missing" there would end recovery early and promote a
// cluster without every transaction after the hole.
#pragma once

#include <walstore/repositories.h>
#include <walstore/storage.h>
#include <walstore/wal_name.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace walstore {

// A later file of a timeline stored this recently may be walpush's
// push-ahead running ahead of a segment PostgreSQL is still archiving (or
// retrying): it proves a hole only once it is this old.
inline constexpr std::time_t kHoleSettleSeconds = 600;

struct LaterWal {
  std::optional<std::string> first;  // the first later file of the timeline, if any
  std::optional<std::string> proof;  // the first one that proves a hole, if any
};

// The later WAL of `missing`'s timeline that `storage` holds: any segment,
// .partial or .backup file at a later position (the segment's own .partial,
// archived by a promotion, or .backup prove nothing; history files and other
// timelines do not count).  It proves a hole when it was stored at least
// kHoleSettleSeconds before `now` (or the backend does not say when), or
// when more than kMaxPushAhead later positions exist (more than push-ahead
// can store ahead).  Storage::ListObjectsAfter pages of 32 until a proof or
// the end; throws as List does.
LaterWal FindLaterWal(Storage& storage, uint64_t system_id, const WalFileName& missing,
                      std::time_t now);

// walfetch's last check before it answers "missing" for `missing`, which
// every repository lacks.  Does nothing for history, .partial and .backup
// files, nor when `data_dir`/pg_wal holds the segment (PostgreSQL reads it
// from there after restore_command's "missing").  A later file that proves
// nothing yet (FindLaterWal) is a WARNING and "missing".  When a repository
// holds one that proves a hole:
// - in standby mode (`data_dir`/standby.signal) logs a WARNING and returns:
//   a standby never ends recovery on a miss, it waits for the segment;
// - otherwise throws kArchiveGap naming the hole and the later segment.
// A repository that cannot be listed: with one repository a WARNING and
// "missing" stands (a read-only role may lack s3:ListBucket; the listing is
// a safeguard, as the cluster-presence probe is); with several, its error
// is thrown, as ConfirmAbsence does: "missing" needs every repository's
// answer.
// `now`: the clock FindLaterWal judges ages by.
void RefuseArchiveGap(RepositorySet& repositories, uint64_t system_id, const WalFileName& missing,
                      const std::string& data_dir, std::time_t now);

}  // namespace walstore
