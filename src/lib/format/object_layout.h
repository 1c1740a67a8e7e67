// The byte layout of a walstore object: every field of the object header, the
// record header and the end record payload, and of the AES-256-GCM nonce,
// named once with its offset and size.  docs/format.md has the same tables
// (tests/unit/format/object_layout_test.cc checks that they agree and that an
// encoded object has its values where these names say).  Internal to the
// format code: nothing else should know where a field sits.
//
// Only constants: no state, usable from any thread.  All integers are
// little-endian and unsigned.
#pragma once

#include <walstore/object_format.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/endian.h"

namespace walstore::object_layout {

// One field: `size` bytes at `offset` from the start of its structure.
struct Field {
  size_t offset;
  size_t size;
  constexpr size_t end() const { return offset + size; }
};

// Reads / writes an integer field (size 1..8) of the structure at `base`.
inline uint64_t GetField(const uint8_t* base, Field field) {
  return GetLe(base + field.offset, static_cast<int>(field.size));
}
inline void PutField(uint8_t* base, Field field, uint64_t value) {
  PutLe(base + field.offset, value, static_cast<int>(field.size));
}

// ---- object header (kObjectHeaderSize = 128 bytes), versions 1 and 2
inline constexpr Field kHeaderMagic{0, 8};
inline constexpr Field kHeaderVersion{8, 2};
inline constexpr Field kHeaderCodec{10, 1};
inline constexpr Field kHeaderCipher{11, 1};
inline constexpr Field kHeaderChunkSize{12, 4};
inline constexpr Field kHeaderKeyId{16, 8};
inline constexpr Field kHeaderSalt{24, 32};
// Version 2: ObjectIdentityHash(identity).  Version 1: reserved, written as 0
// and not checked.
inline constexpr Field kHeaderIdentityHash{56, 8};
inline constexpr Field kHeaderFlags{64, 4};
inline constexpr Field kHeaderReserved68{68, 4};  // 0
inline constexpr Field kHeaderPlaintextSize{72, 8};
inline constexpr Field kHeaderPlaintextSha256{80, 32};
inline constexpr Field kHeaderReserved112{112, 8};  // 0
// The first 8 bytes of SHA-256(header bytes [0, kHeaderCheck.offset)).
inline constexpr Field kHeaderCheck{120, 8};

inline constexpr char kMagic[kHeaderMagic.size] = {'W', 'A', 'L', 'S', 'T', 'O', 'R', 'E'};
// kHeaderFlags: the plaintext size and SHA-256 fields are set.
inline constexpr uint32_t kHeaderFlagHasDigest = 1;
// Header bytes [0, kHeaderDescriptionSize) (magic .. identity hash) say how to
// decode the object and are fixed when its first byte is written: they are
// part of every record's associated data and of the stored SHA-256.  The rest
// (flags .. header check) may be rewritten once the digest is known.
inline constexpr size_t kHeaderDescriptionSize = kHeaderFlags.offset;

static_assert(kHeaderCheck.end() == kObjectHeaderSize);
static_assert(kHeaderIdentityHash.end() == kHeaderDescriptionSize);

// ---- record header (16 bytes), followed by `stored length` payload bytes
inline constexpr Field kRecordType{0, 1};
inline constexpr Field kRecordFlags{1, 1};
// Version 2: bits 32..47 of the index.  Version 1: reserved, must be 0.
inline constexpr Field kRecordIndexHigh{2, 2};
inline constexpr Field kRecordIndexLow{4, 4};  // bits 0..31 of the index
inline constexpr int kRecordIndexLowBits = kRecordIndexLow.size * 8;
inline constexpr Field kRecordPlainLength{8, 4};
inline constexpr Field kRecordStoredLength{12, 4};  // payload bytes, GCM tag included
inline constexpr size_t kRecordHeaderSize = kRecordStoredLength.end();
static_assert(kRecordHeaderSize == 16);

inline constexpr uint8_t kRecordTypeData = 1;
inline constexpr uint8_t kRecordTypeEnd = 2;
// kRecordFlags: the payload is the plaintext, not compressed (data records).
inline constexpr uint8_t kRecordFlagRaw = 1;

// ---- end record payload (before encryption)
inline constexpr Field kEndPlaintextSize{0, 8};
inline constexpr Field kEndPlaintextSha256{8, 32};
// Unencrypted objects only: SHA-256 of what was stored before the end record
// (version 2: the identity's length as 8 bytes and the identity; then header
// bytes [0, kHeaderDescriptionSize) and every data record as stored).
inline constexpr Field kEndStoredSha256{40, 32};
inline constexpr uint32_t kEndPayloadSizeEncrypted = kEndPlaintextSha256.end();   // 40
inline constexpr uint32_t kEndPayloadSizeUnencrypted = kEndStoredSha256.end();    // 72
inline constexpr uint32_t kEndPayloadSizeMax = kEndPayloadSizeUnencrypted;
inline constexpr uint32_t EndPayloadSize(Cipher cipher) {
  return cipher == Cipher::kNone ? kEndPayloadSizeUnencrypted : kEndPayloadSizeEncrypted;
}
// Version 2's stored SHA-256 starts with the identity's length in this many bytes.
inline constexpr int kStoredHashIdentityLengthSize = 8;

// ---- AES-256-GCM nonce (12 bytes): the record index, then the record type,
// then zeros.
inline constexpr Field kNonceIndexV1{0, 4};
inline constexpr Field kNonceIndexV2{0, 8};
inline constexpr size_t kNonceTypeOffsetV1 = kNonceIndexV1.end();
inline constexpr size_t kNonceTypeOffsetV2 = kNonceIndexV2.end();

// ---- identity hash: the first kHeaderIdentityHash.size bytes of
// SHA-256(kIdentityHashLabel || identity).
inline constexpr std::string_view kIdentityHashLabel = "walstore-object-identity";

}  // namespace walstore::object_layout
