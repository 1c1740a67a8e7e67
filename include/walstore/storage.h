// Repository storage: the one small interface every backend implements.
//
// Backends live in src/lib/storage/<name>/ (posix, s3, and an in-memory one
// linked into the test binaries only) and are chosen by URL through
// OpenStorage():
//   file:///var/lib/walstore        -> posix
//   s3://bucket/prefix              -> s3 (settings from Config::s3)
// Any other scheme is a configuration error, unless a test registered it
// with RegisterStorageScheme().
//
// Keys are relative, '/'-separated paths without a leading '/', without "."
// or ".." components, without empty components ("a//b") and without
// components of the form ".<name>.walstore-tmp.*" (temp files).  Backends refuse
// any other key with Error(kInternal): keys come from walstore code, never
// straight from users.
//
// Absence is a value, not an exception: Stat() returns nullopt, OpenRead()
// returns nullptr and Remove() returns false for a key that does not exist.
// Everything else that goes wrong throws walstore::Error.
//
// Absence must be verified, never assumed: a backend answers "does not exist"
// only when the repository itself is positively there and positively lacks
// the key.  walfetch turns that answer into exit 1, which ends PostgreSQL's
// recovery, so anything short of proof throws instead:
//   posix  the root must be a directory holding the repository format file
//          (kRepositoryFormatFile) or, for repositories of earlier builds,
//          a "<digits>/wal" or "<digits>/backup" directory; a root that is
//          missing (an unmounted file system), a regular file or an unrelated
//          directory throws kNotARepository.  Only ENOENT inside a verified
//          repository is absence; ENOTDIR, EACCES, EIO, ... throw.
//   s3     a GET 404 is absence only with the S3 error code NoSuchKey; a HEAD
//          404 (no body) only once the bucket answered a listing in this
//          process.  NoSuchBucket, an HTML 404 from something that is not S3,
//          or any other status throws.
//
// Thread-safety: a Storage may be used from several threads at once; each
// ObjectWriter / ReadStream it returns is used by one thread at a time.
#pragma once

#include <walstore/stream.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace walstore {

struct Config;

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::time_t modified = 0;  // seconds since the epoch; 0 when unknown
  // User metadata stored with the object (S3 x-amz-meta-*, lower-case names
  // without the prefix).  Backends that have none (posix) return it empty.
  std::map<std::string, std::string> metadata;
};

struct WriteOptions {
  // Stored with the object where the backend supports metadata.
  std::map<std::string, std::string> metadata;
  // Size of the object when known in advance (lets S3 choose single PUT vs
  // multipart); 0 = unknown.
  uint64_t size_hint = 0;
  // Commit() replaces an object already under the key, in one step: a reader
  // sees the old object or the new one, never none (posix: rename over it;
  // s3: PUT without If-None-Match and no existence check; memory: assignment).
  // Only `walctl sync --repair` sets it, for an object it found damaged and
  // whose bytes it has copied aside; every other write keeps test-before-
  // overwrite.
  bool replace_existing = false;
  // The caller never calls RewriteHead (base backup archives: their header
  // carries no digest).  S3 then uploads part 1 of a multipart upload as soon
  // as it is full instead of holding it until Commit(): one part less in
  // memory.  RewriteHead on such a writer throws kInternal (s3).
  bool head_final = false;
};

enum class CommitResult {
  kCreated,        // the object is now visible under its key
  kAlreadyExists,  // another object already had the key; it was left untouched
                   // and what was written here was discarded
};

// A new object being written.  Nothing is visible under the key until
// Commit() returns kCreated.  Destroying a writer without Commit() (an
// exception, a cancelled push) discards everything written, and a process
// killed mid-write leaves no visible object either (at most an invisible
// temporary that the backend cleans up or that a later push ignores).
class ObjectWriter : public WriteStream {
 public:
  // Finish() is a no-op for writers; Commit() publishes.
  void Finish() override {}
  // Makes the object durable and visible under its key, never replacing an
  // existing object (posix: rename without replace; s3: If-None-Match: *;
  // memory: insert) unless WriteOptions::replace_existing.
  virtual CommitResult Commit() = 0;

