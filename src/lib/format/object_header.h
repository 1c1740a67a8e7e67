// Writing the object header (ParseObjectHeader in <walstore/object_format.h>
// reads it).  Internal to the format code.
#pragma once

#include <walstore/object_format.h>

#include <array>
#include <cstdint>

namespace walstore::format_internal {

// The 128 header bytes for `header` (docs/format.md, "Header"), header check
// included.  The identity hash is written for version 2 only (version 1 keeps
// those bytes 0), the plaintext size and SHA-256 with `has_digest` set or
// not.  Pure function; it does not validate `header`.
std::array<uint8_t, kObjectHeaderSize> SerializeObjectHeader(const ObjectHeader& header);

}  // namespace walstore::format_internal
