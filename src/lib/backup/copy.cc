#include <walstore/backup/copy.h>

#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/number.h>
#include <walstore/object_format.h>

#include <nlohmann/json.hpp>

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

// Throws kCorrupt unless the decoded plaintext is what the record states.
void CheckDigest(uint64_t size, const std::string& sha256, const RepositoryRef& repository,
                 const std::string& key, const BackupObject& expected) {
  if (size != expected.size || sha256 != expected.sha256) {
    Fail(ErrorCode::kCorrupt,
         "{} decodes to {} bytes with SHA-256 {}, but its backup record names {} bytes with "
         "SHA-256 {}",
         Where(repository, key), size, sha256, expected.size, expected.sha256);
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

StoredDigest DecodeStoredObject(const RepositoryRef& from, const std::string& key) {
  auto in = OpenExisting(from, key);
  CountingReadStream counted(*in);
  ObjectDecoder decoder(counted, DecodeOptionsFor(from.config), key, Where(from, key));
  DiscardStream discard;
  decoder.DecodeTo(discard);
  return {decoder.plaintext_size(), ToHex(decoder.plaintext_sha256()), counted.count()};
}

uint64_t VerifyStoredObject(const RepositoryRef& from, const std::string& key,
                            const BackupObject& expected) {
  const StoredDigest found = DecodeStoredObject(from, key);
  CheckDigest(found.size, found.sha256, from, key, expected);
  return found.stored_size;
}

std::string MoveAside(Storage& storage, uint64_t system_id, const std::string& key,
                      const std::string& stamp) {
  const std::string prefix = std::to_string(system_id) + "/";
  const std::string rest = key.rfind(prefix, 0) == 0 ? key.substr(prefix.size()) : key;
  const std::string aside = prefix + "damaged/" + stamp + "/" + rest;
  auto in = storage.OpenRead(key);
  if (!in) Fail(ErrorCode::kCorrupt, "{}: {} is missing", storage.Describe(), key);
  auto writer = storage.Create(aside);
  Copy(*in, *writer);
  if (writer->Commit() != CommitResult::kCreated) {
    Fail(ErrorCode::kConflict, "{}: {} already exists", storage.Describe(), aside);
  }
  storage.Remove(key);
  return aside;
}

uint64_t CopyStoredObject(const RepositoryRef& from, const RepositoryRef& to,
                          const std::string& key, const BackupObject& expected) {
  auto in = OpenExisting(from, key);
  ObjectDecoder decoder(*in, DecodeOptionsFor(from.config), key, Where(from, key));
  WriteOptions write;
  write.metadata[kMetaSha256] = expected.sha256;
  write.metadata[kMetaSize] = std::to_string(expected.size);
  auto writer = to.storage.Create(key, write);
  EncodeOptions encode;
  encode.compression = to.config.compression;
  encode.key = to.config.key ? &*to.config.key : nullptr;
  encode.chunk_size = to.config.chunk_size;
  encode.identity = key;
  encode.rewrite_header = [&writer](Bytes header) { writer->RewriteHead(header); };
  ObjectEncoder encoder(*writer, encode);
  decoder.DecodeTo(encoder);
  // Published only once the source verified as a whole: a damaged source
  // throws above (or here) and the writer, destroyed, discards the copy.
  CheckDigest(decoder.plaintext_size(), ToHex(decoder.plaintext_sha256()), from, key, expected);
  encoder.Finish();
  if (writer->Commit() != CommitResult::kCreated) {
    Fail(ErrorCode::kConflict, "{} already exists", Where(to, key));
  }
  return VerifyStoredObject(to, key, expected);
}

BackupRecord CopyBackup(const RepositoryRef& from, const RepositoryRef& to, uint64_t system_id,
                        const BackupRecord& record) {
  const std::string record_key = BackupObjectKey(system_id, record.label, kRecordName);
  if (to.storage.Stat(record_key)) {
    Fail(ErrorCode::kConflict, "{} already exists", Where(to, record_key));
  }
  // What an interrupted copy (or backup) left under the label: never read
  // (no record), removed so the copy starts clean.
  std::vector<std::string> leftovers;
  to.storage.List(BackupDirKey(system_id, record.label),
                  [&](const ObjectInfo& info) { leftovers.push_back(info.key); });
  for (const auto& key : leftovers) to.storage.Remove(key);

  BackupRecord copy = record;
  copy.compression = ToString(to.config.compression);
  copy.key_id = to.config.key ? to.config.key->IdHex() : "";
  std::vector<BackupObject*> objects;
  for (auto& archive : copy.archives) objects.push_back(&archive);
  objects.push_back(&copy.manifest);
  if (!copy.blockmap.name.empty()) objects.push_back(&copy.blockmap);
  for (BackupObject* object : objects) {
    object->stored_size =
        CopyStoredObject(from, to, BackupObjectKey(system_id, record.label, object->name), *object);
  }
  WriteSmallObject(to.storage, to.config, record_key, ToJson(copy).dump(2));
  const auto written = ReadSmallObject(to.storage, to.config, record_key);
  if (!written ||
      !SameBackup(RecordFromJson(nlohmann::json::parse(*written), record_key), record)) {
    Fail(ErrorCode::kCorrupt, "{} does not read back as the record just written",
         Where(to, record_key));
  }
  return copy;
}

}  // namespace walstore::backup
