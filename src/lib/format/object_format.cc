#include <walstore/error.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <cstring>

#include "common/byte_buffer.h"
#include "common/endian.h"
#include "common/task_thread.h"
#include "format/object_format_internal.h"
#include <vector>

namespace walstore {

std::array<uint8_t, AesGcm::kNonceSize> format_internal::RecordNonce(uint16_t version,
                                                                     uint8_t type,
                                                                     uint64_t index) {
  std::array<uint8_t, AesGcm::kNonceSize> nonce{};
  const int index_bytes = version >= 2 ? 8 : 4;  // records hold 48 bits in version 2
  PutLe(nonce.data(), index, index_bytes);
  nonce[index_bytes] = type;
  return nonce;
}

namespace {

constexpr char kMagic[8] = {'W', 'A', 'L', 'S', 'T', 'O', 'R', 'E'};
constexpr size_t kAadHeaderBytes = 64;   // magic .. salt: authenticated with every record
                                         // (the digest part after it is not)
constexpr size_t kIdentityHashOffset = 56;  // version 2; reserved (0) in version 1
constexpr size_t kHeaderCheckOffset = 120;
constexpr size_t kRecordHeaderSize = 16;
constexpr uint8_t kRecordData = 1;
constexpr uint8_t kRecordEnd = 2;
constexpr uint8_t kRecordFlagRaw = 1;   // payload stored uncompressed
// End record payload: plaintext size and SHA-256; unencrypted objects add the
// SHA-256 of what was stored before the end record (header bytes [0,64) and
// every data record as stored), so even a flip that decodes to the same
// plaintext (a redundant bit of a compressed block) is detected.  Encrypted
// objects have a GCM tag on every record instead.
constexpr uint32_t kEndPayloadSize = 8 + 32 + 32;  // the largest variant
uint32_t EndPayloadSize(Cipher cipher) { return cipher == Cipher::kNone ? 8 + 32 + 32 : 8 + 32; }
constexpr uint32_t kFlagHasDigest = 1;


std::array<uint8_t, 8> HeaderCheck(const uint8_t* header) {
  const Sha256Digest digest = Sha256Of(Bytes(header, kHeaderCheckOffset));
  std::array<uint8_t, 8> check;
  std::copy_n(digest.begin(), 8, check.begin());
  return check;
}

std::array<uint8_t, kObjectHeaderSize> SerializeHeader(const ObjectHeader& h) {
  std::array<uint8_t, kObjectHeaderSize> out{};
  std::memcpy(out.data(), kMagic, 8);
  PutLe(&out[8], h.version, 2);
  out[10] = static_cast<uint8_t>(h.codec);
  out[11] = static_cast<uint8_t>(h.cipher);
  PutLe(&out[12], h.chunk_size, 4);
  PutLe(&out[16], h.key_id, 8);
  std::memcpy(&out[24], h.salt.data(), 32);
  if (h.version >= 2) std::memcpy(&out[kIdentityHashOffset], h.identity_hash.data(), 8);
  // Bytes 64.. may be rewritten once the digest is known (not in the AAD).
  PutLe(&out[64], h.has_digest ? kFlagHasDigest : 0, 4);
  PutLe(&out[72], h.plaintext_size, 8);
  std::memcpy(&out[80], h.plaintext_sha256.data(), 32);
  const auto check = HeaderCheck(out.data());
  std::memcpy(&out[kHeaderCheckOffset], check.data(), check.size());
  return out;
}

using format_internal::RecordNonce;

struct RecordHeader {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint64_t index = 0;  // version 1: 32 bits (bytes 4..7); version 2: 48 (bytes 2..3 high)
  uint32_t plain_len = 0;
  uint32_t stored_len = 0;

