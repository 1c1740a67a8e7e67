#include <walstore/archive.h>
#include <walstore/backup/inventory.h>

#include <algorithm>
#include <fmt/format.h>

namespace walstore::backup {

Inventory LoadInventory(Storage& storage, const Config& config, uint64_t system_id) {
  Inventory inv;
  inv.system_id = system_id;
  inv.backups = LoadBackups(storage, config, system_id);
  inv.wal = ListWal(storage, system_id, &inv.misplaced_wal);
  if (!inv.backups.empty()) inv.segment_size = inv.backups.back().segment_size;
  uint32_t latest = LatestTimeline(inv.wal);
  if (latest > 1) {
    WalFileName name;
    name.kind = WalFileKind::kHistory;
    name.timeline = latest;
    name.text = fmt::format("{:08X}.history", latest);
    if (auto text = ReadSmallObject(storage, config, WalObjectKey(system_id, name))) {
      inv.latest_history = ParseHistory(*text);
    }
  }
  return inv;
}

PitrWindow ComputePitrWindow(const Inventory& inv) {
  PitrWindow window;
  for (const auto& b : inv.backups) {
    if (b.complete) {
      window.earliest = b.stop_time;
      break;
    }
  }
  if (!window.earliest) return window;
  for (const auto& w : inv.wal) {
    if (w.name.kind == WalFileKind::kSegment && w.modified > 0) {
      window.latest = std::max(window.latest.value_or(0), static_cast<double>(w.modified));
    }
  }
  // The newest segment may predate the backup's recorded stop (taken after
  // the server confirmed the archive): the window is then a single point.
  if (window.latest && *window.latest < *window.earliest) window.latest = window.earliest;
  return window;
}

}  // namespace walstore::backup
