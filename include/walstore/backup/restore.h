// walctl restore: a base backup from the repository into an empty data
// directory (or, with --delta, into an existing one: see RunRestore), set
// up to recover from the WAL archive to a target.
//
// Every tar is decoded and extracted as a stream (tar_reader.h); every file
// is checked against PostgreSQL's backup manifest (size and checksum) while
// it is written, and a file missing from the tars, or one the manifest does
// not know, fails the restore.  The required WAL range must be in the
// archive before anything is written.  Nothing is ever written outside DIR
// and the tablespace directories, whatever the backup holds (extract.h).  On failure everything written is
// removed again, so a half-restored directory is never left to be started.
// On success DIR holds recovery.signal and, appended to
// postgresql.auto.conf, restore_command (walfetch with this repository's
// settings) and the recovery_target_* settings, so `pg_ctl start` recovers
// with no hand editing.
//
// Thread-safety: RunRestore runs on the calling thread (it reads ahead with
// its own threads internally) and calls options.progress on it; `storage`
// and `config` are borrowed for the call.  A backup that does not exist is
// Error(kUsage) naming what exists; a damaged one is Error(kCorrupt).
#pragma once

#include <walstore/config.h>
#include <walstore/storage.h>

#include <map>
#include <optional>
#include <string>

#include <walstore/backup/progress.h>
#include <walstore/backup/repository.h>

namespace walstore::backup {

struct RecoveryTarget {
  std::optional<std::string> time;  // recovery_target_time
  std::optional<std::string> xid;   // recovery_target_xid
  std::optional<std::string> name;  // recovery_target_name
  std::optional<std::string> lsn;   // recovery_target_lsn
  bool immediate = false;           // recovery_target = 'immediate'
  std::string action;               // pause|promote|shutdown; "" = promote with a target
  std::string timeline;             // recovery_target_timeline; "" = server default (latest)
  bool exclusive = false;           // recovery_target_inclusive = off

  bool any() const { return time || xid || name || lsn || immediate; }
  // Throws Error(kUsage) for more than one target or a bad action.
  void Validate() const;
  // The postgresql.conf lines for this target.
  std::string ConfLines() const;
};

struct RestoreOptions {
  std::string backup = "latest";  // label or "latest"
  std::string target_dir;
  RecoveryTarget target;
  std::map<std::string, std::string> tablespace_map;  // original path -> new path
  std::string owner;            // user to own the files when run as root; "" = automatic
  std::string walfetch;         // path of walfetch; "" = next to walctl, else $PATH
  std::string restore_command;  // overrides the generated restore_command
  bool archive_off = false;     // write archive_mode = off
  // walctl restore --delta: update an existing data directory in place (see
  // RunRestore); a missing or empty target_dir is restored as without it.
  bool delta = false;
  // Decoder threads per archive; 0 (what walctl passes) = RunRestore resolves
  // WalctlJobs(config) once (--jobs, else parallel, else the usable CPUs) and
  // reports it in RestoreResult::jobs.
  int jobs = 0;
  ProgressCallback progress;   // empty = none (walstore/backup/progress.h)
};

struct RestoreResult {
  BackupRecord backup;
  uint64_t files = 0;
  uint64_t bytes = 0;  // file bytes restored, every one checked against the backup
  bool delta = false;  // an existing data directory was updated in place
  uint64_t bytes_written = 0;  // file bytes written (all of `bytes` unless delta)
  double seconds = 0;
  std::string restore_command;
  int jobs = 0;  // the decoder threads every archive was decoded with (and logged)
};

// With options.delta and a target_dir that holds files, the data directory
// there (a failed primary, an older restore) is updated in place instead:
// - refused (Error kUsage) when it holds postmaster.pid (a server runs in
//   it, or one crashed: stop it, or make sure none runs and remove the
//   file; the postmaster.pid of a killed delta restore, whose PID is gone,
//   is taken over), has no PG_VERSION (not a data directory), holds a
//   global/pg_control of another database system than the backup's, or
//   when the backup has tablespaces or no block map;
// - walctl then holds the directory with a postmaster.pid of its own
//   (O_EXCL, its PID: PostgreSQL refuses to start while that PID lives),
//   fails should it change, and removes it as the very last step;
// - first global/pg_control is removed and made durable (global/ and the
//   directory fsynced), so the directory cannot be started until a delta
//   restore completes (a failed one removes global/pg_control again); then
//   everything beneath it that is neither a regular file nor a directory
//   (symbolic links included, never followed), the old WAL and
//   recovery.signal, made durable too (pg_wal/ and the directory fsynced)
//   before any byte is written in place;
// - a file with more than one hard link is never written in place: its name
//   is unlinked and the file created afresh, whole;
// - every file of the backup is compared byte for byte, per 8 KiB, with
//   what is on disk and only differing blocks are written, then cut to its
//   size (a diff / incr: its full backup so, and each delta of the chain
//   applied on top as a normal restore does);
// - files and directories the backup does not hold are removed (pg_wal ends
//   empty, as after a normal restore);
// - every file is then read back from disk and checked against the
//   backup's block map and manifest, as a chain's restore does, and the
//   recovery settings are written as a normal restore writes them; as
//   root, files get the directory's own owner unless --owner says otherwise.
// A crash part-way leaves a directory a second delta restore repairs.
RestoreResult RunRestore(Storage& storage, const Config& config, uint64_t system_id,
                         const RestoreOptions& options);

// Decodes every tar of `backup` and checks every file against its manifest
// without writing anything (walctl verify --full).  For a diff / incr:
// decodes its delta archives and checks that they list exactly the files of
// its manifest, that every block they store hashes to the backup's own block
// map and, with `reference` (its reference's record; nullptr when missing),
// that every block they omit is the reference's block at that index in the
// reference's block map.  Returns the bytes checked; throws Error(kCorrupt)
// on the first problem.  `jobs`: decoder threads per archive (resolved once
// per run: RunVerify's).
uint64_t VerifyBackupContents(Storage& storage, const Config& config, const BackupRecord& backup,
                              const BackupRecord* reference, int jobs);

// Reads the block map object of `backup` to its end (streamed) and checks
// that it parses and has the SHA-256 its record names (walctl verify
// --full); throws Error(kCorrupt) otherwise or when it has none.
void VerifyBlockMap(Storage& storage, const Config& config, const BackupRecord& backup);

// The restore_command walfetch needs for this configuration.
std::string MakeRestoreCommand(const Config& config, const std::string& walfetch);

}  // namespace walstore::backup
