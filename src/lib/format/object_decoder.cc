// ObjectDecoder (include/walstore/object_format.h): object in, verified
// plaintext out; the checks and their messages are listed in docs/format.md,
// "What a reader checks".
#include <walstore/error.h>
#include <walstore/object_format.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <future>
#include <optional>

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

  // Parallel decoding (DecodeOptions::threads > 1): one lane per helper
  // thread, with what opening a record needs that is not thread-safe.
  struct Lane {
    std::unique_ptr<BlockCodec> codec;
    std::unique_ptr<AesGcm> cipher;
    std::unique_ptr<format_internal::RecordAad> aad;
    TaskThread worker;  // opens (decrypts, decompresses) the lane's records in order
  };
  // One record read ahead: stored as read, then opened by its lane.
  struct Slot {
    ByteBuffer stored;
    ByteBuffer plain;
    RecordHeader record;
    // Reading it failed: the error waits here until the record is due, so
    // the records before it are served first, as without helper threads.
    std::future<void> read;
    bool read_ok = false;
    uint64_t open_ticket = 0;  // of its lane's worker
    Bytes body;                // opened payload: the plaintext, or the end record's
    uint64_t hash_ticket = 0;  // of `hasher`, once served
  };

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
  Bytes current;        // the chunk Read() serves (in plain_buffers or a slot)
  size_t plain_pos = 0;
  uint64_t next_index = 0;
  Sha256 hash;
  Sha256 stored_hash;  // unencrypted objects (kEndStoredSha256)
  uint64_t plaintext_size = 0;
  Sha256Digest digest{};
  bool done = false;
  // Parallel decoding: record i is read into slots[i % slots.size()] and
  // opened on lanes[i % lanes.size()]; records [next_index, read_next) are
  // read ahead, at most lanes.size() of them.
  std::vector<Slot> slots;
  uint64_t read_next = 0;
  bool read_stopped = false;  // end record read, or reading failed
  size_t peak_read_ahead = 0;
  std::exception_ptr failure;  // the first error of reading or opening a record
  // Helper threads, declared last: destroyed first, their destructors finish
  // the queued work before the buffers it uses go away (also after an error).
  std::vector<std::unique_ptr<Lane>> lanes;
  // SHA-256 of the chunks, in order, on one helper thread.
  TaskThread hasher;

  Impl(ReadStream& s, std::span<const Key> keys, bool allow_plaintext, int threads, std::string id,
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
    std::optional<std::array<uint8_t, 32>> object_key;  // wiped below
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
      object_key = DeriveObjectKey(*key, header.salt);
      cipher = std::make_unique<AesGcm>(*object_key);
      aad = std::make_unique<format_internal::RecordAad>(header_bytes, header.version, identity);
    }
    if (header.cipher == Cipher::kNone) {
      format_internal::StartStoredHash(stored_hash, header_bytes, header.version, identity);
    }
    codec = MakeBlockCodec({header.codec, 0});
    stored = ByteBuffer(StoredBufferSize());
    // Untouched pages cost nothing (ByteBuffer is not zero-filled): a small
    // object touches a few kilobytes of each.
    const size_t lane_count = LaneCount(threads);
    if (lane_count <= 1) {
      if (object_key) std::fill(object_key->begin(), object_key->end(), 0);
      auto buffers = ByteBuffer::Several(kPlainBuffers, header.chunk_size);
      std::move(buffers.begin(), buffers.end(), std::begin(plain_buffers));
      return;
    }
    stored = ByteBuffer();
    for (size_t i = 0; i < lane_count; ++i) {
      auto lane = std::make_unique<Lane>();
      lane->codec = MakeBlockCodec({header.codec, 0});
      if (object_key) {
        lane->cipher = std::make_unique<AesGcm>(*object_key);
        lane->aad = std::make_unique<format_internal::RecordAad>(header_bytes, header.version,
                                                                 identity);
      }
      lanes.push_back(std::move(lane));
    }
    if (object_key) std::fill(object_key->begin(), object_key->end(), 0);
    // Two slots more than lanes: served chunks may still be hashing.
    slots.resize(lanes.size() + kPlainBuffers - 1);
    auto plain = ByteBuffer::Several(slots.size(), header.chunk_size);
    for (size_t i = 0; i < slots.size(); ++i) {
      slots[i].stored = ByteBuffer(StoredBufferSize());
      slots[i].plain = std::move(plain[i]);
    }
  }

  // Helper threads for DecodeOptions::threads (object_format.h): at most
  // kMaxDecodeThreads, at most kDecodeReadAheadBudget / chunk_size records
  // in flight, and no more than the records the header says the object has
  // (the data records and the end record).  1: decode serially.  The header
  // is not authenticated yet: a forged one can only lower the count.
  size_t LaneCount(int threads) const {
    const uint64_t chunk = header.chunk_size;
    uint64_t count = std::clamp(threads, 1, kMaxDecodeThreads);
    count = std::min<uint64_t>(count, std::max<uint64_t>(1, kDecodeReadAheadBudget / chunk));
    if (header.has_digest) {
      const uint64_t data_records =
          header.plaintext_size / chunk + (header.plaintext_size % chunk != 0);
      // One data record (or none): nothing to overlap.
      count = data_records <= 1 ? 1 : std::min(count, data_records + 1);
    }
    return static_cast<size_t>(count);
  }

  size_t StoredBufferSize() const {
    return format_internal::MaxRecordPayload(codec->MaxCompressedSize(header.chunk_size),
                                             header.chunk_size) +
           TagSize(header.cipher);
  }

  [[noreturn]] void Corrupt(const std::string& detail) {
    throw Error(ErrorCode::kCorrupt, fmt::format("{} is damaged: {}", what, detail),
                "the stored object cannot be used; restore it from another copy of the archive");
  }

  // `index`: the record being read.
  void ReadExactly(MutableBytes out, const char* part, uint64_t index) {
    if (ReadFully(source, out) != out.size()) {
      Corrupt(fmt::format("truncated (the object ends inside {} {})", part, index));
    }
  }

  RecordHeader ReadRecordHeader(std::array<uint8_t, kRecordHeaderSize>& rh_bytes, uint64_t index) {
    const size_t got = ReadFully(source, rh_bytes);
    if (got == 0) Corrupt(fmt::format("truncated after {} records (no end record)", index));
    if (got != rh_bytes.size()) Corrupt(fmt::format("truncated inside record header {}", index));
    const RecordHeader record = RecordHeader::Parse(rh_bytes.data());
    const size_t tag = TagSize(header.cipher);
    if (record.type != kRecordTypeData && record.type != kRecordTypeEnd) {
      Corrupt(fmt::format("record {} has unknown type {}", index, record.type));
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
      Corrupt(fmt::format("record {} has an invalid header", index));
    }
    if (record.index != index) {
      Corrupt(fmt::format("record {} found where record {} belongs (reordered or spliced)",
                          record.index, index));
    }
    const uint32_t end_size = EndPayloadSize(header.cipher);
    const uint32_t max_plain = record.type == kRecordTypeEnd ? end_size : header.chunk_size;
    if (record.plain_len > max_plain || (record.type == kRecordTypeEnd && record.plain_len != end_size) ||
        record.stored_len > StoredBufferSize() || record.stored_len < tag ||
        (record.type == kRecordTypeData && record.plain_len == 0) ||
        (raw && record.stored_len - tag != record.plain_len)) {
      Corrupt(fmt::format("record {} has impossible lengths", index));
    }
    return record;
  }

  // Reads record `index` into `buffer`; returns its header, its payload as
  // stored is at the start of `buffer`.  Unencrypted records go into the
  // stored SHA-256 here, in order.
  RecordHeader ReadRecord(uint64_t index, ByteBuffer& buffer) {
    std::array<uint8_t, kRecordHeaderSize> rh_bytes;
    const RecordHeader record = ReadRecordHeader(rh_bytes, index);
    MutableBytes payload(buffer.data(), record.stored_len);
    ReadExactly(payload, "record", index);
    if (!cipher && record.type == kRecordTypeData) {
      stored_hash.Update(rh_bytes);
      stored_hash.Update(payload);
    }
    return record;
  }

  // Authenticates and decrypts (in place) the payload of `record` stored at
  // the start of `buffer` with `record_cipher` / `record_aad` (null when the
  // object is not encrypted); returns the opened payload.  Nothing
  // unauthenticated is decompressed or served.
  Bytes OpenRecord(const RecordHeader& record, ByteBuffer& buffer, AesGcm* record_cipher,
                   format_internal::RecordAad* record_aad) {
    MutableBytes payload(buffer.data(), record.stored_len);
    if (record_cipher == nullptr) return payload;
    MutableBytes opened(buffer.data(), record.stored_len - AesGcm::kTagSize);
    if (!record_cipher->Open(
            format_internal::RecordNonce(header.version, record.type, record.index),
            record_aad->For(record), payload, opened)) {
      Corrupt(fmt::format("record {} failed authentication", record.index));
    }
    return opened;
  }

  // The plaintext of data record `record` from its opened payload `body`.
  void Decompress(const RecordHeader& record, Bytes body, BlockCodec& record_codec,
                  MutableBytes out) {
    if ((record.flags & kRecordFlagRaw) != 0) {
      std::memcpy(out.data(), body.data(), body.size());
    } else if (!record_codec.Decompress(body, out)) {
      Corrupt(fmt::format("record {} does not decompress ({})", record.index,
                          CodecName(header.codec)));
    }
  }

  // Serves `out`, the plaintext of record next_index (its hashing is queued).
  void Serve(MutableBytes out) {
    current = out;
    plain_pos = 0;
    plaintext_size += out.size();
    ++next_index;
  }

  // Reads the next record; returns false after the verified end record.
  // Otherwise `current` holds the record's plaintext, whose hashing has
  // been queued.
  // After a failure every later call rethrows that failure (a threaded
  // decoder has consumed the futures that held it; a serial one would read
  // on from the middle of a record): the caller sees one answer.
  bool NextRecord() {
    if (failure) std::rethrow_exception(failure);
    try {
      return lanes.empty() ? NextRecordSerial() : NextRecordParallel();
    } catch (...) {  // kept, not handled: rethrown now and on every later call
      failure = std::current_exception();
      throw;
    }
  }

  bool NextRecordSerial() {
    const RecordHeader record = ReadRecord(next_index, stored);
    const Bytes body = OpenRecord(record, stored, cipher.get(), aad.get());
    if (record.type == kRecordTypeEnd) {
      FinishObject(body);
      return false;
    }
    // The buffer of chunk next_index - kPlainBuffers is reused: its hash
    // (ticket next_index - kPlainBuffers + 1) must have run.
    if (next_index >= kPlainBuffers) hasher.WaitFor(next_index - kPlainBuffers + 1);
    MutableBytes out(plain_buffers[next_index % kPlainBuffers].data(), record.plain_len);
    Decompress(record, body, *codec, out);
    hasher.Submit([this, out] { hash.Update(out); });
    Serve(out);
    return true;
  }

  // Reads record read_next into its slot and queues its opening on its lane.
  // A failed read stops reading ahead; its error waits in the slot.
  void ReadAhead() {
    const uint64_t index = read_next++;
    Slot& slot = slots[index % slots.size()];
    // The slot's previous record was served; its hash must have run.
    if (slot.hash_ticket != 0) hasher.WaitFor(slot.hash_ticket);
    slot.hash_ticket = 0;
    slot.read_ok = false;
    std::packaged_task<void()> read([this, &slot, index] {
      slot.record = ReadRecord(index, slot.stored);
      slot.read_ok = true;
    });
    slot.read = read.get_future();
    read();
    if (!slot.read_ok) {
      read_stopped = true;
      return;
    }
    if (slot.record.type == kRecordTypeEnd) read_stopped = true;
    Lane& lane = *lanes[index % lanes.size()];
    slot.open_ticket = lane.worker.Submit([this, &slot, &lane] {
      slot.body = OpenRecord(slot.record, slot.stored, lane.cipher.get(), lane.aad.get());
      if (slot.record.type == kRecordTypeEnd) return;
      MutableBytes out(slot.plain.data(), slot.record.plain_len);
      Decompress(slot.record, slot.body, *lane.codec, out);
      slot.body = out;
    });
    peak_read_ahead = std::max<size_t>(peak_read_ahead, read_next - next_index);
  }

  // Record next_index, read ahead and opened on helper threads: the same
  // records, checks and errors in the same order as NextRecordSerial().
  bool NextRecordParallel() {
    while (!read_stopped && read_next < next_index + lanes.size()) ReadAhead();
    Slot& slot = slots[next_index % slots.size()];
    slot.read.get();  // rethrows the error of reading it
    lanes[next_index % lanes.size()]->worker.WaitFor(slot.open_ticket);
    if (slot.record.type == kRecordTypeEnd) {
      FinishObject(slot.body);
      return false;
    }
    MutableBytes out(slot.plain.data(), slot.body.size());
    slot.hash_ticket = hasher.Submit([this, out] { hash.Update(out); });
    Serve(out);
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
                                   false, 1, std::move(identity), std::move(what))) {}
ObjectDecoder::ObjectDecoder(ReadStream& source, const DecodeOptions& options,
                             std::string identity, std::string what)
    : impl_(std::make_unique<Impl>(source, options.keys, options.allow_plaintext, options.threads,
                                   std::move(identity), std::move(what))) {}
ObjectDecoder::~ObjectDecoder() = default;
size_t ObjectDecoder::Read(MutableBytes out) { return impl_->Read(out); }
uint64_t ObjectDecoder::DecodeTo(WriteStream& sink) { return impl_->DecodeTo(sink); }
const ObjectHeader& ObjectDecoder::header() const { return impl_->header; }
const Sha256Digest& ObjectDecoder::plaintext_sha256() const { return impl_->digest; }
uint64_t ObjectDecoder::plaintext_size() const { return impl_->plaintext_size; }
size_t ObjectDecoder::peak_records_read_ahead() const { return impl_->peak_read_ahead; }
size_t ObjectDecoder::chunk_buffers() const {
  return impl_->lanes.empty() ? 1 + Impl::kPlainBuffers : 2 * impl_->slots.size();
}

}  // namespace walstore
