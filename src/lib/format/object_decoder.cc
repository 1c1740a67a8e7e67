// ObjectDecoder (include/walstore/object_format.h): object in, verified
// plaintext out; the checks and their messages are listed in docs/format.md,
// "What a reader checks".
#include <walstore/error.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <cstring>

#include "common/byte_buffer.h"
#include "common/task_thread.h"
#include "format/object_layout.h"
#include "format/object_record.h"

namespace walstore {

using namespace object_layout;
using format_internal::RecordHeader;
using format_internal::TagSize;

namespace {

std::string DescribeKeyMismatch(const std::string& what, uint64_t object_key_id,
                                std::span<const Key> keys) {
  if (keys.empty()) {
    return fmt::format("{} is encrypted (key id {}) but no encryption key is configured", what,
                       KeyIdHex(object_key_id));
  }
  std::string old;
  for (size_t i = 1; i < keys.size(); ++i) old += (i == 1 ? "; old keys " : ", ") + keys[i].IdHex();
  return fmt::format("wrong key for {} (object key id {}, yours {}{})", what,
                     KeyIdHex(object_key_id), keys[0].IdHex(), old);
}

}  // namespace

struct ObjectDecoder::Impl {
  // Plaintext chunks in flight: the one Read()/DecodeTo() serves, and up to
  // two more being hashed behind it, so decoding never waits for SHA-256
  // unless it runs more than two chunks ahead.
  static constexpr size_t kPlainBuffers = 3;

  ReadStream& source;
  std::string identity;
  std::string what;
  ObjectHeader header;
  std::array<uint8_t, kObjectHeaderSize> header_bytes{};
  std::unique_ptr<BlockCodec> codec;
  std::unique_ptr<AesGcm> cipher;
  std::unique_ptr<format_internal::RecordAad> aad;  // encrypted objects
  ByteBuffer stored;    // one record's payload as stored; decrypted in place
  ByteBuffer plain_buffers[kPlainBuffers];
  Bytes current;        // the chunk Read() serves (in plain_buffers)
  size_t plain_pos = 0;
  uint64_t next_index = 0;
  Sha256 hash;
  Sha256 stored_hash;  // unencrypted objects (kEndStoredSha256)
  uint64_t plaintext_size = 0;
  Sha256Digest digest{};
  bool done = false;
  // SHA-256 of the chunks, in order, on one helper thread.  Declared last:
  // destroyed first, its destructor finishes the queued hashing before
  // `hash` and the buffers it reads go away (also after an error).
  TaskThread hasher;

  Impl(ReadStream& s, std::span<const Key> keys, bool allow_plaintext, std::string id,
       std::string w)
      : source(s), identity(std::move(id)), what(w.empty() ? identity : std::move(w)) {
    const size_t n = ReadFully(source, header_bytes);
    header = ParseObjectHeader(Bytes(header_bytes.data(), n), what);
    if (header.cipher == Cipher::kNone && !keys.empty() && !allow_plaintext) {
      throw Error(ErrorCode::kUnauthenticated,
                  fmt::format("{} is not encrypted, but an encryption key is configured: its "
                              "content is not authenticated and is not used",
                              what),
                  "anyone who can write to the repository can write an unencrypted object. If "
                  "it was archived before encryption was turned on, set allow_plaintext_objects "
                  "= true (or WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1) until those objects have "
                  "expired (docs/configuration.md); otherwise find out who wrote it");
    }
    const auto identity_hash = ObjectIdentityHash(identity);
    if (header.version >= 2 && header.identity_hash != identity_hash) {
      throw Error(ErrorCode::kMisplaced,
                  fmt::format("{} was stored for another name (identity hash {}, this name's "
                              "is {}): it is not the file it is named after",
                              what, ToHex(header.identity_hash), ToHex(identity_hash)),
                  "the object was copied or moved to this name; do not use it: find the "
                  "right object in another copy of the archive, or move this one aside");
    }
    if (header.cipher == Cipher::kAes256Gcm) {
      const Key* key = nullptr;
      for (const Key& candidate : keys) {
        if (candidate.id() == header.key_id) key = &candidate;
      }
      if (key == nullptr) {
        throw Error(ErrorCode::kWrongKey, DescribeKeyMismatch(what, header.key_id, keys),
                    "configure the key this object was written with (encryption_key_file, or "
                    "encryption_old_key_files for keys rotated out)");
      }
      auto object_key = DeriveObjectKey(*key, header.salt);
      cipher = std::make_unique<AesGcm>(object_key);
      std::fill(object_key.begin(), object_key.end(), 0);
      aad = std::make_unique<format_internal::RecordAad>(header_bytes, header.version, identity);
    }
    if (header.cipher == Cipher::kNone) {
      format_internal::StartStoredHash(stored_hash, header_bytes, header.version, identity);
    }
    codec = MakeBlockCodec({header.codec, 0});
    stored = ByteBuffer(format_internal::MaxRecordPayload(
                            codec->MaxCompressedSize(header.chunk_size), header.chunk_size) +
                        TagSize(header.cipher));
    // Untouched pages cost nothing (ByteBuffer is not zero-filled): a small
    // object touches a few kilobytes of each.
    for (auto& buffer : plain_buffers) buffer = ByteBuffer(header.chunk_size);
  }

