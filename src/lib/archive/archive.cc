#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/object_format.h>
#include <walstore/prefetch.h>
#include <walstore/repositories.h>
#include <walstore/wal_file.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "archive/local_wal.h"
#include "common/file_util.h"

namespace walstore {
namespace {

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

std::string ObjectName(const Storage& storage, const std::string& key) {
  return fmt::format("{}/{}", storage.Describe(), key);
}

// Encodes `file` in one pass and publishes it under `key` without overwrite.
// The digest is known only at the end: the encoder rewrites the object's
// header with it, and it goes into metadata where the backend can still
// take it (S3 single PUT).
StoreResult EncodeAndCommit(Storage& storage, const Config& config, LocalFile& file,
                            const std::string& key, bool require_unchanged,
                            const std::string& identity) {
  WriteOptions options;
  options.size_hint = file.size;
  auto writer = storage.Create(key, options);
  EncodeOptions encode;
  encode.compression = config.compression;
  encode.key = config.key ? &*config.key : nullptr;
  encode.chunk_size = config.chunk_size;
  encode.threads = WorkerThreads(config.parallel, kDefaultEncodeThreadsCap);
  encode.identity = identity;
  encode.rewrite_header = [&writer](Bytes header) { writer->RewriteHead(header); };
  ObjectEncoder encoder(*writer, encode);
  file.reader.Rewind();  // the same open file may go to several repositories
  // One read fills a whole batch of chunks, which the encoder seals in place.
  Copy(file.reader, encoder, static_cast<size_t>(encode.chunk_size) * encode.threads);
  encoder.Finish();
  writer->SetMetadata({{kMetaSha256, ToHex(encoder.plaintext_sha256())},
                       {kMetaSize, std::to_string(encoder.plaintext_size())}});
  StoreResult result;
  result.plaintext_size = encoder.plaintext_size();
  result.sha256 = encoder.plaintext_sha256();
  result.stored_size = encoder.encoded_size();
  if (require_unchanged) file.CheckUnchanged();  // else the writer is dropped: nothing stored
  result.commit = writer->Commit();
  return result;
}

// Passes the plaintext on and keeps its first bytes (a WAL long page header).
class HeadKeepingStream : public WriteStream {
 public:
  explicit HeadKeepingStream(WriteStream& next) : next_(next) {}
  void Write(Bytes data) override {
    const size_t n = std::min(data.size(), head_.size() - head_size_);
    std::memcpy(head_.data() + head_size_, data.data(), n);
    head_size_ += n;
    next_.Write(data);
  }
  void Finish() override { next_.Finish(); }
  Bytes head() const { return Bytes(head_.data(), head_size_); }

