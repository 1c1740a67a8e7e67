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
#include <optional>
#include <string>

namespace walstore {

// The first segment of `missing`'s timeline, later than `missing`, that
// `storage` holds (its file name), or nullopt.  Only segments count: a
// later .partial or .backup file is no proof of a hole (a promotion archives
// the .partial of the segment it never finished).  A few Storage::
// ListKeysAfter requests (one unless many .partial/.backup files follow);
// throws as List does.
std::optional<std::string> LaterSegmentOfTimeline(Storage& storage, uint64_t system_id,
                                                  const WalFileName& missing);

// walfetch's last check before it answers "missing" for `missing`, which
// every repository lacks.  Does nothing for history, .partial and .backup
// files, nor when `data_dir`/pg_wal holds the segment (PostgreSQL reads it
// from there after restore_command's "missing").  When a repository holds a
// later segment of the timeline:
// - in standby mode (`data_dir`/standby.signal) logs a WARNING and returns:
//   a standby never ends recovery on a miss, it waits for the segment;
// - otherwise throws kArchiveGap naming the hole and the later segment.
// A repository that cannot be listed: with one repository a WARNING and
// "missing" stands (a read-only role may lack s3:ListBucket; the listing is
// a safeguard, as the cluster-presence probe is); with several, its error
// is thrown, as ConfirmAbsence does: "missing" needs every repository's
// answer.
void RefuseArchiveGap(RepositorySet& repositories, uint64_t system_id, const WalFileName& missing,
                      const std::string& data_dir);

}  // namespace walstore
