#include <walstore/backup/repository.h>

#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/number.h>
#include <walstore/object_format.h>
#include <walstore/wal_file.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include <walstore/backup/util.h>

#include "backup/json_integer.h"

namespace walstore::backup {

using nlohmann::json;

uint64_t BackupRecord::size() const {
  uint64_t total = 0;
  for (const auto& a : archives) total += a.size;
  return total;
}

uint64_t BackupRecord::stored_size() const {
  uint64_t total = manifest.stored_size + blockmap.stored_size;
  for (const auto& a : archives) total += a.stored_size;
  return total;
}

uint64_t BackupRecord::logical_size() const { return file_bytes ? file_bytes : size(); }

const char* ToString(BackupType type) {
  switch (type) {
    case BackupType::kDiff:
      return "diff";
    case BackupType::kIncr:
      return "incr";
    default:
      return "full";
  }
}

std::optional<BackupType> ParseBackupType(std::string_view text) {
  if (text == "full") return BackupType::kFull;
  if (text == "diff") return BackupType::kDiff;
  if (text == "incr") return BackupType::kIncr;
  return std::nullopt;
}

uint64_t BackupRecord::start_segno() const { return start_lsn / segment_size; }
uint64_t BackupRecord::stop_segno() const {
  return stop_lsn == 0 ? 0 : (stop_lsn - 1) / segment_size;
}

namespace {

json ObjectJson(const BackupObject& o) {
  json j = {
      {"name", o.name}, {"size", o.size}, {"stored_size", o.stored_size}, {"sha256", o.sha256}};
  if (o.tablespace_oid != 0) {
    j["tablespace_oid"] = o.tablespace_oid;
    j["tablespace_path"] = o.tablespace_path;
  }
  return j;
}

// Record fields that are not what ToJson writes are kCorrupt naming the field
// (string fields: json::exception, turned into kCorrupt by RecordFromJson).
[[noreturn]] void BadField(const std::string& what, std::string_view name) {
  Fail(ErrorCode::kCorrupt, "{}: malformed backup record (field \"{}\")", what, name);
}

// An integer field that fits T (a missing field is `fallback`, or bad).
template <typename T>
T IntegerField(const json& j, const char* name, const std::string& what,
               std::optional<T> fallback = std::nullopt) {
  const auto it = j.find(name);
  if (it == j.end() && fallback) return *fallback;
  if (it != j.end()) {
    if (const auto value = JsonInteger<T>(*it)) return *value;
  }
  BadField(what, name);
}

// Seconds since the epoch, from 1970 to the year 9999 (FormatUtc's range).
double EpochField(const json& j, const char* name, const std::string& what) {
  const auto it = j.find(name);
  if (it == j.end() || !it->is_number()) BadField(what, name);
  const double seconds = it->get<double>();
  if (!(seconds >= 0 && seconds < 253402300800.0)) BadField(what, name);
  return seconds;
}

uint64_t LsnField(const json& j, const char* name, const std::string& what) {
  if (auto lsn = TryParseLsn(j.at(name).get<std::string>())) return *lsn;
  BadField(what, name);
}

BackupObject ObjectFromJson(const json& j, const std::string& what) {
  BackupObject o;
  o.name = j.at("name").get<std::string>();
  o.size = IntegerField<uint64_t>(j, "size", what, 0);
  o.stored_size = IntegerField<uint64_t>(j, "stored_size", what, 0);
  o.sha256 = j.value("sha256", std::string());
  o.tablespace_oid = IntegerField<uint32_t>(j, "tablespace_oid", what, 0);
  o.tablespace_path = j.value("tablespace_path", std::string());
  return o;
}

}  // namespace

json ToJson(const BackupRecord& r) {
  json archives = json::array();
  for (const auto& a : r.archives) archives.push_back(ObjectJson(a));
  const bool full = r.type == BackupType::kFull;
  json j = {{"format", full ? kRecordFormat : kDeltaRecordFormat},
          {"type", ToString(r.type)},
          {"reference", full ? json(nullptr) : json(r.reference)},
          {"chain", r.chain},
          {"logical_size", r.logical_size()},
          {"label", r.label},
          {"status", r.complete ? "complete" : "incomplete"},
          {"system_id", std::to_string(r.system_id)},
          {"pg_version", r.pg_version},
          {"timeline", r.timeline},
          {"stop_timeline", r.stop_timeline},
          {"start_lsn", FormatLsn(r.start_lsn)},
          {"stop_lsn", FormatLsn(r.stop_lsn)},
          {"start_time", FormatUtc(static_cast<std::time_t>(r.start_time))},
          {"stop_time", FormatUtc(static_cast<std::time_t>(r.stop_time))},
          {"start_epoch", r.start_time},
          {"stop_epoch", r.stop_time},
          {"segment_size", r.segment_size},
          {"wal_start", r.wal_start},
          {"wal_stop", r.wal_stop},
          {"size", r.size()},
          {"stored_size", r.stored_size()},
          {"manifest_checksums", r.manifest_checksums},
          {"compression", r.compression},
          {"encrypted", !r.key_id.empty()},
          {"key_id", r.key_id},
          {"archives", archives},
          {"manifest", ObjectJson(r.manifest)}};
  if (!r.blockmap.name.empty()) j["blockmap"] = ObjectJson(r.blockmap);
  if (!full) {
    j["reference_blockmap_sha256"] = r.reference_blockmap_sha256;
    j["reference_start_lsn"] = FormatLsn(r.reference_start_lsn);
  }
  if (r.file_bytes) j["file_bytes"] = r.file_bytes;
  return j;
}

BackupRecord RecordFromJson(const json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("format") ||
      (j.at("format") != kRecordFormat && j.at("format") != kDeltaRecordFormat)) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: not a walctl backup record of format {} or {}", what,
         kRecordFormat, kDeltaRecordFormat);
  }
  BackupRecord r;
  try {
    const auto type = ParseBackupType(j.value("type", std::string("full")));
    if (!type) BadField(what, "type");
    r.type = *type;
    // Format 1 is full only: an older walctl must never read a delta as a full.
    if ((r.type == BackupType::kFull) != (j.at("format") == kRecordFormat)) BadField(what, "type");
    if (r.type != BackupType::kFull) {
      r.reference = j.at("reference").get<std::string>();
      r.chain = j.at("chain").get<std::vector<std::string>>();
      if (r.chain.empty() || r.chain.back() != r.reference) BadField(what, "chain");
      r.reference_blockmap_sha256 = j.at("reference_blockmap_sha256").get<std::string>();
      r.reference_start_lsn = LsnField(j, "reference_start_lsn", what);
    }
    if (j.contains("blockmap")) r.blockmap = ObjectFromJson(j.at("blockmap"), what);
    r.file_bytes = IntegerField<uint64_t>(j, "file_bytes", what, 0);
    r.label = j.at("label").get<std::string>();
    r.complete = j.value("status", std::string()) == "complete";
    const auto system_id = TryParseNumber<uint64_t>(j.at("system_id").get<std::string>());
    if (!system_id) BadField(what, "system_id");
    r.system_id = *system_id;
    r.pg_version = IntegerField<int>(j, "pg_version", what, 0);
    r.timeline = IntegerField<uint32_t>(j, "timeline", what);
    r.stop_timeline = IntegerField<uint32_t>(j, "stop_timeline", what, r.timeline);
    r.start_lsn = LsnField(j, "start_lsn", what);
    r.stop_lsn = LsnField(j, "stop_lsn", what);
    r.start_time = EpochField(j, "start_epoch", what);
    r.stop_time = EpochField(j, "stop_epoch", what);
    r.segment_size = IntegerField<uint64_t>(j, "segment_size", what);
    r.wal_start = j.at("wal_start").get<std::string>();
    r.wal_stop = j.at("wal_stop").get<std::string>();
    r.manifest_checksums = j.value("manifest_checksums", std::string());
    r.compression = j.value("compression", std::string());
    r.key_id = j.value("key_id", std::string());
    for (const auto& a : j.at("archives")) r.archives.push_back(ObjectFromJson(a, what));
    r.manifest = ObjectFromJson(j.at("manifest"), what);
  } catch (const json::exception& e) {
    Fail(ErrorCode::kCorrupt, "{}: malformed backup record ({})", what, e.what());
  }
  if (!IsValidSegmentSize(r.segment_size)) {
    Fail(ErrorCode::kCorrupt, "{}: bad segment size {}", what, r.segment_size);
  }
  return r;
}

