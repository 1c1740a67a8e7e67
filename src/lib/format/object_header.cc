#include "format/object_header.h"

#include <walstore/error.h>

#include <algorithm>
#include <cstring>

#include "format/object_layout.h"

namespace walstore {

using namespace object_layout;

namespace {

std::array<uint8_t, kHeaderCheck.size> HeaderCheck(const uint8_t* header) {
  const Sha256Digest digest = Sha256Of(Bytes(header, kHeaderCheck.offset));
  std::array<uint8_t, kHeaderCheck.size> check;
  std::copy_n(digest.begin(), check.size(), check.begin());
  return check;
}

}  // namespace

std::array<uint8_t, kObjectHeaderSize> format_internal::SerializeObjectHeader(
    const ObjectHeader& h) {
  std::array<uint8_t, kObjectHeaderSize> out{};
  uint8_t* p = out.data();
  std::memcpy(p + kHeaderMagic.offset, kMagic, kHeaderMagic.size);
  PutField(p, kHeaderVersion, h.version);
  PutField(p, kHeaderCodec, static_cast<uint8_t>(h.codec));
  PutField(p, kHeaderCipher, static_cast<uint8_t>(h.cipher));
  PutField(p, kHeaderChunkSize, h.chunk_size);
  PutField(p, kHeaderKeyId, h.key_id);
  std::memcpy(p + kHeaderSalt.offset, h.salt.data(), kHeaderSalt.size);
  if (h.version >= 2) {
    std::memcpy(p + kHeaderIdentityHash.offset, h.identity_hash.data(), kHeaderIdentityHash.size);
  }
  // From kHeaderDescriptionSize on, the header may be rewritten once the
  // digest is known (not in the AAD).
  PutField(p, kHeaderFlags, h.has_digest ? kHeaderFlagHasDigest : 0);
  PutField(p, kHeaderPlaintextSize, h.plaintext_size);
  std::memcpy(p + kHeaderPlaintextSha256.offset, h.plaintext_sha256.data(),
              kHeaderPlaintextSha256.size);
  const auto check = HeaderCheck(p);
  std::memcpy(p + kHeaderCheck.offset, check.data(), check.size());
  return out;
}

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
  if (std::memcmp(p + kHeaderMagic.offset, kMagic, kHeaderMagic.size) != 0) {
    Fail(ErrorCode::kCorrupt, "{}: not a walstore object (bad magic)", what);
  }
  const bool check_ok =
      std::memcmp(HeaderCheck(p).data(), p + kHeaderCheck.offset, kHeaderCheck.size) == 0;
  ObjectHeader h;
  h.version = static_cast<uint16_t>(GetField(p, kHeaderVersion));
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
  const auto codec = static_cast<uint8_t>(GetField(p, kHeaderCodec));
  const auto cipher = static_cast<uint8_t>(GetField(p, kHeaderCipher));
  h.codec = static_cast<Codec>(codec);
  h.cipher = static_cast<Cipher>(cipher);
  if (codec > static_cast<uint8_t>(Codec::kZstd)) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: unknown compression codec {}", what, codec);
  }
  if (cipher > static_cast<uint8_t>(Cipher::kAes256Gcm)) {
    Fail(ErrorCode::kUnsupportedFormat, "{}: unknown cipher {}", what, cipher);
  }
  h.chunk_size = static_cast<uint32_t>(GetField(p, kHeaderChunkSize));
  if (h.chunk_size == 0 || h.chunk_size > kMaxChunkSize) {
    Fail(ErrorCode::kCorrupt, "{}: impossible chunk size {}", what, h.chunk_size);
  }
  h.key_id = GetField(p, kHeaderKeyId);
  std::memcpy(h.salt.data(), p + kHeaderSalt.offset, kHeaderSalt.size);
  if (h.version >= 2) {
    std::memcpy(h.identity_hash.data(), p + kHeaderIdentityHash.offset, kHeaderIdentityHash.size);
  }
  h.has_digest = (GetField(p, kHeaderFlags) & kHeaderFlagHasDigest) != 0;
  h.plaintext_size = GetField(p, kHeaderPlaintextSize);
  std::memcpy(h.plaintext_sha256.data(), p + kHeaderPlaintextSha256.offset,
              kHeaderPlaintextSha256.size);
  return h;
}

ObjectHeader ReadObjectHeader(ReadStream& in, const std::string& what) {
  std::array<uint8_t, kObjectHeaderSize> buffer;
  const size_t n = ReadFully(in, buffer);
  return ParseObjectHeader(Bytes(buffer.data(), n), what);
}

std::array<uint8_t, 8> ObjectIdentityHash(std::string_view identity) {
  Sha256 hash;
  hash.Update(AsBytes(kIdentityHashLabel));
  hash.Update(AsBytes(identity));
  const Sha256Digest digest = hash.Final();
  std::array<uint8_t, kHeaderIdentityHash.size> out;
  std::copy_n(digest.begin(), out.size(), out.begin());
  return out;
}

}  // namespace walstore
