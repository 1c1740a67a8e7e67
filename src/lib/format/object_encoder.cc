// ObjectEncoder (include/walstore/object_format.h): plaintext in, object out.
#include <walstore/error.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/byte_buffer.h"
#include "common/task_thread.h"
#include "format/object_header.h"
#include "format/object_layout.h"
#include "format/object_record.h"

namespace walstore {

using namespace object_layout;
using format_internal::RecordHeader;

namespace {

// Turns one plaintext chunk into one record (record header + payload).  One
// per thread: Seal() reuses the sealer's buffer.  The chunk is compressed
// straight into the record's place in that buffer and encrypted there in
// place: one buffer per sealer, touched once (no scratch buffer to copy
// from; page faults are costly on small pages).
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
    max_compressed_ = codec_->MaxCompressedSize(chunk_size);
    out_ = ByteBuffer(kRecordHeaderSize +
                      format_internal::MaxRecordPayload(max_compressed_, chunk_size) +
                      AesGcm::kTagSize);
  }

  // Seals `plain` as record `index`; the result stays valid until the next call.
  Bytes Seal(uint8_t type, uint64_t index, Bytes plain) {
    RecordHeader record{type, 0, index, static_cast<uint32_t>(plain.size()), 0};
    uint8_t* body = out_.data() + kRecordHeaderSize;
    Bytes payload = plain;
    if (type == kRecordTypeData && compress_) {
      const size_t n = codec_->Compress(plain, MutableBytes(body, max_compressed_));
      if (n < plain.size()) {
        payload = Bytes(body, n);
      }
    }
    if (payload.data() == plain.data() && type == kRecordTypeData) record.flags |= kRecordFlagRaw;
    const size_t tag = cipher_ ? AesGcm::kTagSize : 0;
    record.stored_len = static_cast<uint32_t>(payload.size() + tag);
    const auto rh = record.Serialize();
    std::memcpy(out_.data(), rh.data(), rh.size());
    if (cipher_) {  // in place when compressed (payload is then at body)
      cipher_->Seal(format_internal::RecordNonce(version_, type, index), aad_.For(record), payload,
                    MutableBytes(body, record.stored_len));
    } else if (payload.data() != body) {
      std::memcpy(body, payload.data(), payload.size());
    }
    return Bytes(out_.data(), kRecordHeaderSize + record.stored_len);
  }

 private:
  std::unique_ptr<BlockCodec> codec_;
  bool compress_;
  uint16_t version_;
  format_internal::RecordAad aad_;
  std::unique_ptr<AesGcm> cipher_;
  size_t max_compressed_ = 0;
  ByteBuffer out_;
};

}  // namespace

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
  Sha256 stored_hash;  // unencrypted objects: what was stored (kEndStoredSha256)
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
    header_bytes = format_internal::SerializeObjectHeader(header);
    if (header.cipher == Cipher::kNone) {
      format_internal::StartStoredHash(stored_hash, header_bytes, header.version,
                                       options.identity);
    }
    const size_t slots = static_cast<size_t>(std::max(1, options.threads));
    for (size_t i = 0; i < slots; ++i) {
      sealers.push_back(std::make_unique<ChunkSealer>(
          options.compression, options.key ? &object_key : nullptr, options.chunk_size,
          header_bytes, header.version, options.identity));
    }
    chunks = ByteBuffer::Several(slots, options.chunk_size);
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
      return sealers[slot]->Seal(kRecordTypeData, next_index + slot, batch[slot]);
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
      options.rewrite_header(format_internal::SerializeObjectHeader(header));
    }
    uint8_t end[kEndPayloadSizeMax];
    PutField(end, kEndPlaintextSize, plaintext_size);
    std::memcpy(end + kEndPlaintextSha256.offset, digest.data(), kEndPlaintextSha256.size);
    if (header.cipher == Cipher::kNone) {
      const Sha256Digest stored = stored_hash.Final();
      std::memcpy(end + kEndStoredSha256.offset, stored.data(), kEndStoredSha256.size);
    }
    Emit(sealers[0]->Seal(kRecordTypeEnd, next_index, Bytes(end, EndPayloadSize(header.cipher))));
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

}  // namespace walstore
