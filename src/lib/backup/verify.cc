#include <walstore/archive.h>
#include <walstore/backup/restore.h>
#include <walstore/backup/verify.h>
#include <walstore/backup/util.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <functional>
#include <set>

namespace walstore::backup {

namespace {

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
                 int jobs, VerifyReport& report) {
  auto in = storage.OpenRead(key);
  if (!in) Fail(ErrorCode::kCorrupt, "{} is missing", key);
  ++report.objects_checked;
  // The constructor checks the header: name binding, key, encrypted under a key.
  DecodeOptions options = DecodeOptionsFor(config);  // keys rotated out too
  if (full) options.threads = jobs;
  ObjectDecoder decoder(*in, options, key);
  if (!full) return;
  std::vector<uint8_t> buf(1 << 20);
  while (size_t n = decoder.Read(MutableBytes(buf.data(), buf.size()))) report.bytes_decoded += n;
}

}  // namespace

VerifyReport RunVerify(Storage& storage, const Config& config, const Inventory& inv, bool full,
                       int jobs) {
  VerifyReport report;
  if (full) Log(LogLevel::kInfo, "decoding every object with {} jobs", jobs);
  std::set<std::string> damaged;  // labels of backups with a problem
  // Full backups whose only problem is their block map: restoring them or
  // their chain does not read it; only a new diff or incr on them would.
  std::set<std::string> map_damaged;
  for (const auto& b : inv.backups) {
    const size_t problems_before = report.problems.size();
    size_t map_problems = 0;
    std::vector<std::string> names = {kRecordName, kManifestName};
    if (!b.blockmap.name.empty()) names.push_back(b.blockmap.name);
    for (const auto& a : b.archives) names.push_back(a.name);
    for (const auto& name : names) {
      const size_t before = report.problems.size();
      Collect(report, [&] {
        CheckObject(storage, config, BackupObjectKey(inv.system_id, b.label, name),
                    full && (name == kRecordName || name == kManifestName), jobs, report);
        if (full && name == b.blockmap.name) VerifyBlockMap(storage, config, b);
      });
      if (name == b.blockmap.name) map_problems += report.problems.size() - before;
    }
    if (b.type != BackupType::kFull) {
      Collect(report, [&] { RestoreChain(inv.backups, b); });
    }
    if (full) {
      // The reference's block map is compared with only when it is sound.
      const auto reference = std::find_if(inv.backups.begin(), inv.backups.end(),
                                          [&](const BackupRecord& r) { return r.label == b.reference; });
      const bool usable = reference != inv.backups.end() && !damaged.contains(reference->label) &&
                          !map_damaged.contains(reference->label);
      Collect(report, [&] {
        report.bytes_decoded +=
            VerifyBackupContents(storage, config, b, usable ? &*reference : nullptr, jobs);
      });
    }
    const size_t problems = report.problems.size() - problems_before;
    if (problems > 0 && b.type == BackupType::kFull && problems == map_problems) {
      map_damaged.insert(b.label);
      report.problems.push_back(fmt::format(
          "backup {}: its block map is damaged, so no diff or incr can be taken on it (restores "
          "of {} and of the diffs and incrs on it do not read it); take a full backup [corrupt]",
          b.label, b.label));
    } else if (problems > 0) {
      damaged.insert(b.label);
    }
  }
  // A diff or incr restores only with every backup of its chain.
  for (const auto& b : inv.backups) {
    for (const auto& label : b.chain) {
      if (damaged.contains(label)) {
        report.problems.push_back(fmt::format(
            "backup {} ({}) cannot be restored: backup {} of its chain is damaged [corrupt]",
            b.label, ToString(b.type), label));
        break;
      }
    }
  }
  for (const auto& w : inv.wal) {
    Collect(report, [&] { CheckObject(storage, config, w.key, full, jobs, report); });
  }
  for (const auto& w : inv.misplaced_wal) {
    report.problems.push_back(fmt::format(
        "{} is not where walfetch looks for {} ({}): restores never see it [misplaced]", w.key,
        w.name.text, WalObjectKey(inv.system_id, w.name)));
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

}  // namespace walstore::backup