 private:
  WriteStream& next_;
  std::array<uint8_t, kWalLongHeaderSize> head_{};
  size_t head_size_ = 0;
};

class DiscardStream : public WriteStream {
 public:
  void Write(Bytes) override {}
  void Finish() override {}
};

// Decodes the object already stored under `key` completely.  Anything that
// keeps it from decoding to verified plaintext under this name is
// kArchivedDamaged; repository errors pass through unchanged.
// nullopt when the object is gone.
struct DecodedObject {
  uint64_t plaintext_size = 0;
  Sha256Digest sha256{};
};
std::optional<DecodedObject> DecodeExisting(Storage& storage, const Config& config,
                                            const std::string& key) {
  auto reader = storage.OpenRead(key);
  if (!reader) return std::nullopt;  // removed since the commit found it
  try {
    ObjectDecoder decoder(*reader, DecodeOptionsFor(config), key, ObjectName(storage, key));
    DiscardStream discard;
    decoder.DecodeTo(discard);
    return DecodedObject{decoder.plaintext_size(), decoder.plaintext_sha256()};
  } catch (const Error& e) {
    const ErrorCode code = e.code();
    if (code != ErrorCode::kCorrupt && code != ErrorCode::kWrongKey &&
        code != ErrorCode::kMisplaced && code != ErrorCode::kUnauthenticated) {
      throw;
    }
    throw Error(ErrorCode::kArchivedDamaged,
                fmt::format("the object already archived under this name cannot be verified, "
                            "so the local file is not reported as archived: {} [{}]",
                            e.what(), InfoFor(code).name),
                fmt::format("{}{}The local file stays in pg_wal until archiving succeeds. Once "
                            "the cause is clear, move the damaged object aside (mv, or aws s3 "
                            "mv to another key; see docs/operations.md, \"Damaged archived "
                            "object\"): PostgreSQL's next retry archives the local copy again",
                            e.hint(), e.hint().empty() ? "" : ". "));
  }
}

}  // namespace

DecodeOptions DecodeOptionsFor(const Config& config) {
  DecodeOptions options;
  options.keys = config.ReadKeys();
  options.allow_plaintext = config.allow_plaintext_objects;
  return options;
}

Config CopySourceConfig(const Config& config) {
  Config source = config;
  if (!source.ReadKeys().empty()) source.allow_plaintext_objects = false;
  return source;
}

LocalFile::LocalFile(const std::string& p) : path(p), reader(p) {
  if (fstat(reader.fd(), &stat_at_open) != 0) {
    FailErrno(errno, fmt::format("could not stat \"{}\"", path));
  }
  if (!S_ISREG(stat_at_open.st_mode)) Fail(ErrorCode::kNotWal, "\"{}\" is not a regular file", path);
  size = static_cast<uint64_t>(stat_at_open.st_size);
  struct statx stx {};
  if (statx(reader.fd(), "", AT_EMPTY_PATH, STATX_BTIME, &stx) == 0 &&
      (stx.stx_mask & STATX_BTIME) != 0) {
    birth_time_ns = static_cast<int64_t>(stx.stx_btime.tv_sec) * 1000000000 + stx.stx_btime.tv_nsec;
  }
  const ssize_t n = pread(reader.fd(), head.data(), head.size(), 0);
  if (n < 0) FailErrno(errno, fmt::format("could not read \"{}\"", path));
  head_size = static_cast<size_t>(n);
}

void LocalFile::CheckUnchanged() const {
  struct stat now {};
  if (fstat(reader.fd(), &now) != 0) FailErrno(errno, fmt::format("could not stat \"{}\"", path));
  if (!SameFile(stat_at_open, now)) {
    throw Error(ErrorCode::kLocalIo,
                fmt::format("\"{}\" changed while it was being archived ({} bytes, now {}); "
                            "nothing was stored",
                            path, stat_at_open.st_size, now.st_size),
                "a finished WAL file must not change: check that nothing else writes to pg_wal");
  }
}

std::string ArchivePrefix(uint64_t system_id) { return fmt::format("{}/", system_id); }
std::string WalPrefix(uint64_t system_id) { return fmt::format("{}/wal/", system_id); }
std::string BackupPrefix(uint64_t system_id) { return fmt::format("{}/backup/", system_id); }

std::string WalObjectKey(uint64_t system_id, const WalFileName& name) {
  if (name.kind == WalFileKind::kHistory) return WalPrefix(system_id) + name.text;
  return fmt::format("{}{}/{}", WalPrefix(system_id), name.TimelineLogPrefix(), name.text);
}

uint64_t ResolveSystemId(const Config& config, const std::string& data_dir) {
  const std::optional<uint64_t> control = ReadControlFileSystemId(data_dir);
  char cwd[4096];
  const std::string where = data_dir == "." && getcwd(cwd, sizeof cwd) ? cwd : data_dir;
  if (config.system_id && control && *control != *config.system_id) {
    // Another cluster's WAL would be restored into this one (PostgreSQL
    // takes it for the end of the WAL), or this one's history files archived
    // where its restores never look.
    throw Error(ErrorCode::kSystemIdMismatch,
                fmt::format("the data directory \"{}\" belongs to cluster {} (global/pg_control), "
                            "but system_id is set to {}",
                            where, *control, *config.system_id),
                "WAL of two clusters must not mix: remove system_id / WALSTORE_SYSTEM_ID / "
                "--system-id (it is only needed outside a data directory) or correct it");
  }
  if (config.system_id) return *config.system_id;
  if (control) return *control;
  throw Error(ErrorCode::kConfig,
              fmt::format("cannot tell which cluster's archive to use: no global/pg_control in "
                          "\"{}\"",
                          where),
              "run from the data directory (PostgreSQL does), or set system_id / "
              "WALSTORE_SYSTEM_ID to the value pg_controldata prints");
}

StoreResult StoreFileObject(Storage& storage, const Config& config, const std::string& path,
                            const std::string& key, const std::string& identity) {
  LocalFile file(path);
  return EncodeAndCommit(storage, config, file, key, false, identity.empty() ? key : identity);
}

WalFileToPush::WalFileToPush(const Config& config, const std::string& path)
    : name(ParseWalFileNameOrThrow(BaseName(path))), file(path) {
  const bool has_wal_header = name.kind == WalFileKind::kSegment ||
                              name.kind == WalFileKind::kPartial;
  if (has_wal_header) {
    auto header = ParseWalLongHeader(Bytes(file.head.data(), file.head_size));
    if (!header) {
      Fail(ErrorCode::kNotWal, "\"{}\" does not start with a WAL long page header ({} bytes)",
           path, file.size);
    }
    CheckSegmentHeader(*header, name, file.size, path);
    if (config.system_id && *config.system_id != header->system_id) {
      throw Error(ErrorCode::kSystemIdMismatch,
                  fmt::format("{} belongs to cluster {}, but system_id is set to {}", name.text,
                              header->system_id, *config.system_id),
                  "WAL of two clusters must not share an archive: fix system_id / "
                  "WALSTORE_SYSTEM_ID or the repository");
    }
    system_id = header->system_id;
  } else {
    system_id = ResolveSystemId(config, ".");
  }
  key = WalObjectKey(system_id, name);
}

PushResult PushWalFile(Storage& storage, const Config& config, const std::string& path) {
  WalFileToPush wal(config, path);
  RemoveStalePrefetch(path);  // what a finished recovery left in pg_wal
  return PushOpenedWalFile(storage, config, wal);
}

PushResult PushOpenedWalFile(Storage& storage, const Config& config, WalFileToPush& wal) {
  PushResult result;
  result.name = wal.name;
  result.system_id = wal.system_id;
  result.key = wal.key;
  const StoreResult stored = EncodeAndCommit(storage, config, wal.file, result.key, true, result.key);
  result.sha256 = stored.sha256;
  result.plaintext_size = stored.plaintext_size;
  result.stored_size = stored.stored_size;
  if (stored.commit == CommitResult::kCreated) {
    result.outcome = PushOutcome::kStored;
    return result;
  }
  // Test before overwrite: the key was taken.  Success only when the stored
  // object decodes completely, under this name, to the very same plaintext.
  const auto existing = DecodeExisting(storage, config, result.key);
  if (!existing) {
    throw Error(ErrorCode::kStorageTransient,
                fmt::format("{} existed when {} was stored, and is gone now",
                            ObjectName(storage, result.key), result.name.text),
                "something removes objects from the repository while walpush runs (prune?)");
  }
  if (existing->plaintext_size == stored.plaintext_size && existing->sha256 == stored.sha256) {
    result.outcome = PushOutcome::kAlreadyArchived;
    return result;
  }
  throw Error(
      ErrorCode::kConflict,
      fmt::format("{} is already archived with different content (archived {} bytes with "
                  "SHA-256 {}, local {} bytes with SHA-256 {}); the archived object {} was left "
                  "untouched",
                  result.name.text, existing->plaintext_size, ToHex(existing->sha256),
                  stored.plaintext_size,
                  ToHex(stored.sha256), ObjectName(storage, result.key)),
      "another server with the same system identifier and timeline archived this segment "
      "first: a clone or restored copy started as a primary, a standby made writable without "
      "promotion, or two restores that picked the same timeline. Decide which copy belongs to "
      "the history you keep (see docs/operations.md); to keep this server's, move the archived "
      "object aside (mv, or aws s3 mv) and archiving resumes; otherwise give this cluster its "
      "own repository or prefix");
}

bool RestoreObjectToFile(Storage& storage, const Config& config, const std::string& key,
                         const std::string& dest_path, uint64_t* plaintext_size,
                         const ExpectedWal* expected) {
  auto reader = storage.OpenRead(key);
  if (!reader) return false;
  ObjectDecoder decoder(*reader, DecodeOptionsFor(config), key, ObjectName(storage, key));
  AtomicFileWriter out(dest_path, 0600, false);
  HeadKeepingStream sink(out);
  decoder.DecodeTo(sink);
  const bool has_wal_header = expected != nullptr &&
                              (expected->name.kind == WalFileKind::kSegment ||
                               expected->name.kind == WalFileKind::kPartial);
  if (has_wal_header) {
    if (auto mismatch = WalContentMismatch(sink.head(), decoder.plaintext_size(), expected->name,
                                           expected->system_id)) {
      throw Error(ErrorCode::kMisplaced,
                  fmt::format("{} does not hold {} of cluster {}: {}; nothing was restored",
                              ObjectName(storage, key), expected->name.text, expected->system_id,
                              *mismatch),
                  "the object under this name is another WAL file (copied or moved there, or "
                  "an object of a build without name binding): recovery must not use it; find "
                  "the right segment in another copy of the archive");
    }
  }
  out.Publish(true);  // only after the decoder verified the end record
  if (plaintext_size != nullptr) *plaintext_size = decoder.plaintext_size();
  return true;
}

FetchResult FetchWalFile(Storage& storage, const Config& config, const std::string& name,
                         const std::string& dest_path) {
  RepositorySet one(config, storage);
  return FetchWalFileFromRepositories(one, name, dest_path);
}

}  // namespace walstore