  std::array<uint8_t, kRecordHeaderSize> Serialize() const {
    std::array<uint8_t, kRecordHeaderSize> out{};
    out[0] = type;
    out[1] = flags;
    PutLe(&out[2], index >> 32, 2);  // 0 in version 1 (index < 2^32 there)
    PutLe(&out[4], index, 4);
    PutLe(&out[8], plain_len, 4);
    PutLe(&out[12], stored_len, 4);
    return out;
  }
  // Version 1 has no high index bytes: they stay in the index, where a
  // non-zero value fails the index check.
  static RecordHeader Parse(const uint8_t* p) {
    return {p[0], p[1], GetLe(p + 2, 2) << 32 | GetLe(p + 4, 4),
            static_cast<uint32_t>(GetLe(p + 8, 4)), static_cast<uint32_t>(GetLe(p + 12, 4))};
  }
};

// AAD of a record: the header's first 64 bytes, the record header, and in
// version 2 the object's identity (its storage key).
class RecordAad {
 public:
  RecordAad(const std::array<uint8_t, kObjectHeaderSize>& header, uint16_t version,
            std::string_view identity)
      : aad_(header.begin(), header.begin() + kAadHeaderBytes) {
    aad_.resize(kAadHeaderBytes + kRecordHeaderSize);
    if (version >= 2) aad_.insert(aad_.end(), identity.begin(), identity.end());
  }
  Bytes For(const RecordHeader& record) {
    const auto rh = record.Serialize();
    std::memcpy(aad_.data() + kAadHeaderBytes, rh.data(), rh.size());
    return Bytes(aad_.data(), aad_.size());
  }

 private:
  std::vector<uint8_t> aad_;
};

// Version 2's stored SHA-256 (unencrypted objects) starts with the identity.
void HashIdentity(Sha256& stored_hash, uint16_t version, std::string_view identity) {
  if (version < 2) return;
  uint8_t length[8];
  PutLe(length, identity.size(), 8);
  stored_hash.Update(Bytes(length, 8));
  stored_hash.Update(AsBytes(identity));
}

size_t TagSize(Cipher cipher) { return cipher == Cipher::kAes256Gcm ? AesGcm::kTagSize : 0; }

// Turns one plaintext chunk into one record (record header + payload).
class ChunkSealer {
 public:
  ChunkSealer(const CompressionSpec& compression, const std::array<uint8_t, 32>* object_key,
              uint32_t chunk_size, const std::array<uint8_t, kObjectHeaderSize>& header,
              uint16_t version, std::string_view identity)
      : codec_(MakeBlockCodec(compression)),
        compress_(compression.codec != Codec::kNone),
        version_(version),
        aad_(header, version, identity) {
    if (object_key != nullptr) cipher_ = std::make_unique<AesGcm>(*object_key);
    scratch_ = ByteBuffer(codec_->MaxCompressedSize(chunk_size));
    out_ = ByteBuffer(kRecordHeaderSize +
                      std::max<size_t>({scratch_.size(), chunk_size, kEndPayloadSize}) +
                      AesGcm::kTagSize);
  }

  // Seals `plain` as record `index`; the result stays valid until the next call.
  Bytes Seal(uint8_t type, uint64_t index, Bytes plain) {
    RecordHeader record{type, 0, index, static_cast<uint32_t>(plain.size()), 0};
    Bytes payload = plain;
    if (type == kRecordData && compress_) {
      const size_t n = codec_->Compress(plain, scratch_);
      if (n < plain.size()) {
        payload = Bytes(scratch_.data(), n);
      }
    }
    if (payload.data() == plain.data() && type == kRecordData) record.flags |= kRecordFlagRaw;
    const size_t tag = cipher_ ? AesGcm::kTagSize : 0;
    record.stored_len = static_cast<uint32_t>(payload.size() + tag);
    const auto rh = record.Serialize();
    std::memcpy(out_.data(), rh.data(), rh.size());
    uint8_t* body = out_.data() + kRecordHeaderSize;
    if (cipher_) {
      cipher_->Seal(RecordNonce(version_, type, index), aad_.For(record), payload,
                    MutableBytes(body, record.stored_len));
    } else {
      std::memmove(body, payload.data(), payload.size());
    }
    return Bytes(out_.data(), kRecordHeaderSize + record.stored_len);
  }