std::string BackupDirKey(uint64_t system_id, const std::string& label) {
  return BackupPrefix(system_id) + label + "/";
}

std::string BackupObjectKey(uint64_t system_id, const std::string& label, const std::string& name) {
  return BackupDirKey(system_id, label) + name;
}

void ValidateLabel(const std::string& label) {
  bool ok =
      !label.empty() && label.size() <= 64 && label[0] != '.' &&
      std::all_of(label.begin(), label.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      });
  if (!ok) {
    Fail(ErrorCode::kUsage, "invalid backup label '{}': use 1-64 letters, digits, '_', '-', '.'",
         label);
  }
}

std::vector<BackupRecord> LoadBackups(Storage& storage, const Config& config, uint64_t system_id) {
  std::vector<std::string> keys;
  const std::string suffix = std::string("/") + kRecordName;
  storage.List(BackupPrefix(system_id), [&](const ObjectInfo& info) {
    if (info.key.size() > suffix.size() && info.key.ends_with(suffix)) keys.push_back(info.key);
  });
  std::vector<BackupRecord> records;
  for (const auto& key : keys) {
    auto text = ReadSmallObject(storage, config, key);
    if (!text) continue;  // removed meanwhile (prune)
    json doc = json::parse(*text, nullptr, false);
    BackupRecord record = RecordFromJson(doc, key);
    // The record names the objects restore reads (by its label and system
    // id): it must be this label's and this cluster's.  Version 2 binds the
    // object to its key; a version 1 record copied to another label or
    // cluster, or one written under allow_plaintext_objects, is caught here.
    const std::string label = key.substr(BackupPrefix(system_id).size(),
                                         key.size() - BackupPrefix(system_id).size() - suffix.size());
    if (record.label != label || record.system_id != system_id) {
      throw Error(ErrorCode::kMisplaced,
                  fmt::format("{} describes backup {} of cluster {}: it is not this backup's "
                              "record",
                              key, record.label, record.system_id),
                  "the record was copied or moved here; do not use it: move it aside and find "
                  "the right one in another copy of the repository");
    }
    records.push_back(std::move(record));
  }
  std::sort(records.begin(), records.end(), [](const BackupRecord& a, const BackupRecord& b) {
    return a.start_time != b.start_time ? a.start_time < b.start_time : a.label < b.label;
  });
  return records;
}