  // Replaces the first head.size() bytes already written (at most 4096)
  // before Commit(); throws kInternal for more than was written.  Every
  // backend supports it (posix: pwrite; memory; s3: the single PUT's buffer or
  // part 1 of a multipart upload is held back until Commit()), so walpush
  // encodes a segment in one pass and still puts its digest in the header.
  virtual void RewriteHead(Bytes head) = 0;

  // Replaces the metadata given to Create(), for metadata known only at the
  // end (one-pass writes).  Takes effect where the backend stores metadata
  // and has not sent it yet (S3: a single PUT; a multipart upload has
  // already sent it); elsewhere it is ignored, so readers must not rely on
  // it being present.
  virtual void SetMetadata(const std::map<std::string, std::string>& /*metadata*/) {}
};

// What a writer that died mid-write left behind: never visible under a
// key, but it takes space (and S3 bills an incomplete multipart upload).
struct Leftover {
  std::string description;  // for messages: a path, or "key (upload id ...)"
  uint64_t size = 0;        // bytes; 0 when unknown
  std::time_t since = 0;    // last write (posix) or initiation (S3); 0 when unknown
  std::string location;     // posix: the temp file's path; s3: the upload's bucket key
  std::string upload_id;    // s3 only
};

enum class InitResult {
  kCreated,            // a new, empty repository is there now
  kAlreadyRepository,  // it was one already (posix: an earlier build's gets its format file)
  kNothingToCreate,    // the location answers and needs nothing created (s3: the bucket)
};

class Storage {
 public:
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  virtual ~Storage() = default;

  // nullopt when the key does not exist.
  virtual std::optional<ObjectInfo> Stat(const std::string& key) = 0;

  // nullptr when the key does not exist.  The stream yields the whole object.
  virtual std::unique_ptr<ReadStream> OpenRead(const std::string& key) = 0;

  // Starts a new object; see ObjectWriter.
  virtual std::unique_ptr<ObjectWriter> Create(const std::string& key,
                                               const WriteOptions& options = {}) = 0;

  // Calls `visit` for each object whose key starts with `prefix`, in
  // lexicographic key order.  `metadata` is not filled in by List.  Like
  // OpenRead, an empty result needs a verified repository (see above).
  virtual void List(const std::string& prefix,
                    const std::function<void(const ObjectInfo&)>& visit) = 0;

  // The distinct names one level below `prefix` ("" or a prefix ending in
  // '/'), objects and "directories" alike, without the prefix and without a
  // trailing '/', in lexicographic order; at most `limit` of them.  Costs
  // one directory read or one delimiter listing, whatever the number of
  // objects below: for quick looks such as "which clusters does this
  // repository hold".  Empty needs a verified repository, as for List.
  virtual std::vector<std::string> ListChildren(const std::string& prefix, size_t limit) = 0;

  // Whether any object's key starts with `prefix` (a prefix ending in '/'):
  // "does this repository hold anything of cluster X".  By default
  // ListObjectsAfter(prefix, "", 1): one request whatever the repository
  // holds (s3: a ListObjectsV2 without delimiter and max-keys=1, which every
  // S3 implementation answers correctly, unlike a delimiter listing on some
  // test servers; posix: a directory walk that stops at the first object).
  // false needs a verified repository, as for List.
  virtual bool AnyBelow(const std::string& prefix);

  // The first `limit` objects, in lexicographic key order, whose keys start
  // with `prefix` and sort after `after` ("" for from the start), with size
  // and modification time (no metadata): "is there anything later than X,
  // and since when".  s3: one ListObjectsV2 with start-after and
  // max-keys = limit (limit <= 1000); posix: a walk in key order that skips
  // the directories sorting wholly before `after` and stops at `limit`.
  // Empty needs a verified repository, as for List.
  virtual std::vector<ObjectInfo> ListObjectsAfter(const std::string& prefix,
                                                   const std::string& after, size_t limit);