  [[noreturn]] void Corrupt(const std::string& detail) {
    throw Error(ErrorCode::kCorrupt, fmt::format("{} is damaged: {}", what, detail),
                "the stored object cannot be used; restore it from another copy of the archive");
  }

  void ReadExactly(MutableBytes out, const char* part) {
    if (ReadFully(source, out) != out.size()) {
      Corrupt(fmt::format("truncated (the object ends inside {} {})", part, next_index));
    }
  }

  RecordHeader ReadRecordHeader(std::array<uint8_t, kRecordHeaderSize>& rh_bytes) {
    const size_t got = ReadFully(source, rh_bytes);
    if (got == 0) Corrupt(fmt::format("truncated after {} records (no end record)", next_index));
    if (got != rh_bytes.size()) Corrupt(fmt::format("truncated inside record header {}", next_index));
    const RecordHeader record = RecordHeader::Parse(rh_bytes.data());
    const size_t tag = TagSize(header.cipher);
    if (record.type != kRecordTypeData && record.type != kRecordTypeEnd) {
      Corrupt(fmt::format("record {} has unknown type {}", next_index, record.type));
    }
    // Unencrypted record headers are not authenticated: accept exactly what a
    // writer produces (known flags only, zero reserved bytes in version 1,
    // where version 2 keeps the index's high bits, raw whenever the codec is
    // none, no flags on the end record).
    const bool raw = (record.flags & kRecordFlagRaw) != 0;
    if ((record.flags & ~kRecordFlagRaw) != 0 ||
        (header.version < 2 && GetField(rh_bytes.data(), kRecordIndexHigh) != 0) ||
        (record.type == kRecordTypeEnd && record.flags != 0) ||
        (record.type == kRecordTypeData && header.codec == Codec::kNone && !raw)) {
      Corrupt(fmt::format("record {} has an invalid header", next_index));
    }
    if (record.index != next_index) {
      Corrupt(fmt::format("record {} found where record {} belongs (reordered or spliced)",
                          record.index, next_index));
    }
    const uint32_t end_size = EndPayloadSize(header.cipher);
    const uint32_t max_plain = record.type == kRecordTypeEnd ? end_size : header.chunk_size;
    if (record.plain_len > max_plain || (record.type == kRecordTypeEnd && record.plain_len != end_size) ||
        record.stored_len > stored.size() || record.stored_len < tag ||
        (record.type == kRecordTypeData && record.plain_len == 0) ||
        (raw && record.stored_len - tag != record.plain_len)) {
      Corrupt(fmt::format("record {} has impossible lengths", next_index));
    }
    return record;
  }

