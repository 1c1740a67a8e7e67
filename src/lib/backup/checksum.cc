#include "backup/checksum.h"

#include <nmmintrin.h>
#include <openssl/evp.h>
#include <walstore/crypto.h>
#include <walstore/error.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace walstore::backup {
namespace {

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    table[i] = crc;
  }
  return table;
}

uint32_t Crc32cPortable(uint32_t crc, const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t crc, const uint8_t* data,
                                                       size_t size) {
  uint64_t c = crc;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, data, 8);
    c = _mm_crc32_u64(c, word);
    data += 8;
    size -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (size-- > 0) c32 = _mm_crc32_u8(c32, *data++);
  return c32;
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}

class Crc32cChecksum : public FileChecksum {
 public:
  void Update(Bytes data) override { crc_ = Crc32cExtend(crc_, data.data(), data.size()); }
  std::string FinalHex() override {
    uint32_t value = ~crc_;
    uint8_t bytes[4];
    std::memcpy(bytes, &value, 4);  // memory order, as pg_checksum_final
    return ToHex(Bytes(bytes, 4));
  }

 private:
  uint32_t crc_ = 0xFFFFFFFFu;
};

class EvpChecksum : public FileChecksum {
 public:
  explicit EvpChecksum(const EVP_MD* md) : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, md, nullptr) != 1) {
      Fail(ErrorCode::kInternal, "cannot initialise a digest");
    }
  }
  ~EvpChecksum() override { EVP_MD_CTX_free(ctx_); }
  void Update(Bytes data) override { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  std::string FinalHex() override {
    uint8_t out[EVP_MAX_MD_SIZE];
    unsigned size = 0;
    EVP_DigestFinal_ex(ctx_, out, &size);
    return ToHex(Bytes(out, size));
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, const uint8_t* data, size_t size) {
  return HaveSse42() ? Crc32cSse42(crc, data, size) : Crc32cPortable(crc, data, size);
}

std::unique_ptr<FileChecksum> MakeFileChecksum(std::string_view algorithm) {
  std::string upper(algorithm);
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  if (upper.empty() || upper == "NONE") return nullptr;
  if (upper == "CRC32C") return std::make_unique<Crc32cChecksum>();
  const EVP_MD* md = upper == "SHA224"   ? EVP_sha224()
                     : upper == "SHA256" ? EVP_sha256()
                     : upper == "SHA384" ? EVP_sha384()
                     : upper == "SHA512" ? EVP_sha512()
                                         : nullptr;
  if (!md)
    Fail(ErrorCode::kUnsupportedFormat, "unknown manifest checksum algorithm '{}'", algorithm);
  return std::make_unique<EvpChecksum>(md);
}

}  // namespace walstore::backup
