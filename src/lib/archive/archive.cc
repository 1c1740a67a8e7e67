#include <sys/stat.h>
#include <unistd.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/object_format.h>
#include <walstore/prefetch.h>
#include <walstore/wal_file.h>

#include <cerrno>
#include <charconv>
#include <thread>
#include <vector>

#include "common/file_util.h"

namespace walstore {
namespace {

// An open local file to store: its size and first bytes, read before any
// encoding so that a bad file is refused before anything is written.
struct LocalFile {
  explicit LocalFile(const std::string& p) : path(p), reader(p) {
    struct stat st {};
    if (fstat(reader.fd(), &st) != 0) FailErrno(errno, fmt::format("could not stat \"{}\"", path));
    if (!S_ISREG(st.st_mode)) Fail(ErrorCode::kNotWal, "\"{}\" is not a regular file", path);
    size = static_cast<uint64_t>(st.st_size);
    const ssize_t n = pread(reader.fd(), head.data(), head.size(), 0);
    if (n < 0) FailErrno(errno, fmt::format("could not read \"{}\"", path));
    head_size = static_cast<size_t>(n);
  }
  std::string path;
  FileReader reader;
  uint64_t size = 0;
  std::array<uint8_t, kWalLongHeaderSize> head{};
  size_t head_size = 0;
};

std::optional<Sha256Digest> ParseHexDigest(const std::string& hex) {
  if (hex.size() != 64) return std::nullopt;
  Sha256Digest digest;
  for (size_t i = 0; i < 32; ++i) {
    auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, digest[i], 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return std::nullopt;
  }
  return digest;
}

std::string ObjectName(const Storage& storage, const std::string& key) {
  return fmt::format("{}/{}", storage.Describe(), key);
}

int EncodeThreads(const Config& config) {
  if (config.parallel > 0) return config.parallel;
  return static_cast<int>(std::max(1u, std::min(4u, std::thread::hardware_concurrency())));
}

// Encodes `file` in one pass and publishes it under `key` without overwrite.
// The digest is known only at the end: the encoder rewrites the object's
// header with it, and it goes into metadata where the backend can still
// take it (S3 single PUT).
StoreResult EncodeAndCommit(Storage& storage, const Config& config, LocalFile& file,
                            const std::string& key) {
  WriteOptions options;
  options.size_hint = file.size;
  auto writer = storage.Create(key, options);
  EncodeOptions encode;
  encode.compression = config.compression;
  encode.key = config.key ? &*config.key : nullptr;
  encode.chunk_size = config.chunk_size;
  encode.threads = EncodeThreads(config);
  encode.rewrite_header = [&writer](Bytes header) { writer->RewriteHead(header); };
  ObjectEncoder encoder(*writer, encode);
  // One read fills a whole batch of chunks, which the encoder seals in place.
  Copy(file.reader, encoder, static_cast<size_t>(encode.chunk_size) * encode.threads);
  encoder.Finish();
  writer->SetMetadata({{kMetaSha256, ToHex(encoder.plaintext_sha256())},
                       {kMetaSize, std::to_string(encoder.plaintext_size())}});
  StoreResult result;
  result.plaintext_size = encoder.plaintext_size();
  result.sha256 = encoder.plaintext_sha256();
  result.stored_size = encoder.encoded_size();
  result.commit = writer->Commit();
  return result;
}

}  // namespace

std::string ArchivePrefix(uint64_t system_id) { return fmt::format("{}/", system_id); }
std::string WalPrefix(uint64_t system_id) { return fmt::format("{}/wal/", system_id); }
std::string BackupPrefix(uint64_t system_id) { return fmt::format("{}/backup/", system_id); }

std::string WalObjectKey(uint64_t system_id, const WalFileName& name) {
  if (name.kind == WalFileKind::kHistory) return WalPrefix(system_id) + name.text;
  return fmt::format("{}{}/{}", WalPrefix(system_id), name.TimelineLogPrefix(), name.text);
}

uint64_t ResolveSystemId(const Config& config, const std::string& data_dir) {
  if (config.system_id) return *config.system_id;
  if (auto id = ReadControlFileSystemId(data_dir)) return *id;
  char cwd[4096];
  const std::string where = data_dir == "." && getcwd(cwd, sizeof cwd) ? cwd : data_dir;
  throw Error(ErrorCode::kConfig,
              fmt::format("cannot tell which cluster's archive to use: no global/pg_control in "
                          "\"{}\"",
                          where),
              "run from the data directory (PostgreSQL does), or set system_id / "
              "WALSTORE_SYSTEM_ID to the value pg_controldata prints");
}

std::optional<Sha256Digest> StoredDigest(Storage& storage, const std::string& key) {
  auto info = storage.Stat(key);
  if (!info) return std::nullopt;
  if (auto it = info->metadata.find(kMetaSha256); it != info->metadata.end()) {
    if (auto digest = ParseHexDigest(it->second)) return digest;
  }
  auto reader = storage.OpenRead(key);
  if (!reader) return std::nullopt;
  const ObjectHeader header = ReadObjectHeader(*reader, ObjectName(storage, key));
  if (!header.has_digest) return std::nullopt;
  return header.plaintext_sha256;
}

StoreResult StoreFileObject(Storage& storage, const Config& config, const std::string& path,
                            const std::string& key) {
  LocalFile file(path);
  return EncodeAndCommit(storage, config, file, key);
}

PushResult PushWalFile(Storage& storage, const Config& config, const std::string& path) {
  PushResult result;
  result.name = ParseWalFileNameOrThrow(BaseName(path));
  LocalFile file(path);
  RemoveStalePrefetch(path);  // what a finished recovery left in pg_wal
  const bool has_wal_header = result.name.kind == WalFileKind::kSegment ||
                              result.name.kind == WalFileKind::kPartial;
  if (has_wal_header) {
    auto header = ParseWalLongHeader(Bytes(file.head.data(), file.head_size));
    if (!header) {
      Fail(ErrorCode::kNotWal, "\"{}\" does not start with a WAL long page header ({} bytes)",
           path, file.size);
    }
    CheckSegmentHeader(*header, result.name, file.size, path);
    if (config.system_id && *config.system_id != header->system_id) {
      throw Error(ErrorCode::kSystemIdMismatch,
                  fmt::format("{} belongs to cluster {}, but system_id is set to {}",
                              result.name.text, header->system_id, *config.system_id),
                  "WAL of two clusters must not share an archive: fix system_id / "
                  "WALSTORE_SYSTEM_ID or the repository");
    }
    result.system_id = header->system_id;
  } else {
    result.system_id = ResolveSystemId(config, ".");
  }
  result.key = WalObjectKey(result.system_id, result.name);

  const StoreResult stored = EncodeAndCommit(storage, config, file, result.key);
  result.sha256 = stored.sha256;
  result.plaintext_size = stored.plaintext_size;
  result.stored_size = stored.stored_size;
  if (stored.commit == CommitResult::kCreated) {
    result.outcome = PushOutcome::kStored;
    return result;
  }
  // Test before overwrite: the key was taken.  Same content is success.
  const auto existing = StoredDigest(storage, result.key);
  if (existing && *existing == stored.sha256) {
    result.outcome = PushOutcome::kAlreadyArchived;
    return result;
  }
  throw Error(
      ErrorCode::kConflict,
      fmt::format("{} is already archived with different content (archived SHA-256 {}, local "
                  "SHA-256 {}); the archived object {} was left untouched",
                  result.name.text, existing ? ToHex(*existing) : "unknown", ToHex(stored.sha256),
                  ObjectName(storage, result.key)),
      "another server with the same system identifier and timeline archived this segment "
      "first: a clone or restored copy started as a primary, a standby made writable without "
      "promotion, or two restores that picked the same timeline. Decide which copy belongs to "
      "the history you keep (see docs/operations.md); to keep this server's, move the archived "
      "object aside (mv, or aws s3 mv) and archiving resumes; otherwise give this cluster its "
      "own repository or prefix");
}

bool RestoreObjectToFile(Storage& storage, const Config& config, const std::string& key,
                         const std::string& dest_path, uint64_t* plaintext_size) {
  auto reader = storage.OpenRead(key);
  if (!reader) return false;
  const std::vector<Key> keys = config.ReadKeys();
  ObjectDecoder decoder(*reader, keys, ObjectName(storage, key));
  AtomicFileWriter out(dest_path, 0600, false);
  decoder.DecodeTo(out);
  out.Publish(true);  // only after the decoder verified the end record
  if (plaintext_size != nullptr) *plaintext_size = decoder.plaintext_size();
  return true;
}

FetchResult FetchWalFile(Storage& storage, const Config& config, const std::string& name,
                         const std::string& dest_path) {
  const WalFileName parsed = ParseWalFileNameOrThrow(name);
  const uint64_t system_id = ResolveSystemId(config, ".");
  FetchResult result;
  result.key = WalObjectKey(system_id, parsed);
  if (config.prefetch > 0) {
    result.plaintext_size = TakePrefetchedSegment(config, system_id, parsed, dest_path);
    if (result.plaintext_size > 0) {
      result.outcome = FetchOutcome::kRestored;
      result.prefetched = true;
      return result;
    }
  }
  result.outcome = RestoreObjectToFile(storage, config, result.key, dest_path, &result.plaintext_size)
                       ? FetchOutcome::kRestored
                       : FetchOutcome::kMissing;
  return result;
}

}  // namespace walstore