  // Reads the next record; returns false after the verified end record.
  // Otherwise `current` holds the record's plaintext, whose hashing has
  // been queued.
  bool NextRecord() {
    std::array<uint8_t, kRecordHeaderSize> rh_bytes;
    const RecordHeader record = ReadRecordHeader(rh_bytes);
    MutableBytes payload(stored.data(), record.stored_len);
    ReadExactly(payload, "record");
    Bytes body = payload;
    if (cipher) {
      // Decrypted in place; nothing unauthenticated is decompressed or served.
      MutableBytes opened(stored.data(), record.stored_len - AesGcm::kTagSize);
      if (!cipher->Open(format_internal::RecordNonce(header.version, record.type, record.index), aad->For(record),
                        payload, opened)) {
        Corrupt(fmt::format("record {} failed authentication", record.index));
      }
      body = opened;
    } else if (record.type == kRecordTypeData) {
      stored_hash.Update(rh_bytes);
      stored_hash.Update(payload);
    }
    if (record.type == kRecordTypeEnd) {
      FinishObject(body);
      return false;
    }
    // The buffer of chunk next_index - kPlainBuffers is reused: its hash
    // (ticket next_index - kPlainBuffers + 1) must have run.
    if (next_index >= kPlainBuffers) hasher.WaitFor(next_index - kPlainBuffers + 1);
    MutableBytes out(plain_buffers[next_index % kPlainBuffers].data(), record.plain_len);
    if ((record.flags & kRecordFlagRaw) != 0) {
      std::memcpy(out.data(), body.data(), body.size());
    } else if (!codec->Decompress(body, out)) {
      Corrupt(fmt::format("record {} does not decompress ({})", record.index,
                          CodecName(header.codec)));
    }
    hasher.Submit([this, out] { hash.Update(out); });
    current = out;
    plain_pos = 0;
    plaintext_size += out.size();
    ++next_index;
    return true;
  }

  void FinishObject(Bytes end) {
    if (end.size() != EndPayloadSize(header.cipher)) Corrupt("end record has the wrong size");
    if (!cipher && std::memcmp(stored_hash.Final().data(), end.data() + kEndStoredSha256.offset,
                             kEndStoredSha256.size) != 0) {
      Corrupt("stored records do not match their checksum");
    }
    const uint64_t size = GetField(end.data(), kEndPlaintextSize);
    Sha256Digest expected;
    std::memcpy(expected.data(), end.data() + kEndPlaintextSha256.offset, kEndPlaintextSha256.size);
    hasher.WaitAll();
    digest = hash.Final();
    if (size != plaintext_size || expected != digest) {
      Corrupt(fmt::format("content does not match its checksum (expected {} bytes with SHA-256 {}, "
                          "decoded {} bytes with SHA-256 {})",
                          size, ToHex(expected), plaintext_size, ToHex(digest)));
    }
    if (header.has_digest &&
        (header.plaintext_size != size || header.plaintext_sha256 != expected)) {
      Corrupt("header checksum differs from the end record");
    }
    uint8_t extra;
    if (source.Read(MutableBytes(&extra, 1)) != 0) Corrupt("unexpected data after the end record");
    current = {};
    plain_pos = 0;
    done = true;
  }

  size_t Read(MutableBytes out) {
    size_t total = 0;
    while (total < out.size()) {
      if (plain_pos == current.size()) {
        if (done || !NextRecord()) break;
        continue;
      }
      const size_t n = std::min(out.size() - total, current.size() - plain_pos);
      std::memcpy(out.data() + total, current.data() + plain_pos, n);
      plain_pos += n;
      total += n;
    }
    return total;
  }

  uint64_t DecodeTo(WriteStream& sink) {
    if (plain_pos < current.size()) sink.Write(current.subspan(plain_pos));
    plain_pos = current.size();
    while (!done && NextRecord()) {
      sink.Write(current);
      plain_pos = current.size();
    }
    return plaintext_size;
  }
};

ObjectDecoder::ObjectDecoder(ReadStream& source, const Key* key, std::string identity,
                             std::string what)
    : impl_(std::make_unique<Impl>(source,
                                   key ? std::span<const Key>(key, 1) : std::span<const Key>(),
                                   false, std::move(identity), std::move(what))) {}
ObjectDecoder::ObjectDecoder(ReadStream& source, const DecodeOptions& options,
                             std::string identity, std::string what)
    : impl_(std::make_unique<Impl>(source, options.keys, options.allow_plaintext,
                                   std::move(identity), std::move(what))) {}
ObjectDecoder::~ObjectDecoder() = default;
size_t ObjectDecoder::Read(MutableBytes out) { return impl_->Read(out); }
uint64_t ObjectDecoder::DecodeTo(WriteStream& sink) { return impl_->DecodeTo(sink); }
const ObjectHeader& ObjectDecoder::header() const { return impl_->header; }
const Sha256Digest& ObjectDecoder::plaintext_sha256() const { return impl_->digest; }
uint64_t ObjectDecoder::plaintext_size() const { return impl_->plaintext_size; }

}  // namespace walstore
