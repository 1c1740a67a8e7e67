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
// ignores; the next copy removes its objects and starts again.  Every object
// copied is read back from the destination and verified (its plaintext
// SHA-256 and size) before the record is written, so "copied" never means
// "written but unreadable with the destination's key".
#pragma once

#include <walstore/backup/repository.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <cstdint>
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
};
// Decodes object `key` of `from` with its settings and keys (the key binds
// the identity), streaming.  Throws the decoder's error (kCorrupt,
// kWrongKey, kMisplaced, ...), and kCorrupt when the object does not exist.
StoredDigest DecodeStoredObject(const RepositoryRef& from, const std::string& key);

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

// Copies backup `record` of `from` into `to`, which must not hold its
// record: objects a previous interrupted copy left under the label are
// removed first, then every object is copied (CopyStoredObject) and the
// record, rewritten for the destination (compression, key id, stored
// sizes), is written last and read back.  Returns the destination's record.
// A diff or incr needs its chain in `to` already (the caller checks,
// ChainProblem).  Throws as CopyStoredObject does; kConflict when the
// destination gained a record for the label meanwhile.
// Moves object `key` of `storage` aside, unread and unchanged, to
// "<system-id>/damaged/<stamp>/<key without its system id>" (a name no
// listing of WAL or backups looks at) and returns that key: the bytes are
// copied as they are, then `key` is removed (no backend renames; a copy
// that fails leaves `key` where it was).  Throws kConflict when the
// quarantine key exists already.
std::string MoveAside(Storage& storage, uint64_t system_id, const std::string& key,
                      const std::string& stamp);

BackupRecord CopyBackup(const RepositoryRef& from, const RepositoryRef& to, uint64_t system_id,
                        const BackupRecord& record);

}  // namespace walstore::backup