std::vector<std::string> OrphanLabels(Storage& storage, uint64_t system_id,
                                      const std::vector<BackupRecord>& records) {
  std::set<std::string> labels;
  const std::string prefix = BackupPrefix(system_id);
  storage.List(prefix, [&](const ObjectInfo& info) {
    std::string rest = info.key.substr(prefix.size());
    size_t slash = rest.find('/');
    if (slash != std::string::npos) labels.insert(rest.substr(0, slash));
  });
  for (const auto& r : records) labels.erase(r.label);
  return {labels.begin(), labels.end()};
}

const BackupRecord& SelectBackup(const std::vector<BackupRecord>& records, const std::string& which,
                                 std::optional<double> target_time,
                                 std::optional<uint64_t> target_lsn) {
  if (which != "latest") {
    for (const auto& r : records) {
      if (r.label == which) return r;
    }
    Fail(ErrorCode::kUsage,
         "no backup labelled '{}' ({} backups in the repository; see walctl list)", which,
         records.size());
  }
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    if (!it->complete) continue;
    if (target_time && it->stop_time > *target_time) continue;
    if (target_lsn && it->stop_lsn > *target_lsn) continue;
    return *it;
  }
  if (target_time || target_lsn) {
    Fail(ErrorCode::kUsage, "no complete backup ended before the recovery target");
  }
  Fail(ErrorCode::kUsage, "no complete backup in the repository (see walctl list)");
}

namespace {

// The chain of `backup` as RestoreChain returns it; on a problem returns
// what it found so far and sets `problem`.
std::vector<const BackupRecord*> ResolveChain(const std::vector<BackupRecord>& records,
                                              const BackupRecord& backup, std::string& problem) {
  std::vector<const BackupRecord*> chain;
  auto link = [&](const BackupRecord& next) {
    const BackupRecord* previous = chain.empty() ? nullptr : chain.back();
    // Each link must be what the next one was compared with.
    if ((previous == nullptr) != (next.type == BackupType::kFull) ||
        (previous && next.reference != previous->label)) {
      problem = fmt::format("backup {}: chain {} does not match the records of its backups",
                            backup.label, fmt::join(backup.chain, " -> "));
      return false;
    }
    if (previous && (next.reference_blockmap_sha256 != previous->blockmap.sha256 ||
                     next.reference_start_lsn != previous->start_lsn)) {
      problem = fmt::format(
          "backup {} of the chain of {} was compared with another backup {} than the one in the "
          "repository now (block map or start LSN differ: the label was reused)",
          next.label, backup.label, previous->label);
      return false;
    }
    chain.push_back(&next);
    return true;
  };
  for (const auto& label : backup.chain) {
    const auto it = std::find_if(records.begin(), records.end(),
                                 [&](const BackupRecord& r) { return r.label == label; });
    if (it == records.end()) {
      problem = fmt::format("backup {} ({}) needs backup {} of its chain, which is not in the "
                            "repository",
                            backup.label, ToString(backup.type), label);
      return chain;
    }
    if (!link(*it)) return chain;
  }
  if (!chain.empty() && chain.back()->label != backup.reference) {
    problem = fmt::format("backup {}: its chain does not end at its reference", backup.label);
    return chain;
  }
  link(backup);
  return chain;
}

}  // namespace

