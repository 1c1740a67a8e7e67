// Copying base backups between repositories (walctl sync, walctl backup
// --repo all).  Each repository keeps its own format: every object is
// decoded with the source's settings and keys, verified against the digest
// its backup record names, and encoded again with the destination's
// compression, chunk size and key, streaming (a few chunks in memory,
// whatever the object size).  Nothing is overwritten.
//
// A backup is copied object by object, backup.json last (with the
// destination's compression, key id and stored sizes): until the record is
// there, the destination holds an interrupted backup, which every reader
// ignores; the next copy keeps the objects that verify and copies the rest.  Every object
// copied is read back from the destination and verified (its plaintext
// SHA-256 and size) before the record is written, so "copied" never means
// "written but unreadable with the destination's key".
#pragma once

#include <walstore/backup/repository.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/storage.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace walstore::backup {

// One repository as a copy sees it: its storage and its settings (the
// key, compression and chunk size of [[repository]] N).
struct RepositoryRef {
  Storage& storage;
  const Config& config;
};

// The objects of `record`, backup.json excluded: the archives, the manifest
// and (when there is one) the block map, each with its plaintext size and
// SHA-256 as the record states them.
std::vector<const BackupObject*> RecordObjects(const BackupRecord& record);
std::vector<BackupObject*> RecordObjects(BackupRecord& record);

// True for the codes that mean the stored bytes are damaged (kCorrupt: does
// not decode, is missing, or is not what its record names; kMisplaced: holds
// another object).  Everything else (wrong key, unsupported format,
// unauthenticated, transient, network, local I/O) says nothing about the
// object and must never lead to replacing it.
bool IsDamage(ErrorCode code);

// True when `a` and `b` describe the same backup: label, cluster, type,
// start and stop LSN, and every object's name, plaintext size and SHA-256.
// What is about the repository (compression, key id, stored sizes) is not
// compared: the same backup copied elsewhere stays the same backup.
bool SameBackup(const BackupRecord& a, const BackupRecord& b);

// What decoding a stored object found: its plaintext size and SHA-256 (hex)
// and its stored (encoded) size.
struct StoredDigest {
  uint64_t size = 0;
  std::string sha256;
  uint64_t stored_size = 0;
  // Whether this copy may leave its repository as a copy source
  // (CopySourceConfig, archive.h): false for an unencrypted object in a
  // repository with a key, which that repository only tolerates
  // (allow_plaintext_objects).  Such a copy is intact where it is, but is
  // never copied out, so it is no repair source either.
  bool may_leave = true;
};
// Decodes object `key` of `from` with its settings and keys (the key binds
// the identity), streaming.  Throws the decoder's error (kCorrupt,
// kWrongKey, kMisplaced, ...), and kCorrupt when the object does not exist.
StoredDigest DecodeStoredObject(const RepositoryRef& from, const std::string& key);

// What a stored object is, checked once (one read, no Stat first).
struct StoredCheck {
  enum class State { kAbsent, kIntact, kDamaged };
  State state = State::kAbsent;
  StoredDigest digest;  // kIntact: what it decodes to
  std::string damage;   // kDamaged: what is wrong ("... [corrupt]")
};
// Decodes object `key` of `repository` (bound to `key`) and, with
// `expected`, compares its plaintext with it: kAbsent when there is no such
// object; kDamaged for a decoder error that IsDamage() and for plaintext
// that is not `expected`; kIntact otherwise.  Any other error (wrong key,
// unsupported format, unauthenticated, transient, network, local I/O) says
// nothing about the object and is thrown: the caller must not treat it as
// damage.  The one classification copy, repair and --verify use.
StoredCheck CheckStoredObject(const RepositoryRef& repository, const std::string& key,
                              const BackupObject* expected);

// Decodes object `key` of `from` and checks it against `expected` (plaintext
// size and SHA-256; the key binds the identity).  Streams; returns the
// stored (encoded) size.  Throws the decoder's error (kCorrupt, kWrongKey,
// kMisplaced, ...), and kCorrupt when the plaintext differs from `expected`
// or the object does not exist (a complete backup lacking an object).
uint64_t VerifyStoredObject(const RepositoryRef& from, const std::string& key,
                            const BackupObject& expected);

