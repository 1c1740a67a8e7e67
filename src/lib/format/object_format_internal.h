// Internals of object_format.cc that tests check directly.  Not installed.
#pragma once

#include <walstore/crypto.h>

#include <array>
#include <cstdint>

namespace walstore::format_internal {

// The AES-256-GCM nonce of record `index` of type `type` in an object of
// format `version` (docs/format.md, "Encryption"): version 1 holds a 32-bit
// index (bytes 0..3, type at 4), version 2 a 64-bit one (bytes 0..7, type at
// 8), so version 2 nonces never repeat within an object.
std::array<uint8_t, AesGcm::kNonceSize> RecordNonce(uint16_t version, uint8_t type,
                                                    uint64_t index);

}  // namespace walstore::format_internal
