#include <walstore/backup/base_backup.h>

#include <unistd.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/object_format.h>
#include <walstore/wal_name.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "backup/archiver_stats.h"
#include "backup/delta.h"
#include "backup/manifest.h"
#include "backup/pg_connection.h"
#include "backup/pipeline.h"
#include "backup/progress_reporter.h"
#include "backup/tar_reader.h"
#include <walstore/backup/status.h>
#include <walstore/backup/util.h>

namespace walstore::backup {
namespace {

// One archive (tar) being streamed into the repository.
class ArchiveSink : public WriteStream {
 public:
  ArchiveSink(Storage& storage, const Config& config, const std::string& key, int threads)
      : key_(key), writer_(storage.Create(key, WriteOptions{.head_final = true})) {
    EncodeOptions options;
    options.compression = config.compression;
    options.key = config.key ? &*config.key : nullptr;
    options.chunk_size = config.chunk_size;
    options.threads = threads;
    options.identity = key;
    encoder_ = std::make_unique<ObjectEncoder>(*writer_, options);
    // Receiving from the server overlaps with compressing / encrypting.
    background_ = std::make_unique<BackgroundWriter>(*encoder_);
  }
  void Write(Bytes data) override { background_->Write(data); }
  void Finish() override {}  // Commit() finishes and publishes
  // Publishes the object; fills the sizes and digest of `object`.
  void Commit(BackupObject& object) {
    background_->Finish();
    encoder_->Finish();
    if (writer_->Commit() != CommitResult::kCreated) {
      Fail(ErrorCode::kConflict, "{} already exists in the repository", key_);
    }
    object.size = encoder_->plaintext_size();
    object.stored_size = encoder_->encoded_size();
    object.sha256 = ToHex(encoder_->plaintext_sha256());
  }

 private:
  std::string key_;
  std::unique_ptr<ObjectWriter> writer_;
  std::unique_ptr<ObjectEncoder> encoder_;
  std::unique_ptr<BackgroundWriter> background_;  // destroyed first: it writes to encoder_
};

std::string SqlQuote(const std::string& text) { return ConfQuote(text); }

// The COPY OUT messages of BASE_BACKUP, one at a time.
class CopyMessages {
 public:
  explicit CopyMessages(PgConnection& conn) : conn_(conn) {}
  // The next message; false at the end of the COPY.  `body` stays valid
  // until the next call.
  bool Next(char& type, Bytes& body) {
    if (pushed_back_) {
      pushed_back_ = false;
      type = type_;
      body = body_;
      return !ended_;
    }
    for (;;) {
      char* buffer = nullptr;
      const int len = PQgetCopyData(conn_.get(), &buffer, 0);
      if (len == -1) {
        ended_ = true;
        return false;
      }
      if (len == -2) conn_.FailWith("error while receiving the backup");
      buffer_.reset(buffer);
      if (len < 1) continue;
      type = type_ = buffer[0];
      body = body_ = Bytes(reinterpret_cast<const uint8_t*>(buffer) + 1, static_cast<size_t>(len) - 1);
      return true;
    }
  }
  // The next Next() returns the last message (or the end) again.
  void PushBack() { pushed_back_ = true; }

