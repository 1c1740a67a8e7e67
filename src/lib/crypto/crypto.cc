#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/crypto.h>
#include <walstore/error.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

namespace walstore {
namespace {

constexpr std::string_view kKeyIdLabel = "walstore-key-id";
constexpr std::string_view kObjectKeyInfo = "walstore object v1";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

[[noreturn]] void FailOpenSsl(const char* what) {
  Fail(ErrorCode::kInternal, "OpenSSL {} failed", what);
}

// Sets OpenSSL up once, before its first use in the process.
// OPENSSL_INIT_NO_ATEXIT: OpenSSL's exit handler would free every provider,
// algorithm and name table it built, which the kernel reclaims faster at
// exit (nothing in that state is secret: keys live in our objects, wiped by
// their destructors).  The system configuration (openssl.cnf) is still
// loaded: it may enable the FIPS provider or set the TLS policy that libcurl
// and libpq use later in the same process, and OpenSSL loads it only once.
void InitOpenSsl() {
  static const bool ok =
      OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_LOAD_CONFIG, nullptr) == 1;
  if (!ok) FailOpenSsl("initialisation");
}

// Each algorithm is fetched from the provider once and kept for the life of
// the process: EVP_sha256() and the like make OpenSSL 3 look the algorithm
// up again at every init.
const EVP_MD* Sha256Md() {
  static EVP_MD* const md = (InitOpenSsl(), EVP_MD_fetch(nullptr, "SHA2-256", nullptr));
  if (md == nullptr) FailOpenSsl("SHA-256 fetch");
  return md;
}

const EVP_CIPHER* Aes256GcmCipher() {
  static EVP_CIPHER* const cipher =
      (InitOpenSsl(), EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
  if (cipher == nullptr) FailOpenSsl("AES-256-GCM fetch");
  return cipher;
}

EVP_KDF* HkdfKdf() {
  static EVP_KDF* const kdf = (InitOpenSsl(), EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (kdf == nullptr) FailOpenSsl("HKDF fetch");
  return kdf;
}

}  // namespace

std::string ToHex(Bytes bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  const EVP_MD* md = Sha256Md();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, md, nullptr) != 1) {
    FailOpenSsl("SHA-256 init");
  }
}
Sha256::~Sha256() = default;

void Sha256::Update(Bytes data) {
  if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) FailOpenSsl("SHA-256 update");
}

Sha256Digest Sha256::Final() {
  Sha256Digest digest;
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, digest.data(), &size) != 1) FailOpenSsl("SHA-256 final");
  return digest;
}

Sha256Digest Sha256Of(Bytes data) {
  Sha256 hash;
  hash.Update(data);
  return hash.Final();
}

Sha256Digest HmacSha256(Bytes key, Bytes data) {
  Sha256Digest out;
  unsigned int size = 0;
  if (HMAC(Sha256Md(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
           out.data(), &size) == nullptr) {
    FailOpenSsl("HMAC-SHA256");
  }
  return out;
}

Key::Key(const std::array<uint8_t, 32>& bytes) : bytes_(bytes) {
  Sha256 hash;
  hash.Update(AsBytes(kKeyIdLabel));
  hash.Update(Bytes(bytes_.data(), bytes_.size()));
  const Sha256Digest digest = hash.Final();
  id_ = 0;
  for (int i = 0; i < 8; ++i) id_ = (id_ << 8) | digest[i];
}

Key::~Key() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

std::string KeyIdHex(uint64_t id) { return fmt::format("{:016x}", id); }
std::string Key::IdHex() const { return KeyIdHex(id_); }

std::optional<Sha256Digest> ParseSha256Hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Sha256Digest bytes{};
  for (size_t i = 0; i < 32; ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      OPENSSL_cleanse(bytes.data(), bytes.size());
      return std::nullopt;
    }
    bytes[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return bytes;
}

Key ParseHexKey(std::string_view hex, std::string_view source) {
  while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.front()))) hex.remove_prefix(1);
  while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.back()))) hex.remove_suffix(1);
  std::optional<Sha256Digest> bytes = ParseSha256Hex(hex);
  if (!bytes) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{} does not hold a 256-bit key (expected 64 hex characters, found {} "
                            "characters)",
                            source, hex.size()),
                "create one with: openssl rand -hex 32 > KEYFILE && chmod 600 KEYFILE");
  }
  Key key(*bytes);
  OPENSSL_cleanse(bytes->data(), bytes->size());
  return key;
}

