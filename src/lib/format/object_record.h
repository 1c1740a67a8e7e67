// Records of an object as the encoder writes and the decoder reads them
// (docs/format.md, "Records" and "Encryption"): the record header codec, the
// AES-256-GCM nonce and associated data of a record, and the start of the
// stored SHA-256 of unencrypted objects.  Internal to the format code; the
// byte positions are in object_layout.h.
#pragma once

#include <walstore/crypto.h>
#include <walstore/object_format.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "format/object_layout.h"

namespace walstore::format_internal {

// A record header, decoded.  Parse() does not validate: the decoder checks
// type, flags, index and lengths against the object it reads.
struct RecordHeader {
  uint8_t type = 0;
  uint8_t flags = 0;
  // Version 1: 32 bits (the high field is reserved there: Parse() keeps it in
  // the index, where a non-zero value fails the index check).  Version 2: 48.
  uint64_t index = 0;
  uint32_t plain_len = 0;
  uint32_t stored_len = 0;

  std::array<uint8_t, object_layout::kRecordHeaderSize> Serialize() const;
  // Reads object_layout::kRecordHeaderSize bytes at `bytes`.
  static RecordHeader Parse(const uint8_t* bytes);
};

// The AES-256-GCM nonce of record `index` of type `type` in an object of
// format `version` (docs/format.md, "Encryption"): version 1 holds a 32-bit
// index (bytes 0..3, type at 4), version 2 a 64-bit one (bytes 0..7, type at
// 8), so version 2 nonces never repeat within an object.
std::array<uint8_t, AesGcm::kNonceSize> RecordNonce(uint16_t version, uint8_t type,
                                                    uint64_t index);

// The associated data of the records of one object: header bytes
// [0, kHeaderDescriptionSize), the record header, and in version 2 the
// object's identity (its storage key).  Holds its own copy of what it is
// given; one instance per thread (For() reuses one buffer).
class RecordAad {
 public:
  RecordAad(const std::array<uint8_t, kObjectHeaderSize>& header, uint16_t version,
            std::string_view identity);
  // The associated data of `record`; valid until the next call.
  Bytes For(const RecordHeader& record);

 private:
  std::vector<uint8_t> aad_;
};

// Starts the stored SHA-256 that the end record of an unencrypted object
// carries: version 2 with the identity's length and the identity, then the
// header bytes [0, kHeaderDescriptionSize).  The data records follow as
// stored.
void StartStoredHash(Sha256& stored_hash, const std::array<uint8_t, kObjectHeaderSize>& header,
                     uint16_t version, std::string_view identity);

// GCM tag bytes at the end of every record's payload: 16 encrypted, else 0.
size_t TagSize(Cipher cipher);

// The largest payload a record of an object with this chunk size may store
// before the tag: a chunk compressed at worst (`max_compressed_chunk`, the
// codec's bound), a raw chunk, or the end record payload.
size_t MaxRecordPayload(size_t max_compressed_chunk, uint32_t chunk_size);

}  // namespace walstore::format_internal
