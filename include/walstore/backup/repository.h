// What walctl keeps in a repository, next to the WAL archive (archive.h):
//
//   <system-id>/backup/<label>/base.tar         tar of the data directory
//   <system-id>/backup/<label>/<oid>.tar        one tar per tablespace
//   <system-id>/backup/<label>/backup_manifest  PostgreSQL's backup manifest
//   <system-id>/backup/<label>/backup.json      the backup record, written last
//   <system-id>/backup/<label>/blockmap         block hashes of every file (delta.h)
//   <system-id>/backup/<label>/base.delta       diff / incr: changed blocks only,
//   <system-id>/backup/<label>/<oid>.delta      instead of base.tar / <oid>.tar
//
// A full backup's record is of format 1 (as before block maps existed); a
// diff or incr record is of format 2, which a walctl that predates it
// refuses (kUnsupportedFormat) instead of restoring a delta as a full.
//
// Every object is in the walstore object format (compressed / encrypted like
// WAL), backup.json included: restore trusts it for which backup "latest" is
// and for the tars' checksums, so with a key it must be authenticated (an
// unencrypted backup.json is refused, kUnauthenticated, unless
// allow_plaintext_objects).  list, status, prune and verify therefore need
// the key when the repository is encrypted.  A backup exists once its record exists; objects under a label
// without a record are an interrupted backup (or prune) and are ignored.
#pragma once

#include <walstore/config.h>
#include <walstore/storage.h>
#include <walstore/wal_name.h>

#include <cstdint>
#include <ctime>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace walstore::backup {

inline constexpr const char* kRecordName = "backup.json";
inline constexpr const char* kManifestName = "backup_manifest";
inline constexpr const char* kBlockMapName = "blockmap";
inline constexpr int kRecordFormat = 1;       // full backups
inline constexpr int kDeltaRecordFormat = 2;  // diff and incr backups

// What a backup holds.  A diff refers to the newest full backup, an incr to
// the newest backup of any type; both store only what changed since their
// reference (delta.h), so restoring one needs its whole chain.
enum class BackupType { kFull, kDiff, kIncr };
const char* ToString(BackupType type);
// "full", "diff", "incr"; nullopt for anything else.
std::optional<BackupType> ParseBackupType(std::string_view text);

// One stored object of a backup: a tablespace tar or the manifest.
struct BackupObject {
  std::string name;             // "base.tar", "16385.tar", "backup_manifest"
  uint32_t tablespace_oid = 0;  // 0 for base.tar and the manifest
  std::string tablespace_path;  // original location of a tablespace
  uint64_t size = 0;            // plaintext bytes
  uint64_t stored_size = 0;     // bytes in the repository
  std::string sha256;           // plaintext SHA-256, hex
};

struct BackupRecord {
  std::string label;
  bool complete = false;  // required WAL verified present in the archive
  uint64_t system_id = 0;
  int pg_version = 0;     // server_version_num, e.g. 150004
  uint32_t timeline = 0;  // at start
  uint32_t stop_timeline = 0;
  uint64_t start_lsn = 0;
  uint64_t stop_lsn = 0;
  double start_time = 0;  // seconds since the epoch
  double stop_time = 0;
  uint64_t segment_size = 0;
  std::string wal_start;           // first segment needed
  std::string wal_stop;            // last segment needed
  std::string manifest_checksums;  // algorithm used in the manifest
  std::string compression;         // e.g. "lz4"
  std::string key_id;              // "" when not encrypted
  std::vector<BackupObject> archives;  // tars (full) or delta archives (diff, incr)
  BackupObject manifest;
  BackupType type = BackupType::kFull;
  std::string reference;           // diff / incr: the backup it was compared with
  std::vector<std::string> chain;  // diff / incr: the full backup .. `reference`
  // diff / incr: the identity of `reference` when it was compared with (a
  // label alone may be reused once its backup is gone).
  std::string reference_blockmap_sha256;  // its block map's plaintext SHA-256, hex
  uint64_t reference_start_lsn = 0;
  BackupObject blockmap;           // name "" when none (older walctl, or a full before it)
  uint64_t file_bytes = 0;         // data of the backup's files; 0 when not recorded

