#include <walstore/backup/copy.h>

#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/object_format.h>

#include <nlohmann/json.hpp>

#include <ctime>
#include <optional>

namespace walstore::backup {

namespace {

// Keeps nothing (a decode that only verifies).
class DiscardStream : public WriteStream {
 public:
  void Write(Bytes) override {}
  void Finish() override {}
};

std::string Where(const RepositoryRef& repository, const std::string& key) {
  return repository.storage.Describe() + ": " + key;
}

// What is wrong when the decoded plaintext is not what the record states;
// nullopt when it is.
std::optional<std::string> DigestMismatch(uint64_t size, const std::string& sha256,
                                          const RepositoryRef& repository, const std::string& key,
                                          const BackupObject& expected) {
  if (size == expected.size && sha256 == expected.sha256) return std::nullopt;
  return fmt::format("{} decodes to {} bytes with SHA-256 {}, but its backup record names {} "
                     "bytes with SHA-256 {}",
                     Where(repository, key), size, sha256, expected.size, expected.sha256);
}

// Throws kCorrupt unless the decoded plaintext is what the record states.
void CheckDigest(uint64_t size, const std::string& sha256, const RepositoryRef& repository,
                 const std::string& key, const BackupObject& expected) {
  if (auto mismatch = DigestMismatch(size, sha256, repository, key, expected)) {
    Fail(ErrorCode::kCorrupt, "{}", *mismatch);
  }
}

std::unique_ptr<ReadStream> OpenExisting(const RepositoryRef& repository, const std::string& key) {
  auto in = repository.storage.OpenRead(key);
  if (!in) Fail(ErrorCode::kCorrupt, "{} is missing", Where(repository, key));
  return in;
}

// Counts the bytes read from a stream (the encoded size).
class CountingReadStream : public ReadStream {
 public:
  explicit CountingReadStream(ReadStream& in) : in_(in) {}
  size_t Read(MutableBytes out) override {
    const size_t n = in_.Read(out);
    count_ += n;
    return n;
  }
  uint64_t count() const { return count_; }