 private:
  std::unique_ptr<BlockCodec> codec_;
  bool compress_;
  uint16_t version_;
  RecordAad aad_;
  std::unique_ptr<AesGcm> cipher_;
  ByteBuffer scratch_;
  ByteBuffer out_;
};

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

const char* CipherName(Cipher cipher) {
  switch (cipher) {
    case Cipher::kNone: return "none";
    case Cipher::kAes256Gcm: return "aes-256-gcm";
  }
  return "unknown";
}

ObjectHeader ParseObjectHeader(Bytes bytes, const std::string& what) {
  if (bytes.size() < kObjectHeaderSize) {
    Fail(ErrorCode::kCorrupt, "{}: truncated object header ({} of {} bytes)", what, bytes.size(),
         kObjectHeaderSize);
  }
  const uint8_t* p = bytes.data();
  if (std::memcmp(p, kMagic, 8) != 0) {
    Fail(ErrorCode::kCorrupt, "{}: not a walstore object (bad magic)", what);
  }
  const bool check_ok =
      std::memcmp(HeaderCheck(p).data(), p + kHeaderCheckOffset, 8) == 0;
  ObjectHeader h;
  h.version = static_cast<uint16_t>(GetLe(p + 8, 2));
  if (h.version < kOldestObjectFormatVersion || h.version > kObjectFormatVersion) {
    if (check_ok) {
      throw Error(ErrorCode::kUnsupportedFormat,
                  fmt::format("{}: object format version {} is not supported by this walstore "
                              "(reads versions {} to {})",
                              what, h.version, kOldestObjectFormatVersion, kObjectFormatVersion),
                  "upgrade walstore to read objects written by a newer version");
    }
    Fail(ErrorCode::kCorrupt, "{}: damaged object header (version field {})", what, h.version);
  }
  if (!check_ok) Fail(ErrorCode::kCorrupt, "{}: damaged object header (header check mismatch)", what);
  h.codec = static_cast<Codec>(p[10]);
  h.cipher = static_cast<Cipher>(p[11]);
  if (p[10] > static_cast<uint8_t>(Codec::kZstd)) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: unknown compression codec {}", what, p[10]);
  }
  if (p[11] > static_cast<uint8_t>(Cipher::kAes256Gcm)) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: unknown cipher {}", what, p[11]);
  }
  h.chunk_size = static_cast<uint32_t>(GetLe(p + 12, 4));
  if (h.chunk_size == 0 || h.chunk_size > kMaxChunkSize) {
    Fail(ErrorCode::kCorrupt, "{}: impossible chunk size {}", what, h.chunk_size);
  }
  h.key_id = GetLe(p + 16, 8);
  std::memcpy(h.salt.data(), p + 24, 32);
  if (h.version >= 2) std::memcpy(h.identity_hash.data(), p + kIdentityHashOffset, 8);
  h.has_digest = (GetLe(p + 64, 4) & kFlagHasDigest) != 0;
  h.plaintext_size = GetLe(p + 72, 8);
  std::memcpy(h.plaintext_sha256.data(), p + 80, 32);
  return h;
}

std::array<uint8_t, 8> ObjectIdentityHash(std::string_view identity) {
  Sha256 hash;
  hash.Update(AsBytes(std::string_view("walstore-object-identity")));
  hash.Update(AsBytes(identity));
  const Sha256Digest digest = hash.Final();
  std::array<uint8_t, 8> out;
  std::copy_n(digest.begin(), 8, out.begin());
  return out;
}

ObjectHeader ReadObjectHeader(ReadStream& in, const std::string& what) {
  std::array<uint8_t, kObjectHeaderSize> buffer;
  const size_t n = ReadFully(in, buffer);
  return ParseObjectHeader(Bytes(buffer.data(), n), what);
}

// ---------------------------------------------------------------- encoder

