#include <walstore/backup/continuity.h>

#include <algorithm>
#include <map>
#include <set>

namespace walstore::backup {
namespace {

struct ChainEntry {
  uint32_t timeline;
  uint64_t from;  // first segment read from this timeline
  uint64_t to;    // last one (UINT64_MAX for the newest timeline)
};

}  // namespace

uint32_t LatestTimeline(const std::vector<WalObject>& wal) {
  uint32_t latest = 0;
  for (const auto& w : wal) latest = std::max(latest, w.name.timeline);
  return latest;
}

std::vector<WalGap> FindWalGaps(const std::vector<BackupRecord>& backups,
                                const std::vector<WalObject>& wal,
                                const std::vector<TimelineSwitch>& latest_history,
                                uint64_t segment_size) {
  std::map<uint32_t, std::set<uint64_t>> present;
  for (const auto& w : wal) {
    if (w.name.kind == WalFileKind::kSegment) {
      present[w.name.timeline].insert(w.name.SegmentNumber(segment_size));
    }
  }
  auto newest_on = [&](uint32_t tli) -> std::optional<uint64_t> {
    auto it = present.find(tli);
    if (it == present.end() || it->second.empty()) return std::nullopt;
    return *it->second.rbegin();
  };

  std::vector<ChainEntry> chain;
  uint64_t from = 0;
  for (const auto& sw : latest_history) {
    uint64_t switch_seg = sw.switch_lsn / segment_size;
    chain.push_back({sw.timeline, from, switch_seg == 0 ? 0 : switch_seg - 1});
    from = switch_seg;
  }
  uint32_t latest = std::max(LatestTimeline(wal), uint32_t{1});
  chain.push_back({latest, from, UINT64_MAX});

  std::map<uint32_t, std::set<uint64_t>> missing;
  auto check = [&](uint32_t tli, uint64_t first, uint64_t last) {
    for (uint64_t seg = first; seg <= last && seg != UINT64_MAX; ++seg) {
      if (!present[tli].count(seg)) missing[tli].insert(seg);
    }
  };
  for (const auto& b : backups) {
    uint64_t start = b.start_segno();
    auto on_chain = std::find_if(chain.begin(), chain.end(), [&](const ChainEntry& e) {
      return e.timeline == b.timeline && e.from <= start && start <= e.to;
    });
    if (on_chain == chain.end()) {
      uint64_t last = std::max(newest_on(b.timeline).value_or(0), b.stop_segno());
      check(b.timeline, start, last);
      continue;
    }
    for (auto it = on_chain; it != chain.end(); ++it) {
      uint64_t first = std::max(start, it->from);
      uint64_t last = it->to;
      if (last == UINT64_MAX) {
        auto newest = newest_on(it->timeline);
        if (!newest) break;
        last = *newest;
      }
      if (first <= last) check(it->timeline, first, last);
    }
    // The backup's own range is needed whatever the chain says.
    check(b.timeline, start, b.stop_segno());
  }

  std::vector<WalGap> gaps;
  for (const auto& [tli, segs] : missing) {
    for (auto it = segs.begin(); it != segs.end();) {
      uint64_t first = *it, last = *it;
      while (++it != segs.end() && *it == last + 1) last = *it;
      gaps.push_back({tli, SegmentFileName(tli, first, segment_size),
                      SegmentFileName(tli, last, segment_size), last - first + 1});
    }
  }
  return gaps;
}

}  // namespace walstore::backup