 private:
  PgConnection& conn_;
  std::unique_ptr<char, void (*)(void*)> buffer_{nullptr, PQfreemem};
  char type_ = 0;
  Bytes body_;
  bool pushed_back_ = false;
  bool ended_ = false;
};

// The data of one archive: the 'd' messages up to the next message of
// another kind ('p', the server's progress count, is skipped).  Every byte
// received also goes to `tee` when given, whether read or not.
class ArchiveData : public ReadStream {
 public:
  ArchiveData(CopyMessages& messages, ProgressReporter& progress, WriteStream* tee)
      : messages_(messages), progress_(progress), tee_(tee) {}
  size_t Read(MutableBytes out) override {
    while (pos_ == body_.size()) {
      if (ended_) return 0;
      char type = 0;
      Bytes body;
      const bool more = messages_.Next(type, body);
      if (more && type == 'p') continue;
      if (!more || type != 'd') {
        messages_.PushBack();
        ended_ = true;
        return 0;
      }
      body_ = body;
      pos_ = 0;
      progress_.Advance(body.size());
      if (tee_) tee_->Write(body);
    }
    const size_t n = std::min(out.size(), body_.size() - pos_);
    std::memcpy(out.data(), body_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  // Reads what is left of the archive.
  void Drain() {
    uint8_t rest[8192];
    while (Read(MutableBytes(rest, sizeof rest)) > 0) {
    }
  }

 private:
  CopyMessages& messages_;
  ProgressReporter& progress_;
  WriteStream* tee_;
  Bytes body_;
  size_t pos_ = 0;
  bool ended_ = false;
};

// The next result of the running command; throws on an error result.
PgResultPtr NextResult(PgConnection& conn, const char* what) {
  PgResultPtr result(PQgetResult(conn.get()));
  if (!result) return result;
  auto status = PQresultStatus(result.get());
  if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE) {
    std::string message = PQresultErrorMessage(result.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    Fail(ErrorCode::kPostgres, "BASE_BACKUP failed ({}): {}", what, message);
  }
  return result;
}

// While walctl backup waits for its WAL to reach the archive, PostgreSQL's
// archiver may be failing (a wrong archive_command, a full or unmounted
// repository).  That is said as soon as it is seen, as a WARNING, instead of
// only when --wal-timeout runs out.  It reads pg_stat_archiver over a normal
// connection when one can be made (a replication-only role cannot: then the
// watch is silent), at most every 5 s.
class ArchiverWatch {
 public:
  explicit ArchiverWatch(std::string conninfo) : conninfo_(std::move(conninfo)) {}

  // `now`: look even if the last look was less than 5 s ago.  Connects on the
  // first call, so a backup whose WAL is already archived opens no connection.
  void Poll(bool now) {
    if (!now && NowSeconds() < next_look_) return;
    next_look_ = NowSeconds() + 5;
    if (!connect_tried_) {
      connect_tried_ = true;
      std::string why;
      conn_ = PgConnection::TryOpen(conninfo_, /*replication=*/false, &why);
      if (!conn_) Log(LogLevel::kDebug, "pg_stat_archiver not watched while waiting: {}", why);
    }
    if (!conn_) return;
    const ArchiverStats stats = ReadArchiverStats(*conn_);
    auto failing = ArchiverFailure(stats);
    if (!failing || stats.failed_count == warned_at_count_) return;
    warned_at_count_ = stats.failed_count;
    failure_ = *failing;
    Log(LogLevel::kWarning, "PostgreSQL {} while walctl backup waits for its WAL (pg_stat_archiver)",
        failure_);
  }

  // The last failure seen; "" when none.
  const std::string& failure() const { return failure_; }

 private:
  std::string conninfo_;
  bool connect_tried_ = false;
  std::unique_ptr<PgConnection> conn_;
  double next_look_ = 0;
  uint64_t warned_at_count_ = 0;
  std::string failure_;
};

// Backup from a standby: ends the primary's current WAL segment (which
// holds or follows the standby's backup end, as the standby replays what
// the primary wrote) so that it is archived now.  Refuses a server of
// another cluster or one in recovery itself.
void SwitchPrimaryWal(const std::string& primary_conninfo, const BackupRecord& record) {
  PgConnection primary(primary_conninfo, /*replication=*/false);
  const std::string id = primary.QueryValue("SELECT system_identifier::text FROM pg_control_system()");
  if (id != std::to_string(record.system_id)) {
    Fail(ErrorCode::kUsage, "--primary reaches cluster {}, but the standby backed up is of cluster {}",
         id, record.system_id);
  }
  if (primary.QueryValue("SELECT pg_is_in_recovery()") != "f") {
    Fail(ErrorCode::kUsage, "--primary reaches a server in recovery; give the primary itself");
  }
  const std::string switched = primary.QueryValue("SELECT pg_switch_wal()::text");
  Log(LogLevel::kInfo, "switched WAL on the primary at {} so that {} is archived now", switched,
      record.wal_stop);
}

}  // namespace

const BackupRecord& ChooseReference(const std::vector<BackupRecord>& records, BackupType type,
                                    int pg_version) {
  const char* kind = type == BackupType::kDiff ? "full" : "complete";
  const char* hint = "take a full backup first (walctl backup --type full)";
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    if (!it->complete || (type == BackupType::kDiff && it->type != BackupType::kFull)) continue;
    if (it->blockmap.name.empty()) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("the newest {} backup, {}, has no block map (an older walctl took "
                              "it): a diff or incr backup cannot be compared with it",
                              kind, it->label),
                  hint);
    }
    if (it->pg_version / 10000 != pg_version / 10000) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("the newest {} backup, {}, is of PostgreSQL {}, the server is {}",
                              kind, it->label, it->pg_version / 10000, pg_version / 10000),
                  hint);
    }
    if (const std::string problem = ChainProblem(records, *it); !problem.empty()) {
      throw Error(ErrorCode::kCorrupt,
                  fmt::format("the newest {} backup, {}, cannot be restored ({}): a diff or incr "
                              "on it could not be restored either",
                              kind, it->label, problem),
                  hint);
    }
    return *it;
  }
  throw Error(ErrorCode::kUsage,
              fmt::format("{} needs a complete {}backup to refer to, and there is none",
                          type == BackupType::kDiff ? "a diff backup" : "an incr backup",
                          type == BackupType::kDiff ? "full " : ""),
              hint);
}