struct ObjectEncoder::Impl {
  WriteStream& sink;
  EncodeOptions options;
  ObjectHeader header;
  std::array<uint8_t, kObjectHeaderSize> header_bytes{};
  std::array<uint8_t, 32> object_key{};
  // One sealer and input buffer per parallel slot; slot 0 runs on the caller.
  std::vector<std::unique_ptr<ChunkSealer>> sealers;
  std::vector<ByteBuffer> chunks;
  size_t filled_slots = 0;   // complete chunks waiting in slots [0, filled_slots)
  size_t fill = 0;           // bytes in chunks[filled_slots]
  uint64_t next_index = 0;
  Sha256 hash;
  Sha256 stored_hash;  // unencrypted objects: what was stored (see EndPayloadSize)
  uint64_t plaintext_size = 0;
  uint64_t encoded_size = 0;
  Sha256Digest digest{};
  bool finished = false;
  // With several slots, helper threads for the whole life of the encoder
  // (not new ones per batch): `hasher` hashes each batch in order while
  // seal_workers[i] seals its slot i + 1 (the caller seals slot 0).
  // Declared last: destroyed first, so no task outlives what it uses.
  std::unique_ptr<TaskThread> hasher;
  std::vector<std::unique_ptr<TaskThread>> seal_workers;

  Impl(WriteStream& s, const EncodeOptions& o) : sink(s), options(o) {
    if (options.chunk_size == 0 || options.chunk_size > kMaxChunkSize) {
      Fail(ErrorCode::kInternal, "chunk size {} out of range", options.chunk_size);
    }
    header.codec = options.compression.codec;
    header.chunk_size = options.chunk_size;
    header.identity_hash = ObjectIdentityHash(options.identity);
    if (options.key != nullptr) {
      header.cipher = Cipher::kAes256Gcm;
      header.key_id = options.key->id();
      RandomBytes(header.salt);
      object_key = DeriveObjectKey(*options.key, header.salt);
    }
    if (options.known_digest) {
      header.has_digest = true;
      header.plaintext_size = options.known_digest->first;
      header.plaintext_sha256 = options.known_digest->second;
    }
    header_bytes = SerializeHeader(header);
    if (header.cipher == Cipher::kNone) {
      HashIdentity(stored_hash, header.version, options.identity);
      stored_hash.Update(Bytes(header_bytes.data(), kAadHeaderBytes));
    }
    const size_t slots = static_cast<size_t>(std::max(1, options.threads));
    for (size_t i = 0; i < slots; ++i) {
      sealers.push_back(std::make_unique<ChunkSealer>(
          options.compression, options.key ? &object_key : nullptr, options.chunk_size,
          header_bytes, header.version, options.identity));
      chunks.emplace_back(options.chunk_size);
    }
    if (slots > 1) {
      hasher = std::make_unique<TaskThread>();
      for (size_t i = 1; i < slots; ++i) seal_workers.push_back(std::make_unique<TaskThread>());
    }
    Emit(header_bytes);
  }

  ~Impl() { std::fill(object_key.begin(), object_key.end(), 0); }

  void Emit(Bytes bytes) {
    sink.Write(bytes);
    encoded_size += bytes.size();
  }
  void EmitRecord(Bytes record) {
    if (header.cipher == Cipher::kNone) stored_hash.Update(record);
    Emit(record);
  }

