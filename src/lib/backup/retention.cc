#include <walstore/backup/retention.h>

#include <walstore/error.h>

#include <algorithm>
#include <set>

namespace walstore::backup {

RetentionPlan PlanRetention(const std::vector<BackupRecord>& backups,
                            const std::vector<WalObject>& wal, const RetentionPolicy& policy) {
  if (policy.keep_full.has_value() == policy.keep_days.has_value()) {
    Fail(ErrorCode::kUsage, "give exactly one of --keep-full and --keep-days");
  }
  if (policy.keep_full && *policy.keep_full < 1)
    Fail(ErrorCode::kUsage, "--keep-full must be at least 1");
  if (policy.keep_days && *policy.keep_days < 0)
    Fail(ErrorCode::kUsage, "--keep-days must not be negative");

  std::vector<const BackupRecord*> sorted;
  for (const auto& b : backups) sorted.push_back(&b);
  std::sort(sorted.begin(), sorted.end(), [](const BackupRecord* a, const BackupRecord* b) {
    return a->start_time < b->start_time;
  });
  std::vector<const BackupRecord*> complete;
  for (const auto* b : sorted) {
    if (b->complete) complete.push_back(b);
  }
  RetentionPlan plan;
  if (complete.empty()) {
    for (const auto* b : sorted) plan.keep_backups.push_back(b->label);
    return plan;
  }

  // The full backup a backup's chain starts at (itself for a full).
  auto root_of = [](const BackupRecord* b) {
    return b->chain.empty() ? b->label : b->chain.front();
  };
  std::set<const BackupRecord*> keep;
  if (policy.keep_full) {
    std::vector<const BackupRecord*> fulls;
    for (const auto* b : complete) {
      if (b->type == BackupType::kFull) fulls.push_back(b);
    }
    const size_t n = std::min(fulls.size(), static_cast<size_t>(*policy.keep_full));
    std::set<std::string> kept_fulls;
    for (auto it = fulls.end() - static_cast<long>(n); it != fulls.end(); ++it) {
      kept_fulls.insert((*it)->label);
    }
    // Each kept full with its diffs and incrs.
    for (const auto* b : complete) {
      if (kept_fulls.contains(root_of(b))) keep.insert(b);
    }
  } else {
    double cutoff = policy.now - *policy.keep_days * 86400;
    const BackupRecord* newest_before = nullptr;
    for (const auto* b : complete) {
      if (b->stop_time >= cutoff) {
        keep.insert(b);
      } else {
        newest_before = b;
      }
    }
    if (newest_before) keep.insert(newest_before);
  }
  keep.insert(complete.back());
  double oldest_kept = (*std::min_element(keep.begin(), keep.end(), [](auto* a, auto* b) {
                         return a->start_time < b->start_time;
                       }))->start_time;
  for (const auto* b : sorted) {
    if (!b->complete && b->start_time > oldest_kept) keep.insert(b);
  }
  // Every backup a kept diff or incr is restored from is kept too.
  for (const auto* b : sorted) {
    if (!keep.contains(b)) continue;
    for (const auto& label : b->chain) {
      for (const auto* other : sorted) {
        if (other->label == label) keep.insert(other);
      }
    }
  }
  for (const auto* b : sorted) {
    (keep.count(b) ? plan.keep_backups : plan.remove_backups).push_back(b->label);
  }

  // Thresholds per timeline, from the kept complete backups.
  std::set<uint32_t> timelines;
  for (const auto& w : wal) timelines.insert(w.name.timeline);
  uint64_t overall = UINT64_MAX;
  for (const auto* b : keep) {
    if (b->complete) overall = std::min(overall, b->start_segno());
  }
  for (uint32_t tli : timelines) {
    uint64_t threshold = UINT64_MAX;
    for (const auto* b : keep) {
      if (b->complete && b->timeline <= tli) threshold = std::min(threshold, b->start_segno());
    }
    plan.wal_threshold[tli] = threshold == UINT64_MAX ? overall : threshold;
  }
  const uint64_t segment_size = complete.back()->segment_size;
  for (const auto& w : wal) {
    if (w.name.kind == WalFileKind::kHistory) continue;
    if (w.name.SegmentNumber(segment_size) < plan.wal_threshold[w.name.timeline]) {
      plan.remove_wal.push_back(w);
    }
  }
  return plan;
}

std::vector<std::string> RemovalOrder(const std::vector<BackupRecord>& backups,
                                      const std::vector<std::string>& remove) {
  std::vector<const BackupRecord*> left;  // newest first
  for (auto it = backups.rbegin(); it != backups.rend(); ++it) {
    if (std::find(remove.begin(), remove.end(), it->label) != remove.end()) left.push_back(&*it);
  }
  std::stable_sort(left.begin(), left.end(), [](const BackupRecord* a, const BackupRecord* b) {
    return a->start_time > b->start_time;
  });
  auto needed = [&](const BackupRecord* b) {
    return std::any_of(left.begin(), left.end(), [&](const BackupRecord* other) {
      return other != b && std::find(other->chain.begin(), other->chain.end(), b->label) !=
                               other->chain.end();
    });
  };
  std::vector<std::string> order;
  while (!left.empty()) {
    // A cycle (only a forged record makes one) falls back to the newest.
    auto next = std::find_if(left.begin(), left.end(), [&](const auto* b) { return !needed(b); });
    if (next == left.end()) next = left.begin();
    order.push_back((*next)->label);
    left.erase(next);
  }
  return order;
}

}  // namespace walstore::backup