void RecheckChain(Storage& storage, const Config& config, const BackupRecord& record) {
  const std::string problem =
      ChainProblem(LoadBackups(storage, config, record.system_id), record);
  if (problem.empty()) return;
  std::vector<std::string> objects;
  storage.List(BackupDirKey(record.system_id, record.label),
               [&](const ObjectInfo& info) { objects.push_back(info.key); });
  storage.RemoveMany(objects);
  throw Error(ErrorCode::kVerifyFailed,
              fmt::format("{} backup {} is not recorded and its objects are removed: its chain "
                          "changed while it ran, so it could not be restored ({})",
                          ToString(record.type), record.label, problem),
              "a walctl prune ran during the backup (run prune only when no backup runs); take "
              "a full backup (walctl backup --type full)");
}

uint64_t ParseGucBytes(const std::string& text) {
  const size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
  const std::string unit = text.substr(digits);
  const int shift = unit == "kB" ? 10 : unit == "MB" ? 20 : unit == "GB" ? 30 : unit == "TB" ? 40
                  : unit.empty() || unit == "B" ? 0 : -1;
  const auto value = TryParseNumber<uint64_t>(std::string_view(text).substr(0, digits));
  if (shift < 0 || !value || *value > (UINT64_MAX >> shift)) {
    Fail(ErrorCode::kPostgres, "unexpected size '{}' from the server", text);
  }
  return *value << shift;
}

std::vector<std::string> RequiredWal(const BackupRecord& record) {
  std::vector<std::string> names;
  for (uint64_t seg = record.start_segno(); seg <= record.stop_segno(); ++seg) {
    uint32_t tli = seg == record.stop_segno() ? record.stop_timeline : record.timeline;
    names.push_back(SegmentFileName(tli, seg, record.segment_size));
  }
  return names;
}

