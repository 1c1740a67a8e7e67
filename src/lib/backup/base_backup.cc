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
#include <thread>

#include "backup/archiver_stats.h"
#include "backup/manifest.h"
#include "backup/pg_connection.h"
#include "backup/pipeline.h"
#include "backup/progress_reporter.h"
#include <walstore/backup/status.h>
#include <walstore/backup/util.h>

namespace walstore::backup {
namespace {

// One archive (tar) being streamed into the repository.
class ArchiveSink {
 public:
  ArchiveSink(Storage& storage, const Config& config, const std::string& key, int threads)
      : key_(key), writer_(storage.Create(key)) {
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
  void Write(Bytes data) { background_->Write(data); }
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
  bool exists = false;
  storage.List(BackupDirKey(sysid, record.label), [&](const ObjectInfo&) { exists = true; });
  if (exists) {
    Fail(ErrorCode::kConflict, "backup label '{}' is already used in {}", record.label,
         storage.Describe());
  }
  int threads = options.threads > 0 ? options.threads
                : config.parallel > 0
                    ? config.parallel
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::string command = fmt::format(
      "BASE_BACKUP (LABEL {}, PROGRESS, CHECKPOINT '{}', WAIT false, MANIFEST 'yes', "
      "MANIFEST_CHECKSUMS '{}', TARGET 'client'{})",
      SqlQuote("walctl " + record.label), options.fast_checkpoint ? "fast" : "spread",
      options.manifest_checksums,
      options.max_rate_kb ? fmt::format(", MAX_RATE {}", options.max_rate_kb) : "");
  Log(LogLevel::kInfo, "starting {} on system {}", command, sysid);
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
  auto copy = NextResult(conn, "copy");
  if (!copy || PQresultStatus(copy.get()) != PGRES_COPY_OUT) {
    Fail(ErrorCode::kPostgres, "BASE_BACKUP: the server did not start streaming the backup");
  }

  ProgressReporter progress(options.progress, total_estimate);
  std::unique_ptr<ArchiveSink> sink;
  std::string manifest_text;
  bool in_manifest = false;
  auto finish_archive = [&] {
    if (sink) {
      sink->Commit(record.archives.back());
      sink.reset();
    }
  };
  for (;;) {
    char* buffer = nullptr;
    int len = PQgetCopyData(conn.get(), &buffer, 0);
    if (len == -1) break;
    if (len == -2) conn.FailWith("error while receiving the backup");
    std::unique_ptr<char, void (*)(void*)> owned(buffer, PQfreemem);
    if (len < 1) continue;
    char type = buffer[0];
    const char* body = buffer + 1;
    size_t body_len = static_cast<size_t>(len) - 1;
    if (type == 'n') {
      finish_archive();
      std::string name(body, strnlen(body, body_len));
      std::string path = name.size() + 1 < body_len ? std::string(body + name.size() + 1) : "";
      BackupObject object;
      object.name = name;
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
      Log(LogLevel::kInfo, "receiving {}{}", name, path.empty() ? "" : " (" + path + ")");
      record.archives.push_back(object);
      sink = std::make_unique<ArchiveSink>(storage, config,
                                           BackupObjectKey(sysid, record.label, name), threads);
    } else if (type == 'm') {
      finish_archive();
      in_manifest = true;
    } else if (type == 'd') {
      if (in_manifest) {
        manifest_text.append(body, body_len);
      } else if (sink) {
        sink->Write(Bytes(reinterpret_cast<const uint8_t*>(body), body_len));
        progress.Advance(body_len);
      } else {
        Fail(ErrorCode::kPostgres, "BASE_BACKUP sent data before an archive header");
      }
    }  // 'p' (the server's count within the current tablespace) is not needed: 'd' counts.
  }
  finish_archive();
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