std::string ChainProblem(const std::vector<BackupRecord>& records, const BackupRecord& backup) {
  std::string problem;
  ResolveChain(records, backup, problem);
  return problem;
}

std::vector<const BackupRecord*> RestoreChain(const std::vector<BackupRecord>& records,
                                              const BackupRecord& backup) {
  std::string problem;
  auto chain = ResolveChain(records, backup, problem);
  if (!problem.empty()) {
    throw Error(ErrorCode::kCorrupt, problem,
                "the chain is broken: restore another backup (walctl list shows the chains)");
  }
  return chain;
}

std::optional<std::string> ReadSmallObject(Storage& storage, const Config& config,
                                           const std::string& key) {
  auto in = storage.OpenRead(key);
  if (!in) return std::nullopt;
  ObjectDecoder decoder(*in, DecodeOptionsFor(config), key);  // keys rotated out too
  StringWriteStream out;
  decoder.DecodeTo(out);
  return std::move(out.data());
}

BackupObject WriteSmallObject(Storage& storage, const Config& config, const std::string& key,
                              std::string_view data) {
  Sha256Digest digest = Sha256Of(AsBytes(data));
  WriteOptions options;
  options.metadata[kMetaSha256] = ToHex(digest);
  options.metadata[kMetaSize] = std::to_string(data.size());
  auto writer = storage.Create(key, options);
  EncodeOptions encode;
  encode.compression = config.compression;
  encode.key = config.key ? &*config.key : nullptr;
  encode.chunk_size = config.chunk_size;
  encode.identity = key;
  encode.known_digest = std::make_pair(uint64_t{data.size()}, digest);
  ObjectEncoder encoder(*writer, encode);
  encoder.Write(AsBytes(data));
  encoder.Finish();
  if (writer->Commit() != CommitResult::kCreated) {
    Fail(ErrorCode::kConflict, "{} already exists in {}", key, storage.Describe());
  }
  BackupObject object;
  object.name = key.substr(key.rfind('/') + 1);
  object.size = data.size();
  object.stored_size = encoder.encoded_size();
  object.sha256 = ToHex(digest);
  return object;
}

std::vector<WalObject> ListWal(Storage& storage, uint64_t system_id,
                               std::vector<WalObject>* misplaced) {
  std::vector<WalObject> out;
  storage.List(WalPrefix(system_id), [&](const ObjectInfo& info) {
    auto name = ParseWalFileName(info.key.substr(info.key.rfind('/') + 1));
    if (!name) return;
    WalObject object{*name, info.key, info.size, info.modified};
    if (info.key == WalObjectKey(system_id, *name)) {
      out.push_back(std::move(object));
    } else if (misplaced) {
      misplaced->push_back(std::move(object));
    }
  });
  return out;
}

uint64_t DiscoverSystemId(Storage& storage, const Config& config, const std::string& pgdata) {
  if (config.system_id) return *config.system_id;
  if (!pgdata.empty()) {
    if (auto id = ReadControlFileSystemId(pgdata)) return *id;
    Fail(ErrorCode::kConfig, "{}/global/pg_control not found", pgdata);
  }
  std::set<uint64_t> ids;  // the top-level directories named by a 64-bit number
  storage.List("", [&](const ObjectInfo& info) {
    const size_t slash = info.key.find('/');
    if (slash == std::string::npos) return;
    if (auto id = TryParseNumber<uint64_t>(std::string_view(info.key).substr(0, slash))) {
      ids.insert(*id);
    }
  });
  if (ids.size() == 1) return *ids.begin();
  if (ids.empty()) {
    throw Error(ErrorCode::kConfig, fmt::format("{} holds no archive yet", storage.Describe()),
                "archive WAL with walpush or take a backup first, or set --system-id");
  }
  std::string list;
  for (const uint64_t id : ids) list += (list.empty() ? "" : ", ") + std::to_string(id);
  throw Error(
      ErrorCode::kConfig,
      fmt::format("{} holds the archives of several clusters ({})", storage.Describe(), list),
      "choose one with --system-id, WALSTORE_SYSTEM_ID or --pgdata");
}

std::vector<TimelineSwitch> ParseHistory(std::string_view text) {
  std::vector<TimelineSwitch> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line(text.substr(pos, end == std::string_view::npos ? text.npos : end - pos));
    pos = end == std::string_view::npos ? text.size() : end + 1;
    unsigned tli = 0, hi = 0, lo = 0;
    if (line.empty() || line[0] == '#') continue;
    if (std::sscanf(line.c_str(), "%u %X/%X", &tli, &hi, &lo) == 3) {
      out.push_back({tli, (uint64_t{hi} << 32) | lo});
    }
  }
  return out;
}

}  // namespace walstore::backup