  // Seals and emits a batch of chunks (at most one per sealer).  With several
  // sealers the chunks are sealed in parallel while the hasher hashes them in
  // order; all of it is done when this returns (the caller may reuse the
  // batch's memory).
  void FlushBatch(const std::vector<Bytes>& batch) {
    // The end record takes index next_index + batch.size(): it must fit too.
    if (next_index + batch.size() > std::min(options.max_records, kMaxRecordsPerObject)) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: too many records for one object ({} chunks of {} bytes); "
                              "stopped before the record counter would repeat",
                              options.identity, next_index + batch.size(), options.chunk_size),
                  "raise chunk_size; nothing was published");
    }
    auto seal = [this, &batch](size_t slot) {
      return sealers[slot]->Seal(kRecordData, next_index + slot, batch[slot]);
    };
    if (batch.size() == 1) {
      hash.Update(batch[0]);
      EmitRecord(seal(0));
    } else {
      std::vector<Bytes> sealed(batch.size());
      // Even when this throws, no helper may still use `batch` or `sealed`.
      struct Quiesce {
        Impl& impl;
        bool done = false;
        ~Quiesce() {
          if (!done) impl.WaitForHelpersNoThrow();
        }
      } quiesce{*this};
      hasher->Submit([this, &batch] {
        for (const Bytes& chunk : batch) hash.Update(chunk);
      });
      for (size_t slot = 1; slot < batch.size(); ++slot) {
        seal_workers[slot - 1]->Submit([&sealed, &seal, slot] { sealed[slot] = seal(slot); });
      }
      EmitRecord(seal(0));
      for (size_t slot = 1; slot < batch.size(); ++slot) {
        seal_workers[slot - 1]->WaitAll();
        EmitRecord(sealed[slot]);
      }
      hasher->WaitAll();
      quiesce.done = true;
    }
    next_index += batch.size();
  }

  // After a failure: lets the helpers finish what they were given; their
  // errors are not reported (the caller's is).
  void WaitForHelpersNoThrow() noexcept {
    hasher->Quiesce();
    for (auto& worker : seal_workers) worker->Quiesce();
  }

  // Flushes the buffered chunks in slots [0, count), the last holding last_fill bytes.
  void FlushSlots(size_t count, size_t last_fill) {
    std::vector<Bytes> batch;
    for (size_t slot = 0; slot < count; ++slot) {
      batch.emplace_back(chunks[slot].data(), slot + 1 == count ? last_fill : options.chunk_size);
    }
    FlushBatch(batch);
  }

  void Write(Bytes data) {
    if (finished) Fail(ErrorCode::kInternal, "write after Finish()");
    plaintext_size += data.size();
    const size_t batch_bytes = chunks.size() * options.chunk_size;
    while (!data.empty()) {
      if (filled_slots == 0 && fill == 0 && data.size() >= batch_bytes) {
        // A whole batch in the caller's buffer: seal it from there, no copy.
        std::vector<Bytes> batch;
        for (size_t slot = 0; slot < chunks.size(); ++slot) {
          batch.push_back(data.subspan(slot * options.chunk_size, options.chunk_size));
        }
        FlushBatch(batch);
        data = data.subspan(batch_bytes);
        continue;
      }
      auto& chunk = chunks[filled_slots];
      const size_t n = std::min(data.size(), options.chunk_size - fill);
      std::memcpy(chunk.data() + fill, data.data(), n);
      fill += n;
      data = data.subspan(n);
      if (fill == options.chunk_size) {
        fill = 0;
        if (++filled_slots == chunks.size()) {
          FlushSlots(filled_slots, options.chunk_size);
          filled_slots = 0;
        }
      }
    }
  }

  void Finish() {
    if (finished) return;
    if (fill > 0) {
      FlushSlots(filled_slots + 1, fill);
    } else if (filled_slots > 0) {
      FlushSlots(filled_slots, options.chunk_size);
    }
    filled_slots = 0;
    fill = 0;
    digest = hash.Final();
    if (options.known_digest &&
        (options.known_digest->first != plaintext_size || options.known_digest->second != digest)) {
      Fail(ErrorCode::kInternal,
           "the data changed while it was being stored (expected {} bytes with SHA-256 {}, read "
           "{} bytes with SHA-256 {})",
           options.known_digest->first, ToHex(options.known_digest->second), plaintext_size,
           ToHex(digest));
    }
    if (options.rewrite_header && !options.known_digest) {
      header.has_digest = true;
      header.plaintext_size = plaintext_size;
      header.plaintext_sha256 = digest;
      options.rewrite_header(SerializeHeader(header));
    }
    uint8_t end[kEndPayloadSize];
    PutLe(end, plaintext_size, 8);
    std::memcpy(end + 8, digest.data(), digest.size());
    if (header.cipher == Cipher::kNone) {
      const Sha256Digest stored = stored_hash.Final();
      std::memcpy(end + 40, stored.data(), stored.size());
    }
    Emit(sealers[0]->Seal(kRecordEnd, next_index, Bytes(end, EndPayloadSize(header.cipher))));
    finished = true;
  }
};

ObjectEncoder::ObjectEncoder(WriteStream& sink, const EncodeOptions& options)
    : impl_(std::make_unique<Impl>(sink, options)) {}