std::vector<std::string> WaitForWal(Storage& storage, uint64_t system_id,
                                    const std::vector<std::string>& names, double timeout_seconds,
                                    const std::function<void()>& on_poll) {
  double deadline = NowSeconds() + timeout_seconds;
  std::vector<std::string> missing = names;
  for (;;) {
    std::vector<std::string> still;
    for (const auto& name : missing) {
      if (!storage.Stat(WalObjectKey(system_id, ParseWalFileNameOrThrow(name))))
        still.push_back(name);
    }
    missing.swap(still);
    if (missing.empty() || NowSeconds() >= deadline) return missing;
    if (on_poll) on_poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

BackupRecord RunBackup(Storage& storage, const Config& config, const BackupOptions& options) {
  PgConnection conn(options.conninfo, /*replication=*/true);
  BackupRecord record;
  record.pg_version = conn.server_version();
  if (record.pg_version < 150000) {
    Fail(ErrorCode::kPostgres, "walctl backup needs PostgreSQL 15 or later (server is {})",
         record.pg_version);
  }
  auto ident = conn.Query("IDENTIFY_SYSTEM");
  if (ident.empty() || !ident[0][0]) Fail(ErrorCode::kPostgres, "IDENTIFY_SYSTEM returned nothing");
  record.system_id =
      ParseNumber<uint64_t>(*ident[0][0], ErrorCode::kPostgres, "IDENTIFY_SYSTEM's system id");
  record.segment_size = ParseGucBytes(conn.QueryValue("SHOW wal_segment_size"));
  const bool from_standby = conn.QueryValue("SHOW in_hot_standby") == "on";
  if (from_standby && options.primary_conninfo.empty()) {
    Log(LogLevel::kNotice,
        "backing up a standby: the backup is complete once the primary has archived the WAL "
        "segment holding its end, when the primary fills it or archive_timeout passes "
        "(--primary CONNINFO makes walctl switch it at once)");
  } else if (!from_standby && !options.primary_conninfo.empty()) {
    Log(LogLevel::kWarning, "--primary is ignored: the server backed up is not a standby");
  }
  record.start_time = NowSeconds();
  record.label = options.label.empty()
                     ? FormatUtc(static_cast<std::time_t>(record.start_time), "%Y%m%dT%H%M%SZ")
                     : options.label;
  ValidateLabel(record.label);
  record.manifest_checksums = options.manifest_checksums;
  record.compression = ToString(config.compression);
  record.key_id = config.key ? config.key->IdHex() : "";

  const uint64_t sysid = record.system_id;
  record.type = options.type;
  const bool delta = options.type != BackupType::kFull;
  std::optional<BackupRecord> reference;
  BlockMap reference_map;
  if (delta) {
    reference = ChooseReference(LoadBackups(storage, config, sysid), options.type,
                                record.pg_version);
    record.reference = reference->label;
    record.chain = reference->chain;
    record.chain.push_back(reference->label);
    record.reference_blockmap_sha256 = reference->blockmap.sha256;
    record.reference_start_lsn = reference->start_lsn;
    reference_map = LoadBlockMap(storage, config, *reference);
    Log(LogLevel::kInfo, "{} backup against {} ({} files in its block map)", ToString(options.type),
        reference->label, reference_map.size());
  }
  bool exists = false;
  storage.List(BackupDirKey(sysid, record.label), [&](const ObjectInfo&) { exists = true; });
  if (exists) {
    Fail(ErrorCode::kConflict, "backup label '{}' is already used in {}", record.label,
         storage.Describe());
  }
  const int threads = options.threads > 0 ? options.threads : WalctlJobs(config);

  std::string command = fmt::format(
      "BASE_BACKUP (LABEL {}, PROGRESS, CHECKPOINT '{}', WAIT false, MANIFEST 'yes', "
      "MANIFEST_CHECKSUMS '{}', TARGET 'client'{})",
      SqlQuote("walctl " + record.label), options.fast_checkpoint ? "fast" : "spread",
      options.manifest_checksums,
      options.max_rate_kb ? fmt::format(", MAX_RATE {}", options.max_rate_kb) : "");
  Log(LogLevel::kInfo, "starting {} on system {}, encoding with {} jobs", command, sysid, threads);
  if (!PQsendQuery(conn.get(), command.c_str())) conn.FailWith("cannot send BASE_BACKUP");

  auto start = NextResult(conn, "start position");
  if (!start || PQresultStatus(start.get()) != PGRES_TUPLES_OK || PQntuples(start.get()) != 1) {
    Fail(ErrorCode::kPostgres, "BASE_BACKUP: unexpected start result");
  }
  record.start_lsn = ParseLsn(PQgetvalue(start.get(), 0, 0));
  record.timeline = ParseNumber<uint32_t>(PQgetvalue(start.get(), 0, 1), ErrorCode::kPostgres,
                                          "BASE_BACKUP's start timeline");
  Log(LogLevel::kInfo, "backup started at {} on timeline {}", FormatLsn(record.start_lsn),
      record.timeline);

  auto spaces = NextResult(conn, "tablespace list");
  uint64_t total_estimate = 0;
  std::map<std::string, std::string> tablespace_paths;  // oid -> location
  if (spaces && PQresultStatus(spaces.get()) == PGRES_TUPLES_OK) {
    for (const auto& row : RowsOf(spaces.get())) {
      if (row.size() > 2 && row[2]) {
        total_estimate +=
            ParseNumber<uint64_t>(*row[2], ErrorCode::kPostgres, "BASE_BACKUP's size estimate") *
            1024;
      }
      if (row[0] && row[1]) tablespace_paths[*row[0]] = *row[1];
    }
  }
  if (reference) {
    std::set<uint32_t> now, then;
    for (const auto& [oid, path] : tablespace_paths) {
      now.insert(ParseNumber<uint32_t>(oid, ErrorCode::kPostgres, "a tablespace OID"));
    }
    for (const auto& a : reference->archives) {
      if (a.tablespace_oid) then.insert(a.tablespace_oid);
    }
    if (now != then) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("the cluster's tablespaces changed since backup {}: a diff or "
                              "incr backup keeps the tablespaces of its chain",
                              reference->label),
                  "take a full backup (walctl backup --type full)");
    }
  }
  auto copy = NextResult(conn, "copy");
  if (!copy || PQresultStatus(copy.get()) != PGRES_COPY_OUT) {
    Fail(ErrorCode::kPostgres, "BASE_BACKUP: the server did not start streaming the backup");
  }

  ProgressReporter progress(options.progress, total_estimate);
  std::string manifest_text;
  bool in_manifest = false;
  ArchiveSink blockmap_sink(storage, config, BackupObjectKey(sysid, record.label, kBlockMapName),
                            1);
  BlockMapWriter blockmap(blockmap_sink);
  ScanStats totals;
  CopyMessages messages(conn);
  char type = 0;
  Bytes message;
  while (messages.Next(type, message)) {
    const char* body = reinterpret_cast<const char*>(message.data());
    const size_t body_len = message.size();
    if (type == 'n') {
      std::string name(body, strnlen(body, body_len));
      std::string path = name.size() + 1 < body_len
                             ? std::string(body + name.size() + 1,
                                           strnlen(body + name.size() + 1, body_len - name.size() - 1))
                             : "";
      BackupObject object;
      if (name != "base.tar") {
        if (!name.ends_with(".tar") || name.size() < 5 ||
            name.find_first_not_of("0123456789") != name.size() - 4) {
          Fail(ErrorCode::kPostgres, "BASE_BACKUP sent an unexpected archive '{}'", name);
        }
        object.tablespace_oid = ParseNumber<uint32_t>(
            std::string_view(name).substr(0, name.size() - 4), ErrorCode::kPostgres,
            "the tablespace OID of a BASE_BACKUP archive");
        object.tablespace_path = path;
      }
      // A diff / incr stores "base.delta" for "base.tar" (delta.h).
      object.name = delta ? name.substr(0, name.size() - 4) + ".delta" : name;
      Log(LogLevel::kInfo, "receiving {}{}", name, path.empty() ? "" : " (" + path + ")");
      const std::string prefix =
          object.tablespace_oid ? fmt::format("pg_tblspc/{}/", object.tablespace_oid) : "";
      ArchiveSink sink(storage, config, BackupObjectKey(sysid, record.label, object.name),
                       threads);
      // A full backup stores the tar as received; its block map is read on the way.
      ArchiveData data(messages, progress, delta ? nullptr : &sink);
      TarReader tar(data, name);
      const ScanStats stats =
          ScanArchive(tar, prefix, blockmap, delta ? &reference_map : nullptr,
                      delta ? &sink : nullptr);
      data.Drain();
      sink.Commit(object);
      record.archives.push_back(object);
      totals.files += stats.files;
      totals.logical_bytes += stats.logical_bytes;
      totals.stored_blocks += stats.stored_blocks;
      totals.stored_bytes += stats.stored_bytes;
    } else if (type == 'm') {
      in_manifest = true;
    } else if (type == 'd') {
      if (!in_manifest) Fail(ErrorCode::kPostgres, "BASE_BACKUP sent data before an archive header");
      manifest_text.append(body, body_len);
    }  // 'p' (the server's count within the current tablespace) is not needed: 'd' counts.
  }
  blockmap.Finish();
  record.blockmap.name = kBlockMapName;
  blockmap_sink.Commit(record.blockmap);
  record.file_bytes = totals.logical_bytes;
  if (delta) {
    Log(LogLevel::kInfo, "{} of {} files' data changed since {}: stored {} blocks", FormatBytes(totals.stored_bytes),
        FormatBytes(totals.logical_bytes), record.reference, totals.stored_blocks);
  }
  progress.Finish();
  // After COPY: the end position, then command completion.
  for (;;) {
    auto result = NextResult(conn, "end position");
    if (!result) break;
    if (PQresultStatus(result.get()) == PGRES_TUPLES_OK && PQntuples(result.get()) == 1 &&
        PQnfields(result.get()) >= 2) {
      record.stop_lsn = ParseLsn(PQgetvalue(result.get(), 0, 0));
      record.stop_timeline = ParseNumber<uint32_t>(
          PQgetvalue(result.get(), 0, 1), ErrorCode::kPostgres, "BASE_BACKUP's end timeline");
    }
  }
  record.stop_time = NowSeconds();
  if (record.stop_lsn == 0 || record.archives.empty()) {
    Fail(ErrorCode::kPostgres, "BASE_BACKUP ended without an end position or any archive");
  }
  if (manifest_text.empty()) Fail(ErrorCode::kPostgres, "BASE_BACKUP sent no backup manifest");
  ParseManifest(manifest_text, "backup manifest of " + record.label);  // checks its checksum
  record.manifest = WriteSmallObject(
      storage, config, BackupObjectKey(sysid, record.label, kManifestName), manifest_text);
  record.wal_start = SegmentFileName(record.timeline, record.start_segno(), record.segment_size);
  record.wal_stop = SegmentFileName(record.stop_timeline, record.stop_segno(), record.segment_size);
  Log(LogLevel::kInfo, "backup stopped at {}; waiting for WAL {} .. {} in the archive",
      FormatLsn(record.stop_lsn), record.wal_start, record.wal_stop);

  if (from_standby && !options.primary_conninfo.empty()) {
    SwitchPrimaryWal(options.primary_conninfo, record);
  }
  // A standby does not archive (archive_mode = always aside): watch the primary's archiver.
  ArchiverWatch archiver(from_standby && !options.primary_conninfo.empty()
                             ? options.primary_conninfo
                             : options.conninfo);
  auto missing = WaitForWal(storage, sysid, RequiredWal(record), options.wal_timeout_seconds,
                            [&archiver] { archiver.Poll(/*now=*/false); });
  if (!missing.empty()) archiver.Poll(/*now=*/true);
  record.complete = missing.empty();
  // A prune that ran meanwhile may have removed the chain (it does not see a
  // backup before its record exists): such a backup is never recorded.
  if (delta) RecheckChain(storage, config, record);
  WriteSmallObject(storage, config, BackupObjectKey(sysid, record.label, kRecordName),
                   ToJson(record).dump(2) + "\n");
  if (!missing.empty()) {
    throw Error(
        ErrorCode::kVerifyFailed,
        fmt::format(
            "backup {} is incomplete: WAL {} not in {} after {:.0f} s", record.label,
            missing.front() +
                (missing.size() > 1 ? fmt::format(" (and {} more)", missing.size() - 1) : ""),
            storage.Describe(), options.wal_timeout_seconds),
        archiver.failure().empty()
            ? "check archive_mode = on, archive_command = 'walpush %p' and pg_stat_archiver; "
              "the backup cannot be restored without that WAL"
            : "PostgreSQL " + archiver.failure() +
                  "; its server log says why. The backup cannot be restored without that WAL");
  }
  return record;
}

}  // namespace walstore::backup
