// walctl backup: a base backup through the replication protocol.
//
// BASE_BACKUP (PostgreSQL 15 syntax, TARGET 'client') streams one tar per
// tablespace and the backup manifest in a single COPY OUT.  Each tar flows
// through an ObjectEncoder straight into Storage::Create, so memory is a few
// object chunks whatever the cluster's size.  The record (repository.h) is
// written last; it says "complete" only once every WAL segment from the
// start to the stop segment is present in the archive.  The server is told
// not to wait for its archiver (WAIT false): walctl waits itself, bounded by
// wal_timeout_seconds, and checks the repository it actually restores from.
//
// Thread-safety: RunBackup runs on the calling thread (compression uses its
// own worker threads internally) and calls options.progress on it; `storage`
// and `config` are borrowed for the call.  Two backups with the same label
// conflict (Error(kConflict)); nothing is ever overwritten.
#pragma once

#include <walstore/config.h>
#include <walstore/storage.h>

#include <functional>
#include <string>

#include <walstore/backup/progress.h>
#include <walstore/backup/repository.h>

namespace walstore::backup {

struct BackupOptions {
  std::string conninfo;         // libpq conninfo / URI; "" = PG* environment
  // When `conninfo` reaches a hot standby: the primary, over a normal
  // connection ("" = none).  After the backup walctl runs pg_switch_wal()
  // there, so the segment holding the backup's end is archived at once
  // instead of when the primary fills it.  Unused for a primary.
  std::string primary_conninfo;
  std::string label;            // "" = UTC time "20261121T112014Z"
  // kDiff: only what changed since the newest complete full backup; kIncr:
  // since the newest complete backup of any type (its reference, which must
  // have a block map: Error(kUsage) otherwise, or when none exists).
  BackupType type = BackupType::kFull;
  bool fast_checkpoint = true;  // CHECKPOINT 'fast' (else 'spread')
  std::string manifest_checksums = "CRC32C";
  double wal_timeout_seconds = 300;  // wait for the archive to hold the WAL range
  int threads = 0;                   // compression threads; 0 = config.parallel / cores
  uint64_t max_rate_kb = 0;          // MAX_RATE in kB/s; 0 = unlimited
  ProgressCallback progress;         // empty = none (walstore/backup/progress.h)
};

// Takes the backup.  On success returns the complete record.  When the WAL
// range does not reach the archive in time the record is stored as
// incomplete and Error(kVerifyFailed) is thrown.  A diff / incr whose
// chain is no longer restorable when it ends (a prune removed part of it
// meanwhile: RecheckChain) writes no record, removes its objects and
// throws Error(kVerifyFailed).
BackupRecord RunBackup(Storage& storage, const Config& config, const BackupOptions& options);

// The reference of a new diff (the newest complete full backup) or incr
// (the newest complete backup): `records` oldest first (LoadBackups).
// Throws Error(kUsage) when there is none, it has no block map or is of
// another PostgreSQL major version than `pg_version`, and Error(kCorrupt)
// when its own chain cannot be restored (ChainProblem): never an older
// backup instead, so one broken chain does not silently spread.
const BackupRecord& ChooseReference(const std::vector<BackupRecord>& records, BackupType type,
                                    int pg_version);

// Just before a diff / incr `record` is recorded: reloads the records and,
// unless its chain is still restorable, removes the objects stored under
// its label and throws Error(kVerifyFailed).
void RecheckChain(Storage& storage, const Config& config, const BackupRecord& record);

// "16MB" / "1GB" / "64kB" (SHOW wal_segment_size) -> bytes.
uint64_t ParseGucBytes(const std::string& text);

// Waits until every segment name in `names` is in the archive of
// `system_id`; returns the names still missing when the timeout expires.
// `on_poll` (may be empty) runs on this thread after each look that found
// WAL still missing, before the wait for the next (about twice a second).
std::vector<std::string> WaitForWal(Storage& storage, uint64_t system_id,
                                    const std::vector<std::string>& names, double timeout_seconds,
                                    const std::function<void()>& on_poll = {});

// Segment names from `record.wal_start` to `record.wal_stop`.
std::vector<std::string> RequiredWal(const BackupRecord& record);

}  // namespace walstore::backup
