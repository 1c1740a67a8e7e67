#include "backup/inspect.h"

#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "backup/pg_connection.h"
#include "backup/restore.h"
#include "backup/util.h"

namespace walstore::backup {

using nlohmann::json;

namespace {

json OptTime(const std::optional<double>& t) {
  return t ? json(FormatUtc(static_cast<std::time_t>(*t))) : json(nullptr);
}

// Runs one check of `verify`, turning a walstore::Error into a reported
// problem so that verify lists every problem instead of stopping at the
// first.  (The one place outside main/retry that catches: collecting is
// verify's purpose.)
void Collect(VerifyReport& report, const std::function<void()>& check) {
  try {
    check();
  } catch (const Error& e) {
    report.problems.push_back(fmt::format("{} [{}]", e.what(), InfoFor(e.code()).name));
  }
}

void CheckObject(Storage& storage, const Config& config, const std::string& key, bool full,
                 VerifyReport& report) {
  auto in = storage.OpenRead(key);
  if (!in) Fail(ErrorCode::kCorrupt, "{} is missing", key);
  ++report.objects_checked;
  // The constructor checks the header: name binding, key, encrypted under a key.
  ObjectDecoder decoder(*in, DecodeOptionsFor(config), key);  // keys rotated out too
  if (!full) return;
  std::vector<uint8_t> buf(1 << 20);
  while (size_t n = decoder.Read(MutableBytes(buf.data(), buf.size()))) report.bytes_decoded += n;
}

}  // namespace

Inventory LoadInventory(Storage& storage, const Config& config, uint64_t system_id) {
  Inventory inv;
  inv.system_id = system_id;
  inv.backups = LoadBackups(storage, config, system_id);
  inv.wal = ListWal(storage, system_id);
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

json ToJson(const VerifyReport& r) {
  json gaps = json::array();
  for (const auto& g : r.gaps) {
    gaps.push_back(
        {{"timeline", g.timeline}, {"first", g.first}, {"last", g.last}, {"count", g.count}});
  }
  json leftovers = json::array();
  for (const auto& l : r.leftovers) {
    leftovers.push_back({{"name", l.description}, {"size", l.size}, {"since", l.since}});
  }
  return {{"ok", r.ok()},
          {"problems", r.problems},
          {"leftovers", r.leftovers_unknown ? json(nullptr) : leftovers},
          {"gaps", gaps},
          {"objects_checked", r.objects_checked},
          {"bytes_decoded", r.bytes_decoded}};
}

VerifyReport RunVerify(Storage& storage, const Config& config, const Inventory& inv, bool full) {
  VerifyReport report;
  for (const auto& b : inv.backups) {
    std::vector<std::string> names = {kRecordName, kManifestName};
    for (const auto& a : b.archives) names.push_back(a.name);
    for (const auto& name : names) {
      Collect(report, [&] {
        CheckObject(storage, config, BackupObjectKey(inv.system_id, b.label, name),
                    full && (name == kRecordName || name == kManifestName), report);
      });
    }
    if (full) {
      Collect(report, [&] { report.bytes_decoded += VerifyBackupContents(storage, config, b); });
    }
  }
  for (const auto& w : inv.wal) {
    Collect(report, [&] { CheckObject(storage, config, w.key, full, report); });
  }
  if (inv.segment_size > 0) {
    report.gaps = FindWalGaps(inv.backups, inv.wal, inv.latest_history, inv.segment_size);
  }
  Collect(report, [&] {
    auto leftovers = storage.ListLeftovers(kLeftoverMinAgeSeconds);
    report.leftovers_unknown = !leftovers;
    if (leftovers) report.leftovers = std::move(*leftovers);
  });
  return report;
}

StatusReport BuildStatus(const Inventory& inv, const std::string& repository,
                         const std::optional<ArchiverStats>& archiver,
                         const StatusThresholds& thresholds, double now) {
  StatusReport s;
  s.repository = repository;
  s.system_id = inv.system_id;
  s.now = now;
  s.archiver = archiver;
  for (const auto& w : inv.wal) {
    ++s.wal_objects;
    s.wal_bytes += w.size;
    if (w.name.kind == WalFileKind::kSegment && w.name.text > s.newest_segment) {
      // Segment names of one cluster sort by (timeline, log, segment).
      s.newest_segment = w.name.text;
      s.newest_segment_time = static_cast<double>(w.modified);
    }
  }
  s.backups = inv.backups.size();
  for (const auto& b : inv.backups) {
    s.backup_bytes += b.stored_size();
    if (b.complete) {
      ++s.complete_backups;
      s.newest_backup = b.label;
      s.newest_backup_time = b.stop_time;
    }
  }
  s.pitr = ComputePitrWindow(inv);
  if (thresholds.max_archive_age) {
    if (!s.newest_segment_time) {
      s.problems.push_back("no WAL segment archived");
    } else if (now - *s.newest_segment_time > *thresholds.max_archive_age) {
      s.problems.push_back(fmt::format("newest archived segment {} is {} old (limit {})",
                                       s.newest_segment,
                                       FormatDuration(now - *s.newest_segment_time),
                                       FormatDuration(*thresholds.max_archive_age)));
    }
  }
  if (thresholds.max_backup_age) {
    if (!s.newest_backup_time) {
      s.problems.push_back("no complete backup");
    } else if (now - *s.newest_backup_time > *thresholds.max_backup_age) {
      s.problems.push_back(fmt::format("newest backup {} is {} old (limit {})", s.newest_backup,
                                       FormatDuration(now - *s.newest_backup_time),
                                       FormatDuration(*thresholds.max_backup_age)));
    }
  }
  if (archiver && archiver->failed_count > 0 &&
      archiver->last_failed_time.value_or(0) > archiver->last_archived_time.value_or(0)) {
    s.problems.push_back(fmt::format(
        "archiving is failing: last failure {} at {} ({} failures)", archiver->last_failed_wal,
        FormatUtc(static_cast<std::time_t>(*archiver->last_failed_time)), archiver->failed_count));
  }
  return s;
}

json ToJson(const StatusReport& s) {
  json j = {{"repository", s.repository},
            {"system_id", std::to_string(s.system_id)},
            {"ok", s.problems.empty()},
            {"problems", s.problems},
            {"wal_objects", s.wal_objects},
            {"wal_bytes", s.wal_bytes},
            {"backup_bytes", s.backup_bytes},
            {"archive_bytes", s.wal_bytes + s.backup_bytes},
            {"newest_segment", s.newest_segment.empty() ? json(nullptr) : json(s.newest_segment)},
            {"newest_segment_time", OptTime(s.newest_segment_time)},
            {"newest_segment_age_seconds",
             s.newest_segment_time ? json(s.now - *s.newest_segment_time) : json(nullptr)},
            {"backups", s.backups},
            {"complete_backups", s.complete_backups},
            {"newest_backup", s.newest_backup.empty() ? json(nullptr) : json(s.newest_backup)},
            {"newest_backup_time", OptTime(s.newest_backup_time)},
            {"newest_backup_age_seconds",
             s.newest_backup_time ? json(s.now - *s.newest_backup_time) : json(nullptr)},
            {"pitr_earliest", OptTime(s.pitr.earliest)},
            {"pitr_latest", OptTime(s.pitr.latest)}};
  if (s.archiver) {
    j["archiver"] = {{"archived_count", s.archiver->archived_count},
                     {"last_archived_wal", s.archiver->last_archived_wal},
                     {"last_archived_time", OptTime(s.archiver->last_archived_time)},
                     {"failed_count", s.archiver->failed_count},
                     {"last_failed_wal", s.archiver->last_failed_wal},
                     {"last_failed_time", OptTime(s.archiver->last_failed_time)}};
  }
  return j;
}

std::string ToPrometheus(const StatusReport& s) {
  std::string out;
  std::string labels = fmt::format("{{system_id=\"{}\"}}", s.system_id);
  auto metric = [&](const char* name, const char* help, double value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{}{} {}\n", name, help, name, name, labels,
                       value);
  };
  metric("walstore_up", "1 when no status check failed", s.problems.empty() ? 1 : 0);
  metric("walstore_wal_objects", "WAL objects in the archive", static_cast<double>(s.wal_objects));
  metric("walstore_archive_bytes", "bytes stored (WAL and backups)",
         static_cast<double>(s.wal_bytes + s.backup_bytes));
  metric("walstore_backups", "backups in the repository", static_cast<double>(s.backups));
  metric("walstore_complete_backups", "complete backups", static_cast<double>(s.complete_backups));
  if (s.newest_segment_time) {
    metric("walstore_newest_segment_age_seconds", "age of the newest archived segment",
           s.now - *s.newest_segment_time);
  }
  if (s.newest_backup_time) {
    metric("walstore_newest_backup_age_seconds", "age of the newest complete backup",
           s.now - *s.newest_backup_time);
  }
  if (s.pitr.earliest && s.pitr.latest) {
    metric("walstore_pitr_window_seconds", "span a PITR can reach",
           *s.pitr.latest - *s.pitr.earliest);
  }
  if (s.archiver) {
    metric("walstore_archiver_failed_count", "pg_stat_archiver.failed_count",
           static_cast<double>(s.archiver->failed_count));
  }
  return out;
}

std::string ToText(const StatusReport& s) {
  auto age = [&](const std::optional<double>& t) {
    return t ? fmt::format("{} ({} ago)", FormatUtc(static_cast<std::time_t>(*t)),
                           FormatDuration(s.now - *t))
             : std::string("-");
  };
  std::string out =
      fmt::format("repository:      {}\nsystem id:       {}\n", s.repository, s.system_id);
  out += fmt::format("newest segment:  {} {}\n", s.newest_segment.empty() ? "-" : s.newest_segment,
                     s.newest_segment.empty() ? "" : age(s.newest_segment_time));
  out += fmt::format("archive size:    {} (WAL {} in {} objects, backups {})\n",
                     FormatBytes(s.wal_bytes + s.backup_bytes), FormatBytes(s.wal_bytes),
                     s.wal_objects, FormatBytes(s.backup_bytes));
  out += fmt::format("backups:         {} ({} complete), newest {} {}\n", s.backups,
                     s.complete_backups, s.newest_backup.empty() ? "-" : s.newest_backup,
                     age(s.newest_backup_time));
  out += fmt::format("PITR window:     {} .. {}\n",
                     s.pitr.earliest ? FormatUtc(static_cast<std::time_t>(*s.pitr.earliest)) : "-",
                     s.pitr.latest ? FormatUtc(static_cast<std::time_t>(*s.pitr.latest)) : "-");
  if (s.archiver) {
    out += fmt::format("pg_stat_archiver: {} archived (last {}), {} failed (last {})\n",
                       s.archiver->archived_count, s.archiver->last_archived_wal,
                       s.archiver->failed_count,
                       s.archiver->last_failed_wal.empty() ? "-" : s.archiver->last_failed_wal);
  }
  for (const auto& p : s.problems) out += "PROBLEM: " + p + "\n";
  return out;
}

ArchiverStats QueryArchiver(const std::string& conninfo) {
  PgConnection conn(conninfo, /*replication=*/false);
  auto rows = conn.Query(
      "SELECT archived_count, coalesce(last_archived_wal, ''), "
      "extract(epoch FROM last_archived_time), failed_count, coalesce(last_failed_wal, ''), "
      "extract(epoch FROM last_failed_time) FROM pg_stat_archiver");
  ArchiverStats a;
  if (rows.empty()) return a;
  const auto& r = rows[0];
  auto num = [](const std::optional<std::string>& v) -> std::optional<double> {
    if (!v) return std::nullopt;
    return ParseNumber<double>(*v, ErrorCode::kPostgres, "a time in pg_stat_archiver");
  };
  a.archived_count =
      ParseNumber<uint64_t>(r[0].value_or("0"), ErrorCode::kPostgres, "pg_stat_archiver's count");
  a.last_archived_wal = r[1].value_or("");
  a.last_archived_time = num(r[2]);
  a.failed_count =
      ParseNumber<uint64_t>(r[3].value_or("0"), ErrorCode::kPostgres, "pg_stat_archiver's count");
  a.last_failed_wal = r[4].value_or("");
  a.last_failed_time = num(r[5]);
  return a;
}

PruneResult RunPrune(Storage& storage, const Config& config, const Inventory& inv,
                     const RetentionPolicy& policy, bool dry_run) {
  (void)config;
  PruneResult result;
  result.plan = PlanRetention(inv.backups, inv.wal, policy);
  double oldest_kept = 0;
  for (const auto& b : inv.backups) {
    if (std::find(result.plan.keep_backups.begin(), result.plan.keep_backups.end(), b.label) !=
        result.plan.keep_backups.end()) {
      oldest_kept = b.start_time;
      break;
    }
  }
  for (const auto& label : OrphanLabels(storage, inv.system_id, inv.backups)) {
    bool old = true;
    storage.List(BackupDirKey(inv.system_id, label), [&](const ObjectInfo& info) {
      if (static_cast<double>(info.modified) >= oldest_kept || info.modified == 0) old = false;
    });
    if (old && oldest_kept > 0) result.removed_orphans.push_back(label);
  }
  auto leftovers = storage.ListLeftovers(kLeftoverMinAgeSeconds);
  result.leftovers_unknown = !leftovers;
  if (leftovers) result.removed_leftovers = std::move(*leftovers);
  if (dry_run) return result;
  std::erase_if(result.removed_leftovers, [&](const Leftover& l) {
    const bool removed = storage.RemoveLeftover(l);
    if (removed) Log(LogLevel::kInfo, "removed leftover {}", l.description);
    return !removed;
  });

  auto remove_dir = [&](const std::string& label) {
    std::vector<std::string> keys;
    storage.List(BackupDirKey(inv.system_id, label),
                 [&](const ObjectInfo& info) { keys.push_back(info.key); });
    storage.RemoveMany(keys);
  };
  for (const auto& label : result.plan.remove_backups) {
    // The record first: from then on the backup is no longer listed or used.
    storage.Remove(BackupObjectKey(inv.system_id, label, kRecordName));
    remove_dir(label);
    Log(LogLevel::kInfo, "removed backup {}", label);
  }
  for (const auto& label : result.removed_orphans) remove_dir(label);
  std::vector<std::string> keys;
  for (const auto& w : result.plan.remove_wal) {
    keys.push_back(w.key);
    if (keys.size() == 1000) {
      storage.RemoveMany(keys);
      keys.clear();
    }
  }
  storage.RemoveMany(keys);
  return result;
}

json BackupSummaryJson(const BackupRecord& b) {
  json j = ToJson(b);
  j["duration_seconds"] = b.stop_time - b.start_time;
  j["pitr_earliest"] = FormatUtc(static_cast<std::time_t>(b.stop_time));
  j["pitr_earliest_lsn"] = FormatLsn(b.stop_lsn);
  return j;
}

}  // namespace walstore::backup