// Copies object `key` from `from` to `to` (the same key): decoded and
// verified against `expected` as VerifyStoredObject does, encoded with the
// destination's settings, published only after the source verified, then
// read back from `to` and verified.  Returns the destination's stored size.
// Throws kConflict when `to` already holds the key, else as
// VerifyStoredObject (a source failure) or the destination's errors.
uint64_t CopyStoredObject(const RepositoryRef& from, const RepositoryRef& to,
                          const std::string& key, const BackupObject& expected);

// The quarantine of cluster `system_id`: "<system-id>/damaged/".  sync keeps
// there, unchanged, what it must not delete: damaged copies a repair
// replaced (<stamp>/<key without system id>), objects under a backup label
// that were not that backup's, and replacements a failed repair staged
// (".new").  No listing of WAL or backups looks there; the objects stay
// until the operator removes them (docs/operations.md, "Objects kept
// aside").
std::string QuarantinePrefix(uint64_t system_id);
struct Quarantine {
  uint64_t objects = 0;
  uint64_t bytes = 0;                   // stored bytes
  std::optional<double> oldest;         // modification time, when the storage tells
};
// One listing of the quarantine.  Throws as Storage::List does.
Quarantine ListQuarantine(Storage& storage, uint64_t system_id);

// "20261130T015500Z": now in UTC, the quarantine directory's name.
std::string UtcStampNow();

// Writes the replacement of object `key` (bound to `key`) under the
// staging key it is given, in the destination, or throws.
using StageReplacement = std::function<void(const std::string& staged_key)>;

// Replaces the damaged object `key` of `to` by a replacement that `stage`
// writes (and that must verify against `expected`); `key` is never missing
// where it was damaged, not even for a moment:
//   1. `stage` writes the replacement under
//      "<system-id>/damaged/<stamp>/<key without system id>.new"; it is read
//      back and verified;
//   2. the object under `key` is checked again (CheckStoredObject): when it
//      verifies now, kConflict and nothing is touched; any other error is
//      thrown and nothing is touched;
//   3. when it is still damaged its bytes are copied unchanged to the
//      quarantine key (the same name without ".new"; a name no listing of
//      WAL or backups looks at), and the staged bytes then replace it in one
//      step (WriteOptions::replace_existing); when it is absent they are
//      published without replacing (kConflict if one appeared meanwhile);
//   4. `key` is read back and verified, and the staged copy removed.
// Returns the quarantine key ("" when `key` was absent).
std::string ReplaceDamagedObject(const RepositoryRef& to, uint64_t system_id,
                                 const std::string& key, const BackupObject& expected,
                                 const std::string& stamp, const StageReplacement& stage);
// The same with the replacement copied from the intact object of `from`
// (decoded as a copy source, verified against `expected`, encoded with
// `to`'s settings): how a backup object is repaired.
std::string ReplaceDamagedObject(const RepositoryRef& from, const RepositoryRef& to,
                                 uint64_t system_id, const std::string& key,
                                 const BackupObject& expected, const std::string& stamp);

// Copies backup `record` of `from` into `to`, which must not hold its
// record.  Nothing under the label is ever removed: an object already there
// (an interrupted or concurrent copy) is kept when it verifies against
// `record` (the copy resumes); one that does not (IsDamage: damaged, or
// another backup's) is moved aside unchanged to
// "<system-id>/damaged/<now, UTC>/..." (a WARNING) and copied anew; any
// other error reading it is thrown, nothing moved.  Every other object is copied
// (CopyStoredObject); the record, rewritten for the destination
// (compression, key id, stored sizes), is written last and read back, then
// every object it names is checked to be there (kCorrupt if one vanished).
// Returns the destination's record.  A diff or incr needs its chain in `to`
// already (the caller checks, ChainProblem).  Throws as CopyStoredObject
// does; kConflict when the destination gained a record for the label
// meanwhile.
BackupRecord CopyBackup(const RepositoryRef& from, const RepositoryRef& to, uint64_t system_id,
                        const BackupRecord& record);

}  // namespace walstore::backup