  // Removes one object; false if it did not exist.
  virtual bool Remove(const std::string& key) = 0;

  // Removes many objects (S3 batch delete); missing keys are ignored.
  virtual void RemoveMany(const std::vector<std::string>& keys);

  // The leftovers of writers that are gone, at least `min_age_seconds` old:
  //   posix: temp files (".<name>.walstore-tmp.<pid>.<hex>") anywhere in the
  //          repository whose process is gone and that were not written for
  //          a minute, or whatever their PID, not written for min_age_seconds;
  //   s3:    multipart uploads under the prefix initiated min_age_seconds
  //          ago or earlier (ListMultipartUploads);
  //   memory and other backends: none (an empty list).
  // nullopt when the backend cannot tell (an S3 server without
  // ListMultipartUploads).  Throws like List() otherwise.
  virtual std::optional<std::vector<Leftover>> ListLeftovers(int64_t min_age_seconds);

  // Removes one leftover ListLeftovers() returned (posix: unlink; s3:
  // AbortMultipartUpload); false when it was gone already.
  virtual bool RemoveLeftover(const Leftover& leftover);

  // A human-readable location for messages, e.g. "file:///var/lib/walstore"
  // or "s3://bucket/prefix".  Never contains credentials.
  virtual std::string Describe() const = 0;


  // Makes the repository usable for writing.  Every writer calls it before
  // its first write or listing (Create() does it itself; walctl backup calls
  // it first).  A no-op where nothing needs creating (s3).  posix never
  // creates the root: a root that is missing (an unmounted file system; a
  // local directory in its place would take the segments the real
  // repository never gets) throws kNotARepository.  An existing root
  // becomes a repository when it is an empty directory (nothing in it but
  // walstore's temp files) or an earlier build's repository: it gets its
  // format file.  Any other directory throws kNotARepository.  Directories
  // below the root are created as keys need them, never the root itself.
  virtual void PrepareForWrites() {}

  // For `walctl init`: makes this location a repository, on purpose.
  //   posix: creates the root directory (mode 0750; with create_parents
  //          its missing parents too, else a missing parent throws
  //          kLocalIo), then PrepareForWrites();
  //   others (s3): nothing to create; proves the location answers a
  //          listing (s3: the bucket exists and the keys may list it),
  //          else throws as List() does.
  virtual InitResult Initialize(bool create_parents);
};

// The file a posix repository holds at its root, written on first use:
// {"walstore_repository_format": 1}.  Never a valid key of the repository
// (system ids are digits) and never listed.
inline constexpr const char* kRepositoryFormatFile = "walstore-repository.json";
inline constexpr int kRepositoryFormatVersion = 1;

// Opens the repository named by config.repo_url.  Throws Error(kConfig) for
// an unknown scheme or malformed URL.  Opening touches nothing; the checks
// above happen on first use.
std::unique_ptr<Storage> OpenStorage(const Config& config);

// The one spelling of a repository URL, for telling whether two URLs name
// the same repository: "file://" + the lexically normal absolute path
// ("/var/lib/x/", "file:///var/lib//./x" -> "file:///var/lib/x");
// "s3://bucket/prefix" without empty segments or a trailing '/'; another
// "<scheme>://..." without trailing '/'.  nullopt for a URL OpenStorage
// refuses as malformed.  It does not resolve symbolic links.
std::optional<std::string> NormalizeRepositoryUrl(const std::string& url);
// Whether `a` and `b` name the same repository (normalised as above; the
// texts themselves when either is malformed).
bool SameRepositoryUrl(const std::string& a, const std::string& b);

// Makes OpenStorage() accept "<scheme>://rest" URLs, opened by `open(rest)`.
// For test binaries (their main() registers the in-memory backend); the
// production programs register nothing.  An empty `open` removes the scheme.
void RegisterStorageScheme(const std::string& scheme,
                           std::function<std::unique_ptr<Storage>(const std::string& rest)> open);

// Throws Error(kInternal) unless `key` follows the key rules above.
void ValidateKey(const std::string& key);

}  // namespace walstore