 private:
  ReadStream& in_;
  uint64_t count_ = 0;
};

}  // namespace

std::vector<const BackupObject*> RecordObjects(const BackupRecord& record) {
  std::vector<const BackupObject*> objects;
  for (const auto& archive : record.archives) objects.push_back(&archive);
  objects.push_back(&record.manifest);
  if (!record.blockmap.name.empty()) objects.push_back(&record.blockmap);
  return objects;
}

std::vector<BackupObject*> RecordObjects(BackupRecord& record) {
  std::vector<BackupObject*> objects;
  for (auto& archive : record.archives) objects.push_back(&archive);
  objects.push_back(&record.manifest);
  if (!record.blockmap.name.empty()) objects.push_back(&record.blockmap);
  return objects;
}

bool SameBackup(const BackupRecord& a, const BackupRecord& b) {
  if (a.label != b.label || a.system_id != b.system_id || a.type != b.type ||
      a.start_lsn != b.start_lsn || a.stop_lsn != b.stop_lsn || a.reference != b.reference) {
    return false;
  }
  const auto objects_a = RecordObjects(a);
  const auto objects_b = RecordObjects(b);
  if (objects_a.size() != objects_b.size()) return false;
  for (size_t i = 0; i < objects_a.size(); ++i) {
    if (objects_a[i]->name != objects_b[i]->name || objects_a[i]->size != objects_b[i]->size ||
        objects_a[i]->sha256 != objects_b[i]->sha256) {
      return false;
    }
  }
  return true;
}

namespace {

// Whether an object of `from` with `header` may be copied out of it: what
// decodes under CopySourceConfig (only authenticated objects leave a
// repository with a key).
bool MayLeave(const RepositoryRef& from, const ObjectHeader& header) {
  if (header.cipher != Cipher::kNone) return true;
  const DecodeOptions source = DecodeOptionsFor(CopySourceConfig(from.config));
  return source.keys.empty() || source.allow_plaintext;
}

// Decodes the object read from `in` (stored under `key`) as the object
// `identity` (the key binds it; a staged replacement is stored under
// another key).
StoredDigest DecodeFrom(ReadStream& in, const RepositoryRef& from, const std::string& key,
                        const std::string& identity) {
  CountingReadStream counted(in);
  ObjectDecoder decoder(counted, DecodeOptionsFor(from.config), identity, Where(from, key));
  DiscardStream discard;
  decoder.DecodeTo(discard);
  return {decoder.plaintext_size(), ToHex(decoder.plaintext_sha256()), counted.count(),
          MayLeave(from, decoder.header())};
}

StoredDigest DecodeAs(const RepositoryRef& from, const std::string& key,
                      const std::string& identity) {
  return DecodeFrom(*OpenExisting(from, key), from, key, identity);
}

// Copies the stored bytes of `from_key` unchanged to `to_key` (which must
// not exist: kConflict).  `metadata` as the original object carries it.
void CopyStoredBytes(Storage& storage, const std::string& from_key, const std::string& to_key,
                     const WriteOptions& write = {}) {
  auto in = storage.OpenRead(from_key);
  if (!in) Fail(ErrorCode::kCorrupt, "{}: {} is missing", storage.Describe(), from_key);
  auto writer = storage.Create(to_key, write);
  Copy(*in, *writer);
  if (writer->Commit() != CommitResult::kCreated) {
    Fail(ErrorCode::kConflict, "{}: {} already exists", storage.Describe(), to_key);
  }
}

// "<system-id>/damaged/<stamp>/<key without its system id>": a name no
// listing of WAL or backups looks at.
std::string QuarantineKey(uint64_t system_id, const std::string& key, const std::string& stamp) {
  const std::string prefix = std::to_string(system_id) + "/";
  const std::string rest = key.rfind(prefix, 0) == 0 ? key.substr(prefix.size()) : key;
  return QuarantinePrefix(system_id) + stamp + "/" + rest;
}

// Copies the bytes of `key` unchanged to the quarantine and removes `key`.
std::string MoveToQuarantine(Storage& storage, uint64_t system_id, const std::string& key,
                             const std::string& stamp) {
  const std::string aside = QuarantineKey(system_id, key, stamp);
  CopyStoredBytes(storage, key, aside);
  storage.Remove(key);
  return aside;
}

WriteOptions DigestMetadata(const BackupObject& expected) {
  WriteOptions write;
  write.metadata[kMetaSha256] = expected.sha256;
  write.metadata[kMetaSize] = std::to_string(expected.size);
  return write;
}

// Decodes object `key` of `from`, verifies it against `expected` and stores
// it re-encoded (with `to`'s settings, bound to the identity `key`) under
// `dest_key` of `to`; published only once the source verified as a whole.
void EncodeCopy(const RepositoryRef& from, const RepositoryRef& to, const std::string& key,
                const std::string& dest_key, const BackupObject& expected) {
  auto in = OpenExisting(from, key);
  ObjectDecoder decoder(*in, DecodeOptionsFor(CopySourceConfig(from.config)), key,
                        Where(from, key));
  auto writer = to.storage.Create(dest_key, DigestMetadata(expected));
  EncodeOptions encode;
  encode.compression = to.config.compression;
  encode.key = to.config.key ? &*to.config.key : nullptr;
  encode.chunk_size = to.config.chunk_size;
  encode.identity = key;
  encode.rewrite_header = [&writer](Bytes header) { writer->RewriteHead(header); };
  ObjectEncoder encoder(*writer, encode);
  decoder.DecodeTo(encoder);
  // A damaged source throws above (or here) and the writer, destroyed,
  // discards the copy.
  CheckDigest(decoder.plaintext_size(), ToHex(decoder.plaintext_sha256()), from, key, expected);
  encoder.Finish();
  if (writer->Commit() != CommitResult::kCreated) {
    Fail(ErrorCode::kConflict, "{} already exists", Where(to, dest_key));
  }
}

}  // namespace

std::string QuarantinePrefix(uint64_t system_id) {
  return std::to_string(system_id) + "/damaged/";
}

Quarantine ListQuarantine(Storage& storage, uint64_t system_id) {
  Quarantine quarantine;
  storage.List(QuarantinePrefix(system_id), [&](const ObjectInfo& info) {
    ++quarantine.objects;
    quarantine.bytes += info.size;
    if (info.modified != 0) {
      const double modified = static_cast<double>(info.modified);
      if (!quarantine.oldest || modified < *quarantine.oldest) quarantine.oldest = modified;
    }
  });
  return quarantine;
}

std::string UtcStampNow() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

bool IsDamage(ErrorCode code) {
  return code == ErrorCode::kCorrupt || code == ErrorCode::kMisplaced;
}

StoredDigest DecodeStoredObject(const RepositoryRef& from, const std::string& key) {
  return DecodeAs(from, key, key);
}

uint64_t VerifyStoredObject(const RepositoryRef& from, const std::string& key,
                            const BackupObject& expected) {
  const StoredDigest found = DecodeStoredObject(from, key);
  CheckDigest(found.size, found.sha256, from, key, expected);
  return found.stored_size;
}

uint64_t CopyStoredObject(const RepositoryRef& from, const RepositoryRef& to,
                          const std::string& key, const BackupObject& expected) {
  EncodeCopy(from, to, key, key, expected);
  return VerifyStoredObject(to, key, expected);
}

StoredCheck CheckStoredObject(const RepositoryRef& repository, const std::string& key,
                              const BackupObject* expected) {
  StoredCheck check;
  auto in = repository.storage.OpenRead(key);
  if (!in) return check;  // kAbsent
  try {
    check.digest = DecodeFrom(*in, repository, key, key);
  } catch (const Error& error) {
    if (!IsDamage(error.code())) throw;  // says nothing about the object
    check.state = StoredCheck::State::kDamaged;
    check.damage = fmt::format("{} [{}]", error.what(), InfoFor(error.code()).name);
    return check;
  }
  if (expected != nullptr) {
    if (auto mismatch = DigestMismatch(check.digest.size, check.digest.sha256, repository, key,
                                       *expected)) {
      check.state = StoredCheck::State::kDamaged;
      check.damage = *mismatch + " [corrupt]";
      return check;
    }
  }
  check.state = StoredCheck::State::kIntact;
  return check;
}

std::string ReplaceDamagedObject(const RepositoryRef& to, uint64_t system_id,
                                 const std::string& key, const BackupObject& expected,
                                 const std::string& stamp, const StageReplacement& stage) {
  const std::string staged = QuarantineKey(system_id, key, stamp) + ".new";
  // 1. The replacement, staged beside the quarantine and read back.
  stage(staged);
  const StoredDigest replacement = DecodeAs(to, staged, key);
  CheckDigest(replacement.size, replacement.sha256, to, staged, expected);
  // 2. What is under `key` must still be damaged (or absent): re-checked
  //    here, so a transient read error or a concurrent repair never replaces
  //    an intact object.
  const StoredCheck now = CheckStoredObject(to, key, &expected);
  if (now.state == StoredCheck::State::kIntact) {
    Fail(ErrorCode::kConflict,
         "{} verifies intact now; it is not replaced (the staged replacement {} is left for you "
         "to remove)",
         Where(to, key), staged);
  }
  // 3. The damaged bytes are copied aside, not moved: `key` is never absent,
  //    so a walfetch reading this repository meanwhile gets the damaged
  //    object (an error) or the replacement, never "missing".  Then the
  //    verified bytes replace it in one step.
  std::string aside;
  WriteOptions publish = DigestMetadata(expected);
  if (now.state == StoredCheck::State::kDamaged) {
    aside = QuarantineKey(system_id, key, stamp);
    CopyStoredBytes(to.storage, key, aside);
    publish.replace_existing = true;
  }
  CopyStoredBytes(to.storage, staged, key, publish);
  VerifyStoredObject(to, key, expected);
  to.storage.Remove(staged);
  return aside;
}

std::string ReplaceDamagedObject(const RepositoryRef& from, const RepositoryRef& to,
                                 uint64_t system_id, const std::string& key,
                                 const BackupObject& expected, const std::string& stamp) {
  return ReplaceDamagedObject(to, system_id, key, expected, stamp,
                              [&](const std::string& staged) {
                                EncodeCopy(from, to, key, staged, expected);
                              });
}

BackupRecord CopyBackup(const RepositoryRef& from, const RepositoryRef& to, uint64_t system_id,
                        const BackupRecord& record) {
  const std::string record_key = BackupObjectKey(system_id, record.label, kRecordName);
  if (to.storage.Stat(record_key)) {
    Fail(ErrorCode::kConflict, "{} already exists", Where(to, record_key));
  }
  BackupRecord copy = record;
  copy.compression = ToString(to.config.compression);
  copy.key_id = to.config.key ? to.config.key->IdHex() : "";
  for (BackupObject* object : RecordObjects(copy)) {
    const std::string key = BackupObjectKey(system_id, record.label, object->name);
    // Nothing under the label is ever deleted: an object an interrupted (or
    // concurrent) copy left is kept when it verifies against this record;
    // one that is damaged or another backup's is moved aside, unchanged.
    const StoredCheck there = CheckStoredObject(to, key, object);
    if (there.state == StoredCheck::State::kIntact) {
      object->stored_size = there.digest.stored_size;
      continue;
    }
    if (there.state == StoredCheck::State::kDamaged) {
      const std::string aside = MoveToQuarantine(to.storage, system_id, key, UtcStampNow());
      Log(LogLevel::kWarning, "{} was not this backup's object ({}); moved aside to {}",
          Where(to, key), there.damage, aside);
    }
    object->stored_size = CopyStoredObject(from, to, key, *object);
  }
  WriteSmallObject(to.storage, to.config, record_key, ToJson(copy).dump(2));
  const auto written = ReadSmallObject(to.storage, to.config, record_key);
  if (!written ||
      !SameBackup(RecordFromJson(nlohmann::json::parse(*written), record_key), record)) {
    Fail(ErrorCode::kCorrupt, "{} does not read back as the record just written",
         Where(to, record_key));
  }
  // Whatever happened meanwhile, "copied" means every object is there.
  for (const BackupObject* object : RecordObjects(copy)) {
    const std::string key = BackupObjectKey(system_id, record.label, object->name);
    if (!to.storage.Stat(key)) {
      Fail(ErrorCode::kCorrupt,
           "{} vanished after it was copied (something else writes under the label); the "
           "record names it",
           Where(to, key));
    }
  }
  return copy;
}

}  // namespace walstore::backup