  uint64_t logical_size() const;   // file_bytes, else size()

  uint64_t size() const;         // plaintext bytes of all archives
  uint64_t stored_size() const;  // repository bytes of every object
  uint64_t start_segno() const;
  uint64_t stop_segno() const;
};

nlohmann::json ToJson(const BackupRecord& record);
BackupRecord RecordFromJson(const nlohmann::json& json, const std::string& what);

std::string BackupDirKey(uint64_t system_id, const std::string& label);  // ".../<label>/"
std::string BackupObjectKey(uint64_t system_id, const std::string& label, const std::string& name);

// Throws Error(kUsage) unless `label` is 1..64 of [A-Za-z0-9_.-] not starting with '.'.
void ValidateLabel(const std::string& label);

// All backup records of a cluster, oldest first (by start time).
std::vector<BackupRecord> LoadBackups(Storage& storage, const Config& config, uint64_t system_id);

// Labels that have objects but no record (interrupted backups).
std::vector<std::string> OrphanLabels(Storage& storage, uint64_t system_id,
                                      const std::vector<BackupRecord>& records);

// "latest" (newest complete backup, or with `target_time` / `target_lsn`
// the newest complete backup that ended before it) or an exact label.
// Throws Error(kUsage) when nothing matches, saying what exists.
const BackupRecord& SelectBackup(const std::vector<BackupRecord>& records, const std::string& which,
                                 std::optional<double> target_time = std::nullopt,
                                 std::optional<uint64_t> target_lsn = std::nullopt);

// The backups restoring `backup` reads, oldest (the full) first and
// `backup` last: its chain's records.  Throws Error(kCorrupt) when one is
// not in `records`, does not match the chain `backup` recorded (types and
// references), or is not the very backup its successor was compared with
// (block map SHA-256 and start LSN: a re-created backup under a reused
// label is refused).
std::vector<const BackupRecord*> RestoreChain(const std::vector<BackupRecord>& records,
                                              const BackupRecord& backup);
// What makes RestoreChain refuse `backup`; "" when its chain is whole.
std::string ChainProblem(const std::vector<BackupRecord>& records, const BackupRecord& backup);

// Decodes a (small) object to a string; nullopt when the key does not exist.
std::optional<std::string> ReadSmallObject(Storage& storage, const Config& config,
                                           const std::string& key);
// Encodes `data` and publishes it under `key` (never overwriting: an existing
// key throws Error(kConflict)).  Returns the object's description.
BackupObject WriteSmallObject(Storage& storage, const Config& config, const std::string& key,
                              std::string_view data);

// A WAL archive object.
struct WalObject {
  WalFileName name;
  std::string key;
  uint64_t size = 0;
  std::time_t modified = 0;
};
// All WAL archive objects of a cluster where walfetch looks for them (at
// WalObjectKey of their name; names that do not parse are skipped).  An
// object named like WAL somewhere else is not listed: restores never see it,
// so counting it would hide a gap.  It goes to *misplaced when given.
std::vector<WalObject> ListWal(Storage& storage, uint64_t system_id,
                               std::vector<WalObject>* misplaced = nullptr);

// The cluster whose repository walctl works on: config.system_id, else the
// pg_control of `pgdata` when given, else the only system id in the
// repository.  Throws Error(kConfig) saying what to set when ambiguous.
uint64_t DiscoverSystemId(Storage& storage, const Config& config, const std::string& pgdata);

// The parsed lines of a timeline history file: {parent tli, switch LSN}.
struct TimelineSwitch {
  uint32_t timeline = 0;
  uint64_t switch_lsn = 0;
};
std::vector<TimelineSwitch> ParseHistory(std::string_view text);

}  // namespace walstore::backup
