// Keys, hashing and the AES-256-GCM chunk cipher (OpenSSL).
#pragma once

#include <walstore/stream.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <optional>
#include <string_view>

namespace walstore {

using Sha256Digest = std::array<uint8_t, 32>;
std::string ToHex(Bytes bytes);
inline std::string ToHex(const Sha256Digest& d) { return ToHex(Bytes(d.data(), d.size())); }
// 64 hex digits (either case) to 32 bytes; nullopt for anything else.
std::optional<Sha256Digest> ParseSha256Hex(std::string_view hex);

// Incremental SHA-256.  Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(Bytes data);
  Sha256Digest Final();  // may be called once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
Sha256Digest Sha256Of(Bytes data);
Sha256Digest HmacSha256(Bytes key, Bytes data);

// A 256-bit encryption key.  The key id is the first 8 bytes of
// SHA-256("walstore-key-id" || key): stored in every object header so that a
// wrong key is reported as such, and safe to print.
class Key {
 public:
  explicit Key(const std::array<uint8_t, 32>& bytes);
  ~Key();  // wipes the key material
  Key(const Key&) = default;
  Key& operator=(const Key&) = default;

  const std::array<uint8_t, 32>& bytes() const { return bytes_; }
  uint64_t id() const { return id_; }
  std::string IdHex() const;  // 16 lower-case hex digits

 private:
  std::array<uint8_t, 32> bytes_;
  uint64_t id_;
};
std::string KeyIdHex(uint64_t id);

// 64 hex characters (surrounding white space ignored).  Throws
// Error(kConfig) without echoing the text.
Key ParseHexKey(std::string_view hex, std::string_view source_for_messages);
// Reads a key file: one line of 64 hex characters.  Refuses (kConfig) a file
// that group or others can read or write, naming the file and its mode.
Key LoadKeyFile(const std::string& path);

// Per-object key: HKDF-SHA256(master, salt, "walstore object v1").  With a
// fresh random 32-byte salt per object, chunk nonces (the chunk index) are
// never reused under one key.
std::array<uint8_t, 32> DeriveObjectKey(const Key& master, Bytes salt);

void RandomBytes(MutableBytes out);

// AES-256-GCM with a 96-bit nonce and 128-bit tag.  One instance per thread.
class AesGcm {
 public:
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kNonceSize = 12;
  explicit AesGcm(const std::array<uint8_t, 32>& key);
  ~AesGcm();
  AesGcm(const AesGcm&) = delete;
  AesGcm& operator=(const AesGcm&) = delete;
  // out.size() == in.size() + kTagSize (ciphertext then tag).  out may start
  // at in.data() (encryption in place), but must not overlap it otherwise.
  void Seal(const std::array<uint8_t, kNonceSize>& nonce, Bytes aad, Bytes in, MutableBytes out);
  // in = ciphertext then tag; out.size() == in.size() - kTagSize.  Returns
  // false when authentication fails (out is then garbage).  out may start at
  // in.data() (decryption in place), but must not overlap it otherwise.
  bool Open(const std::array<uint8_t, kNonceSize>& nonce, Bytes aad, Bytes in, MutableBytes out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace walstore