Key LoadKeyFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error(ErrorCode::kConfig,
                fmt::format("could not open key file \"{}\": {}", path, std::strerror(err)),
                "set encryption_key_file / WALSTORE_ENCRYPTION_KEY_FILE to a readable key file");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    Fail(ErrorCode::kConfig, "key file \"{}\" is not a regular file", path);
  }
  if ((st.st_mode & 077) != 0) {
    close(fd);
    throw Error(ErrorCode::kConfig,
                fmt::format("key file \"{}\" is accessible by group or others (mode {:04o})", path,
                            st.st_mode & 07777),
                fmt::format("chmod 600 {}", path));
  }
  char buffer[256];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  if (n < 0) FailErrno(errno, fmt::format("could not read key file \"{}\"", path));
  Key key = ParseHexKey(std::string_view(buffer, static_cast<size_t>(n)),
                        fmt::format("key file \"{}\"", path));
  OPENSSL_cleanse(buffer, sizeof buffer);
  return key;
}

std::array<uint8_t, 32> DeriveObjectKey(const Key& master, Bytes salt) {
  std::array<uint8_t, 32> out{};
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(HkdfKdf());
  if (ctx == nullptr) FailOpenSsl("HKDF context");
  char digest[] = "SHA256";
  auto& key = const_cast<std::array<uint8_t, 32>&>(master.bytes());
  std::string info(kObjectKeyInfo);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key.data(), key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) FailOpenSsl("HKDF derive");
  return out;
}

void RandomBytes(MutableBytes out) {
  InitOpenSsl();
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) FailOpenSsl("RAND_bytes");
}

struct AesGcm::Impl {
  EVP_CIPHER_CTX* encrypt = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* decrypt = EVP_CIPHER_CTX_new();
  ~Impl() {
    EVP_CIPHER_CTX_free(encrypt);
    EVP_CIPHER_CTX_free(decrypt);
  }
};

AesGcm::AesGcm(const std::array<uint8_t, 32>& key) : impl_(std::make_unique<Impl>()) {
  const EVP_CIPHER* cipher = Aes256GcmCipher();
  if (impl_->encrypt == nullptr || impl_->decrypt == nullptr ||
      EVP_EncryptInit_ex(impl_->encrypt, cipher, nullptr, key.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(impl_->decrypt, cipher, nullptr, key.data(), nullptr) != 1) {
    FailOpenSsl("AES-256-GCM init");
  }
}
AesGcm::~AesGcm() = default;

void AesGcm::Seal(const std::array<uint8_t, kNonceSize>& nonce, Bytes aad, Bytes in,
                  MutableBytes out) {
  EVP_CIPHER_CTX* ctx = impl_->encrypt;
  int n = 0;
  int final_n = 0;
  if (out.size() != in.size() + kTagSize ||
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx, out.data(), &n, in.data(), static_cast<int>(in.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, out.data() + n, &final_n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, out.data() + in.size()) != 1) {
    FailOpenSsl("AES-256-GCM encrypt");
  }
}

bool AesGcm::Open(const std::array<uint8_t, kNonceSize>& nonce, Bytes aad, Bytes in,
                  MutableBytes out) {
  if (in.size() < kTagSize || out.size() != in.size() - kTagSize) return false;
  EVP_CIPHER_CTX* ctx = impl_->decrypt;
  int n = 0;
  int final_n = 0;
  const size_t body = in.size() - kTagSize;
  if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) != 1 ||
      EVP_DecryptUpdate(ctx, nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx, out.data(), &n, in.data(), static_cast<int>(body)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize,
                          const_cast<uint8_t*>(in.data() + body)) != 1) {
    return false;
  }
  return EVP_DecryptFinal_ex(ctx, out.data() + n, &final_n) == 1;
}

}  // namespace walstore
