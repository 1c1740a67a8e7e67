// The WAL archive: where objects live in a repository, and the two operations
// walpush and walfetch perform.  walctl uses the same layout.
//
// Repository layout (docs/format.md):
//   <system-id>/wal/<TTTTTTTTLLLLLLLL>/<segment>          segments, .partial, .backup
//   <system-id>/wal/<TTTTTTTT>.history                    timeline history
//   <system-id>/backup/<label>/...                        base backups (walctl)
// <system-id> is the cluster's system identifier in decimal, as
// pg_controldata prints it, so the WAL of two clusters never mixes.
#pragma once

#include <walstore/config.h>
#include <walstore/crypto.h>
#include <walstore/object_format.h>
#include <walstore/storage.h>
#include <walstore/wal_name.h>

#include <cstdint>
#include <string>

namespace walstore {

std::string ArchivePrefix(uint64_t system_id);             // "<id>/"
std::string WalObjectKey(uint64_t system_id, const WalFileName& name);
std::string WalPrefix(uint64_t system_id);                  // "<id>/wal/"
std::string BackupPrefix(uint64_t system_id);               // "<id>/backup/"

// Metadata names stored with every object (S3 x-amz-meta-*).
inline constexpr const char* kMetaSha256 = "walstore-sha256";
inline constexpr const char* kMetaSize = "walstore-size";

enum class PushOutcome {
  kStored,           // a new object was published
  kAlreadyArchived,  // an identical object was already there
  kPushedAhead,      // walpush's push-ahead worker had stored this very file (push_ahead.h)
};

struct PushResult {
  PushOutcome outcome = PushOutcome::kStored;
  WalFileName name;
  std::string key;
  uint64_t system_id = 0;
  uint64_t plaintext_size = 0;
  uint64_t stored_size = 0;
  Sha256Digest sha256{};
};

// Archives one file (walpush %p).  `path` may be relative (to the cwd, which
// is the data directory when PostgreSQL runs it).  Validates the name and,
// for segments, the size and long page header; learns the system id from the
// segment header (or config.system_id, or <cwd>/global/pg_control for files
// without one).  Test before overwrite: the existing object is decoded
// completely (with the configured keys, under its name); the same plaintext
// size and SHA-256 gives kAlreadyArchived, a valid object with other content
// throws kConflict naming both checksums, and one that does not decode
// (truncated, damaged, undecryptable, unauthenticated, stored for another
// name) throws kArchivedDamaged.  The stored object is left untouched.
PushResult PushWalFile(Storage& storage, const Config& config, const std::string& path);

enum class FetchOutcome { kRestored, kMissing };

struct FetchResult {
  FetchOutcome outcome = FetchOutcome::kMissing;
  uint64_t system_id = 0;  // the cluster asked for (config, else ./global/pg_control)
  std::string key;
  uint64_t plaintext_size = 0;
  bool prefetched = false;  // served from the read-ahead spool (prefetch.h)
};

// What readers accept under `config`: its keys (current first, then keys
// rotated out) and allow_plaintext_objects.
DecodeOptions DecodeOptionsFor(const Config& config);

// `config` as a source that `walctl sync` (and backup --repo all) copies
// objects out of: with a key, allow_plaintext_objects is off, so only objects
// that authenticated under its keys leave it.  An unencrypted object that
// such a repository merely tolerates (archived before encryption was turned
// on, or written by anyone with write access) is never re-encrypted into
// another repository, where it would look like what a key holder wrote.
Config CopySourceConfig(const Config& config);

// Restores one file (walfetch %f %p): `name` is %f, `dest_path` is %p.  The
// system id comes from config.system_id, else <cwd>/global/pg_control.  On
// kRestored, dest_path holds the verified plaintext, published atomically
// (temp file in the same directory, fsync, rename, directory fsync).  On
// kMissing nothing was written; kMissing means a verified absence (see
// storage.h), and when the repository holds nothing at all of the cluster a
// WARNING names the system id looked for and those the repository holds.
// Damage, a wrong key, an unauthenticated object or any repository error
// throws: the caller must not report that as missing.  A segment or .partial
// file whose WAL long page header does not name it (timeline, segment,
// cluster, size) throws kMisplaced, whichever way it came (repository or
// read-ahead spool).  With config.prefetch
// > 0 a segment that a prefetch worker already verified and spooled beside
// dest_path is moved into place instead (see prefetch.h); starting the next
// worker is the caller's business (walfetch does it).  A segment that no
// repository holds while later WAL of its timeline is archived (a hole)
// throws kArchiveGap instead of kMissing; that check reads pg_wal/<name>
// and standby.signal relative to the working directory (PostgreSQL's data
// directory for restore_command) and costs one more listing request per
// repository: see FetchWalFileFromRepositories.
FetchResult FetchWalFile(Storage& storage, const Config& config, const std::string& name,
                         const std::string& dest_path);

// Resolves the system id for commands that are not given a segment: config,
// then <data_dir>/global/pg_control.  Throws kConfig saying what to set.
uint64_t ResolveSystemId(const Config& config, const std::string& data_dir);

// The WAL file a restored object must hold (segments and .partial files:
// checked against their long page header before they are published).
struct ExpectedWal {
  WalFileName name;
  uint64_t system_id = 0;
};

// Reads the object under `key` to `dest_path` atomically (see FetchWalFile);
// false when the key does not exist.  With `expected` naming a segment or
// .partial file, the content's WAL long page header must match it, else
// kMisplaced and nothing is published.  Shared by walfetch and its read-ahead.
bool RestoreObjectToFile(Storage& storage, const Config& config, const std::string& key,
                         const std::string& dest_path, uint64_t* plaintext_size = nullptr,
                         const ExpectedWal* expected = nullptr);

// Encodes the local file `path` and publishes it under `key` with no
// overwrite; returns the commit result and fills the digest/sizes.  The
// object is bound to `identity` (default: `key`; a staged copy is stored
// under another key than the one it is for).
struct StoreResult {
  CommitResult commit = CommitResult::kCreated;
  uint64_t plaintext_size = 0;
  uint64_t stored_size = 0;
  Sha256Digest sha256{};
};
StoreResult StoreFileObject(Storage& storage, const Config& config, const std::string& path,
                            const std::string& key, const std::string& identity = {});

}  // namespace walstore