ObjectEncoder::~ObjectEncoder() = default;
void ObjectEncoder::Write(Bytes data) { impl_->Write(data); }
void ObjectEncoder::Finish() { impl_->Finish(); }
uint64_t ObjectEncoder::plaintext_size() const { return impl_->plaintext_size; }
const Sha256Digest& ObjectEncoder::plaintext_sha256() const { return impl_->digest; }
uint64_t ObjectEncoder::encoded_size() const { return impl_->encoded_size; }
const ObjectHeader& ObjectEncoder::header() const { return impl_->header; }

// ---------------------------------------------------------------- decoder

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
  std::unique_ptr<RecordAad> aad;  // encrypted objects
  ByteBuffer stored;    // one record's payload as stored; decrypted in place
  ByteBuffer plain_buffers[kPlainBuffers];
  Bytes current;        // the chunk Read() serves (in plain_buffers)
  size_t plain_pos = 0;
  uint64_t next_index = 0;
  Sha256 hash;
  Sha256 stored_hash;  // unencrypted objects (see EndPayloadSize)
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
    if (header.version >= 2 && header.identity_hash != ObjectIdentityHash(identity)) {
      throw Error(ErrorCode::kMisplaced,
                  fmt::format("{} was stored for another name (identity hash {}, this name's "
                              "is {}): it is not the file it is named after",
                              what, ToHex(Bytes(header.identity_hash.data(), 8)),
                              ToHex(Bytes(ObjectIdentityHash(identity).data(), 8))),
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
      aad = std::make_unique<RecordAad>(header_bytes, header.version, identity);
    }
    if (header.cipher == Cipher::kNone) {
      HashIdentity(stored_hash, header.version, identity);
      stored_hash.Update(Bytes(header_bytes.data(), kAadHeaderBytes));
    }
    codec = MakeBlockCodec({header.codec, 0});
    stored = ByteBuffer(std::max<size_t>({codec->MaxCompressedSize(header.chunk_size),
                                          header.chunk_size, kEndPayloadSize}) +
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
    if (record.type != kRecordData && record.type != kRecordEnd) {
      Corrupt(fmt::format("record {} has unknown type {}", next_index, record.type));
    }
    // Unencrypted record headers are not authenticated: accept exactly what a
    // writer produces (known flags only, zero reserved bytes in version 1,
    // where version 2 keeps the index's high bits, raw whenever the codec is
    // none, no flags on the end record).
    const bool raw = (record.flags & kRecordFlagRaw) != 0;
    if ((record.flags & ~kRecordFlagRaw) != 0 ||
        (header.version < 2 && (rh_bytes[2] != 0 || rh_bytes[3] != 0)) ||
        (record.type == kRecordEnd && record.flags != 0) ||
        (record.type == kRecordData && header.codec == Codec::kNone && !raw)) {
      Corrupt(fmt::format("record {} has an invalid header", next_index));
    }
    if (record.index != next_index) {
      Corrupt(fmt::format("record {} found where record {} belongs (reordered or spliced)",
                          record.index, next_index));
    }
    const uint32_t end_size = EndPayloadSize(header.cipher);
    const uint32_t max_plain = record.type == kRecordEnd ? end_size : header.chunk_size;
    if (record.plain_len > max_plain || (record.type == kRecordEnd && record.plain_len != end_size) ||
        record.stored_len > stored.size() || record.stored_len < tag ||
        (record.type == kRecordData && record.plain_len == 0) ||
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
      if (!cipher->Open(RecordNonce(header.version, record.type, record.index), aad->For(record),
                        payload, opened)) {
        Corrupt(fmt::format("record {} failed authentication", record.index));
      }
      body = opened;
    } else if (record.type == kRecordData) {
      stored_hash.Update(rh_bytes);
      stored_hash.Update(payload);
    }
    if (record.type == kRecordEnd) {
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
    if (!cipher && std::memcmp(stored_hash.Final().data(), end.data() + 40, 32) != 0) {
      Corrupt("stored records do not match their checksum");
    }
    const uint64_t size = GetLe(end.data(), 8);
    Sha256Digest expected;
    std::memcpy(expected.data(), end.data() + 8, expected.size());
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
