// WAL continuity for walctl verify and status: pure logic, no I/O.
//
// Recovery from a backup replays every segment from the backup's start
// segment to the end of the archive, following the newest timeline's history
// (TimelineSwitch list from its .history file): timeline T is read up to the
// segment before its switch point, the next timeline from the switch
// segment on.  A backup on a timeline the newest one did not come from is
// checked to the newest segment of its own timeline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <walstore/backup/repository.h>

namespace walstore::backup {

struct WalGap {
  uint32_t timeline = 0;
  std::string first;  // first missing segment name
  std::string last;   // last missing segment name
  uint64_t count = 0;
};

// The newest timeline among the WAL objects (segments and history files).
uint32_t LatestTimeline(const std::vector<WalObject>& wal);

// Gaps in what `backups` (complete or not) need, per timeline, merged into
// ranges.  `latest_history` is the parsed .history file of LatestTimeline()
// (empty for timeline 1).
std::vector<WalGap> FindWalGaps(const std::vector<BackupRecord>& backups,
                                const std::vector<WalObject>& wal,
                                const std::vector<TimelineSwitch>& latest_history,
                                uint64_t segment_size);

}  // namespace walstore::backup
