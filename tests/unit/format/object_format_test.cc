// Tests for the object format's public interface (include/walstore/object_format.h):
// ObjectEncoder (src/lib/format/object_encoder.cc), ObjectDecoder (object_decoder.cc) and
// the header codec (object_header.cc), format version 2 (and reading version 1).  The
// named layout itself (object_layout.h) is checked in object_layout_test.cc.
//
// Layout facts used below, written out independently of object_layout.h (docs/format.md):
//   header: 128 bytes; magic "WALSTORE" at 0, version (uint16 LE) at 8, codec at 10,
//           cipher at 11, header check = first 8 bytes of SHA-256(bytes 0..119) at 120.
//           (Other header fields are located by value, so they may move.)
//   record: 16-byte record header (type, flags, index bits 32..47 LE at 2, index u32 LE at 4,
//           plain_len u32 LE at 8, stored_len u32 LE at 12), then stored_len bytes.
#include <doctest/doctest.h>

#include <walstore/codec.h>
#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/object_format.h>
#include <walstore/stream.h>

#include <chrono>
#include <map>
#include <set>
#include <cstring>
#include <string>
#include <vector>

#include "format/object_record.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::CodeName;
using walstore::test::CompressibleString;
using walstore::test::Contains;
using walstore::test::RandomString;
using walstore::test::ThrownCode;
using walstore::test::ThrownMessage;

namespace {

// The name objects are encoded and decoded under (version 2 binds them to it).
constexpr const char* kIdentity = "test/object";

Key KeyA() { return walstore::test::SequenceKey(0xA0); }
Key KeyB() {
  std::array<uint8_t, 32> b;
  for (size_t i = 0; i < 32; ++i) b[i] = static_cast<uint8_t>(0x11 * (i + 1));
  return Key(b);
}

struct Combo {
  CompressionSpec compression;
  bool encrypt;
  std::string Name() const { return ToString(compression) + (encrypt ? "+aes" : "+plain"); }
};

std::vector<Combo> AllCombos() {
  std::vector<Combo> out;
  for (CompressionSpec c : {CompressionSpec{Codec::kNone, 0}, CompressionSpec{Codec::kLz4, 0},
                            CompressionSpec{Codec::kZstd, 0}, CompressionSpec{Codec::kZstd, 9}}) {
    out.push_back({c, false});
    out.push_back({c, true});
  }
  return out;
}

struct Encoded {
  std::string bytes;
  ObjectHeader header;
  uint64_t plaintext_size = 0;
  Sha256Digest sha{};
  uint64_t encoded_size = 0;
};

// Encodes `data`, writing it in uneven pieces.
Encoded Encode(const std::string& data, const Combo& combo, uint32_t chunk_size,
               const Key* key = nullptr,
               std::optional<std::pair<uint64_t, Sha256Digest>> known = std::nullopt,
               int threads = 1) {
  static const Key kDefaultKey = KeyA();
  StringWriteStream sink;
  EncodeOptions o;
  o.identity = kIdentity;
  o.compression = combo.compression;
  o.key = combo.encrypt ? (key ? key : &kDefaultKey) : nullptr;
  o.chunk_size = chunk_size;
  o.known_digest = known;
  o.threads = threads;
  ObjectEncoder enc(sink, o);
  size_t pos = 0;
  size_t step = 1;
  while (pos < data.size()) {
    const size_t n = std::min(step, data.size() - pos);
    enc.Write(AsBytes(std::string_view(data).substr(pos, n)));
    pos += n;
    step = step * 5 + 3;
  }
  enc.Write(Bytes());
  enc.Finish();
  Encoded e;
  e.bytes = sink.data();
  e.header = enc.header();
  e.plaintext_size = enc.plaintext_size();
  e.sha = enc.plaintext_sha256();
  e.encoded_size = enc.encoded_size();
  return e;
}

struct Decoded {
  std::string data;
  ObjectHeader header;
  uint64_t plaintext_size = 0;
  Sha256Digest sha{};
};

Decoded Decode(const std::string& object, const Key* key, size_t read_size = 65536) {
  MemoryReadStream in{std::string_view(object)};
  ObjectDecoder dec(in, key, kIdentity);
  Decoded d;
  d.header = dec.header();
  d.data = walstore::test::ReadAll(dec, read_size);
  uint8_t extra[4];
  CHECK(dec.Read(MutableBytes(extra, 4)) == 0);  // stays at the end
  d.plaintext_size = dec.plaintext_size();
  d.sha = dec.plaintext_sha256();
  return d;
}

// Push mode: the plaintext as DecodeTo() hands it to a sink, after
// `read_first` bytes taken with Read() (0: DecodeTo from the start).
Decoded DecodeToSink(const std::string& object, const Key* key, size_t read_first = 0) {
  MemoryReadStream in{std::string_view(object)};
  ObjectDecoder dec(in, key, kIdentity);
  Decoded d;
  d.header = dec.header();
  d.data.resize(read_first);
  d.data.resize(ReadFully(dec, MutableBytes(reinterpret_cast<uint8_t*>(d.data.data()), read_first)));
  StringWriteStream sink;
  const uint64_t size = dec.DecodeTo(sink);
  d.data += sink.data();
  CHECK(size == d.data.size());
  CHECK(dec.DecodeTo(sink) == size);  // stays at the end
  d.plaintext_size = dec.plaintext_size();
  d.sha = dec.plaintext_sha256();
  return d;
}

// What decoding `object` completely throws ("no exception" when it succeeds);
// Read() and DecodeTo() must agree on it.
std::string DecodeOutcome(const std::string& object, const Key* key) {
  const std::string pulled = ThrownCode([&] { Decode(object, key); });
  CHECK(ThrownCode([&] { DecodeToSink(object, key); }) == pulled);
  return pulled;
}

struct RecordSpan {
  size_t offset;  // of the record header
  size_t size;    // record header + stored bytes
  uint8_t type;
  uint32_t index;
};

uint32_t Le32(const std::string& s, size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[off + i]);
  return v;
}

std::vector<RecordSpan> Records(const std::string& obj) {
  std::vector<RecordSpan> out;
  size_t off = kObjectHeaderSize;
  while (off + 16 <= obj.size()) {
    const uint32_t stored = Le32(obj, off + 12);
    out.push_back({off, 16 + size_t{stored}, static_cast<uint8_t>(obj[off]), Le32(obj, off + 4)});
    off += 16 + size_t{stored};
  }
  REQUIRE(off == obj.size());
  return out;
}

// Rewrites the header check after patching header bytes.
void FixHeaderCheck(std::string& obj) {
  const Sha256Digest d = Sha256Of(AsBytes(std::string_view(obj).substr(0, 120)));
  std::memcpy(&obj[120], d.data(), 8);
}

// Generates `total` bytes of compressible plaintext, one block at a time.
class PlaintextGenerator {
 public:
  explicit PlaintextGenerator(uint64_t total) : total_(total), block_(CompressibleString(1 << 20, 77)) {}
  // Next block (empty at the end).
  Bytes Next() {
    if (produced_ >= total_) return Bytes();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block_.size(), total_ - produced_));
    std::memcpy(block_.data(), &counter_, sizeof counter_);  // every block differs
    ++counter_;
    produced_ += n;
    return AsBytes(std::string_view(block_).substr(0, n));
  }

 private:
  uint64_t total_;
  uint64_t produced_ = 0;
  uint64_t counter_ = 0;
  std::string block_;
};

// A ReadStream producing an encoded object on the fly (encoder -> buffer).
class EncodingSource : public ReadStream {
 public:
  EncodingSource(uint64_t total, const EncodeOptions& options) : gen_(total), enc_(buf_, options) {}
  size_t Read(MutableBytes out) override {
    while (pos_ == buf_.data().size()) {
      buf_.data().clear();
      pos_ = 0;
      if (finished_) return 0;
      Bytes block = gen_.Next();
      if (block.empty()) {
        enc_.Finish();
        finished_ = true;
      } else {
        enc_.Write(block);
      }
    }
    const size_t n = std::min(out.size(), buf_.data().size() - pos_);
    std::memcpy(out.data(), buf_.data().data() + pos_, n);
    pos_ += n;
    return n;
  }
  const ObjectEncoder& encoder() const { return enc_; }

 private:
  PlaintextGenerator gen_;
  StringWriteStream buf_;
  ObjectEncoder enc_;
  size_t pos_ = 0;
  bool finished_ = false;
};

// A version 1 object built by hand from docs/format.md ("Legacy: version 1"),
// as builds before version 2 wrote it: codec none, `chunk_size` bytes per
// record, with `key` AES-256-GCM (object key = HKDF of the key and a fixed
// salt, nonce = 32-bit index then type, AAD = header bytes 0..63 + record
// header), else the stored SHA-256 of header bytes 0..63 and the records.
std::string V1Object(const std::string& data, uint32_t chunk_size, const Key* key) {
  auto put = [](std::string& out, size_t at, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) out[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  };
  std::string header(kObjectHeaderSize, '\0');
  std::memcpy(header.data(), "WALSTORE", 8);
  put(header, 8, 1, 2);                  // version 1
  header[10] = 0;                        // codec none
  header[11] = key != nullptr ? 1 : 0;   // cipher
  put(header, 12, chunk_size, 4);
  std::array<uint8_t, 32> salt{};
  if (key != nullptr) {
    put(header, 16, key->id(), 8);
    for (size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<uint8_t>(0x5A ^ i);
    std::memcpy(&header[24], salt.data(), salt.size());
  }
  FixHeaderCheck(header);
  std::unique_ptr<AesGcm> gcm;
  if (key != nullptr) gcm = std::make_unique<AesGcm>(DeriveObjectKey(*key, salt));
  Sha256 stored;
  stored.Update(AsBytes(std::string_view(header).substr(0, 64)));
  std::string out = header;
  auto record = [&](uint8_t type, uint8_t flags, uint32_t index, const std::string& payload) {
    std::string rh(16, '\0');
    rh[0] = static_cast<char>(type);
    rh[1] = static_cast<char>(flags);
    put(rh, 4, index, 4);
    put(rh, 8, payload.size(), 4);
    put(rh, 12, payload.size() + (gcm ? AesGcm::kTagSize : 0), 4);
    std::string body = payload;
    if (gcm) {
      std::array<uint8_t, AesGcm::kNonceSize> nonce{};
      nonce[0] = static_cast<uint8_t>(index);
      nonce[1] = static_cast<uint8_t>(index >> 8);
      nonce[2] = static_cast<uint8_t>(index >> 16);
      nonce[3] = static_cast<uint8_t>(index >> 24);
      nonce[4] = type;
      const std::string aad = header.substr(0, 64) + rh;
      body.assign(payload.size() + AesGcm::kTagSize, '\0');
      gcm->Seal(nonce, AsBytes(aad), AsBytes(payload),
                MutableBytes(reinterpret_cast<uint8_t*>(body.data()), body.size()));
    } else if (type == 1) {
      stored.Update(AsBytes(rh));
      stored.Update(AsBytes(body));
    }
    out += rh + body;
  };
  uint32_t index = 0;
  for (size_t pos = 0; pos < data.size(); pos += chunk_size) {
    record(1, 1, index++, data.substr(pos, chunk_size));
  }
  std::string end(8, '\0');
  put(end, 0, data.size(), 8);
  const Sha256Digest digest = Sha256Of(AsBytes(data));
  end.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  if (!gcm) {
    const Sha256Digest stored_digest = stored.Final();
    end.append(reinterpret_cast<const char*>(stored_digest.data()), stored_digest.size());
  }
  record(2, 0, index, end);
  return out;
}

}  // namespace

TEST_SUITE("format") {
  TEST_CASE("round trip: every codec x cipher, sizes around the chunk size") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      for (uint32_t chunk : {1u, 64u, 4096u, 1u << 20}) {
        std::vector<size_t> sizes = {0, 1, chunk - 1, chunk, size_t{chunk} + 1, 3 * size_t{chunk} + 17};
        if (chunk == 1) sizes = {0, 1, 2, 5, 33};
        for (size_t size : sizes) {
          CAPTURE(combo.Name());
          CAPTURE(chunk);
          CAPTURE(size);
          const std::string data = (size % 2) ? RandomString(size, size) : CompressibleString(size, size);
          const Encoded e = Encode(data, combo, chunk, &key);
          CHECK(e.encoded_size == e.bytes.size());
          CHECK(e.plaintext_size == size);
          CHECK(e.sha == Sha256Of(AsBytes(data)));
          CHECK(e.header.version == kObjectFormatVersion);
          CHECK(e.header.codec == combo.compression.codec);
          CHECK(e.header.cipher == (combo.encrypt ? Cipher::kAes256Gcm : Cipher::kNone));
          CHECK(e.header.chunk_size == chunk);
          CHECK(e.header.key_id == (combo.encrypt ? key.id() : 0));
          CHECK_FALSE(e.header.has_digest);

          const Decoded pushed = DecodeToSink(e.bytes, combo.encrypt ? &key : nullptr);
          CHECK(pushed.data == data);
          CHECK(pushed.sha == e.sha);
          const Decoded mixed = DecodeToSink(e.bytes, combo.encrypt ? &key : nullptr, size / 2 + 1);
          CHECK(mixed.data == data);
          CHECK(mixed.sha == e.sha);

          const Decoded d = Decode(e.bytes, combo.encrypt ? &key : nullptr, 4093);
          CHECK(d.data == data);
          CHECK(d.plaintext_size == size);
          CHECK(d.sha == e.sha);
          CHECK(d.header.codec == e.header.codec);
          CHECK(d.header.cipher == e.header.cipher);
          CHECK(d.header.chunk_size == chunk);
          CHECK(d.header.key_id == e.header.key_id);
          CHECK(d.header.salt == e.header.salt);
          CHECK_FALSE(d.header.has_digest);
        }
      }
    }
  }

  TEST_CASE("compressible data shrinks; encrypted objects do not contain the plaintext") {
    const std::string data = CompressibleString(1 << 20, 3);
    const Encoded lz4 = Encode(data, {{Codec::kLz4, 0}, false}, 1 << 16);
    CHECK(lz4.bytes.size() < data.size() / 2);
    const Encoded zstd = Encode(data, {{Codec::kZstd, 0}, true}, 1 << 16);
    CHECK(zstd.bytes.size() < data.size() / 2);
    const std::string text = RandomString(10000, 8);
    const Encoded plain = Encode(text, {{Codec::kNone, 0}, false}, 4096);
    CHECK(Contains(plain.bytes, text.substr(5000, 64)));
    const Encoded sealed = Encode(text, {{Codec::kNone, 0}, true}, 4096);
    CHECK_FALSE(Contains(sealed.bytes, text.substr(5000, 64)));
    CHECK_FALSE(Contains(sealed.bytes, text.substr(0, 32)));
  }

  TEST_CASE("incompressible data costs at most a small overhead") {
    const std::string data = RandomString(1 << 20, 4);
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const Encoded e = Encode(data, combo, 1 << 16);
      // 16 chunks: header + 17 records of <= 16 + 16 bytes overhead, plus the end payload.
      CHECK(e.bytes.size() <= data.size() + 128 + 17 * 32 + 64);
    }
  }

  TEST_CASE("every encryption uses a fresh salt") {
    const std::string data = RandomString(5000, 1);
    const Encoded a = Encode(data, {{Codec::kNone, 0}, true}, 4096);
    const Encoded b = Encode(data, {{Codec::kNone, 0}, true}, 4096);
    CHECK(a.header.salt != b.header.salt);
    CHECK(a.header.salt != std::array<uint8_t, 32>{});
    CHECK(a.bytes.substr(kObjectHeaderSize) != b.bytes.substr(kObjectHeaderSize));
  }

  TEST_CASE("parallel encoding (threads > 1) gives the same object") {
    const std::string data = CompressibleString(10 * 4096 + 123, 5);
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      for (int threads : {2, 3, 4}) {
        CAPTURE(threads);
        const Encoded e = Encode(data, combo, 4096, nullptr, std::nullopt, threads);
        const Key key = KeyA();
        CHECK(Decode(e.bytes, combo.encrypt ? &key : nullptr).data == data);
        if (!combo.encrypt) CHECK(e.bytes == Encode(data, combo, 4096).bytes);
      }
    }
  }

  TEST_CASE("a sink failing with helper threads: the error surfaces and nothing dangles") {
    // A sink that fails on its n-th write (the header is write 1).
    class FailingSink : public WriteStream {
     public:
      explicit FailingSink(int fail_at) : fail_at_(fail_at) {}
      void Write(Bytes) override {
        if (++writes_ == fail_at_) Fail(ErrorCode::kStorage, "sink full");
      }
      void Finish() override {}

     private:
      int fail_at_;
      int writes_ = 0;
    };
    const std::string data = RandomString(40 * 1024, 3);
    for (int threads : {2, 4}) {
      CAPTURE(threads);
      EncodeOptions o;
      o.identity = kIdentity;
      o.chunk_size = 1024;
      o.threads = threads;
      for (int fail_at : {2, 3, 7, 20}) {
        CAPTURE(fail_at);
        for (size_t step : {size_t{1000}, data.size()}) {  // copied into slots, or sealed in place
          CAPTURE(step);
          FailingSink sink(fail_at);
          ObjectEncoder enc(sink, o);
          CHECK(ThrownCode([&] {
                  for (size_t pos = 0; pos < data.size(); pos += step) {
                    enc.Write(AsBytes(std::string_view(data).substr(pos, step)));
                  }
                  enc.Finish();
                }) == "kStorage");
        }
      }
    }
  }

  TEST_CASE("known digest goes into the header and is verified") {
    const std::string data = CompressibleString(10000, 6);
    const Sha256Digest sha = Sha256Of(AsBytes(data));
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const Encoded e = Encode(data, combo, 4096, &key, std::make_pair(uint64_t{data.size()}, sha));
      CHECK(e.header.has_digest);
      CHECK(e.header.plaintext_size == data.size());
      CHECK(e.header.plaintext_sha256 == sha);
      MemoryReadStream hin{std::string_view(e.bytes)};
      const ObjectHeader h = ReadObjectHeader(hin, "x");
      CHECK(h.has_digest);
      CHECK(h.plaintext_size == data.size());
      CHECK(h.plaintext_sha256 == sha);
      const Decoded d = Decode(e.bytes, combo.encrypt ? &key : nullptr);
      CHECK(d.data == data);
      CHECK(d.header.has_digest);
      CHECK(d.header.plaintext_sha256 == sha);
    }
  }

  TEST_CASE("a wrong known digest makes Finish() throw") {
    const std::string data = CompressibleString(10000, 6);
    Sha256Digest wrong = Sha256Of(AsBytes(data));
    wrong[0] ^= 1;
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      for (auto known : {std::make_pair(uint64_t{data.size()}, wrong),
                         std::make_pair(uint64_t{data.size() + 1}, Sha256Of(AsBytes(data)))}) {
        StringWriteStream sink;
        EncodeOptions o;
        o.identity = kIdentity;
        o.compression = combo.compression;
        const Key key = KeyA();
        o.key = combo.encrypt ? &key : nullptr;
        o.chunk_size = 4096;
        o.known_digest = known;
        ObjectEncoder enc(sink, o);
        enc.Write(AsBytes(data));
        CHECK_THROWS_AS(enc.Finish(), Error);
      }
    }
    // The code is kInternal (object_format.h).
    StringWriteStream sink;
    EncodeOptions o;
    o.identity = kIdentity;
    o.known_digest = std::make_pair(uint64_t{data.size()}, wrong);
    ObjectEncoder enc(sink, o);
    enc.Write(AsBytes(data));
    CHECK_CODE(enc.Finish(), ErrorCode::kInternal);
  }

  TEST_CASE("rewrite_header: Finish() hands over a header with the digest") {
    const Key key = KeyA();
    const std::string data = CompressibleString(3 * 4096 + 5, 8);
    const Sha256Digest sha = Sha256Of(AsBytes(data));
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      StringWriteStream sink;
      std::string new_head;
      int calls = 0;
      EncodeOptions o;
      o.identity = kIdentity;
      o.compression = combo.compression;
      o.key = combo.encrypt ? &key : nullptr;
      o.chunk_size = 4096;
      o.rewrite_header = [&](Bytes head) {
        ++calls;
        new_head.assign(reinterpret_cast<const char*>(head.data()), head.size());
      };
      ObjectEncoder enc(sink, o);
      enc.Write(AsBytes(data));
      CHECK(calls == 0);
      enc.Finish();
      REQUIRE(calls == 1);
      REQUIRE(new_head.size() == kObjectHeaderSize);
      const ObjectHeader h = ParseObjectHeader(AsBytes(new_head), "x");
      CHECK(h.has_digest);
      CHECK(h.plaintext_size == data.size());
      CHECK(h.plaintext_sha256 == sha);
      // The object as first written decodes, and so does the one with the new head.
      const Key* k = combo.encrypt ? &key : nullptr;
      CHECK(Decode(sink.data(), k).data == data);
      std::string patched = sink.data();
      patched.replace(0, kObjectHeaderSize, new_head);
      const Decoded d = Decode(patched, k);
      CHECK(d.data == data);
      CHECK(d.header.has_digest);
      CHECK(d.header.plaintext_sha256 == sha);
      // A head with a wrong digest is refused.
      std::string wrong_head = new_head;
      const ObjectHeader wh = ParseObjectHeader(AsBytes(wrong_head), "x");
      (void)wh;
      // Flip a bit of the stored SHA-256 (the 32 bytes equal to `sha`) and fix the check.
      const size_t at = wrong_head.find(std::string(sha.begin(), sha.end()));
      REQUIRE(at != std::string::npos);
      wrong_head[at] ^= 0x01;
      std::string bad = sink.data();
      bad.replace(0, kObjectHeaderSize, wrong_head);
      FixHeaderCheck(bad);
      CHECK(DecodeOutcome(bad, k) == "kCorrupt");
    }
    // With known_digest the header is right from the start: no rewrite needed.
    StringWriteStream sink;
    int calls = 0;
    EncodeOptions o;
    o.identity = kIdentity;
    o.known_digest = std::make_pair(uint64_t{data.size()}, sha);
    o.rewrite_header = [&](Bytes) { ++calls; };
    ObjectEncoder enc(sink, o);
    enc.Write(AsBytes(data));
    enc.Finish();
    CHECK(calls == 0);
  }

  TEST_CASE("Write after Finish is kInternal; chunk size 0 or above the maximum is refused") {
    StringWriteStream sink;
    EncodeOptions o;
    o.identity = kIdentity;
    ObjectEncoder enc(sink, o);
    enc.Write(AsBytes("abc"));
    enc.Finish();
    CHECK_CODE(enc.Write(AsBytes("more")), ErrorCode::kInternal);
    for (uint32_t chunk : {0u, kMaxChunkSize + 1}) {
      CAPTURE(chunk);
      StringWriteStream s2;
      EncodeOptions bad;
      bad.identity = kIdentity;
      bad.chunk_size = chunk;
      CHECK_THROWS_AS(ObjectEncoder(s2, bad), Error);
    }
    // kMaxChunkSize itself is fine.
    EncodeOptions max;
    max.identity = kIdentity;
    max.chunk_size = kMaxChunkSize;
    StringWriteStream s3;
    ObjectEncoder big(s3, max);
    big.Write(AsBytes("x"));
    big.Finish();
    CHECK(Decode(s3.data(), nullptr).data == "x");
  }

  TEST_CASE("header round trip through ParseObjectHeader") {
    const Key key = KeyA();
    const Encoded e = Encode("hello", {{Codec::kZstd, 0}, true}, 4096, &key);
    const ObjectHeader h = ParseObjectHeader(AsBytes(std::string_view(e.bytes).substr(0, kObjectHeaderSize)), "x");
    CHECK(h.version == 2);
    CHECK(h.identity_hash == ObjectIdentityHash(kIdentity));
    CHECK(h.codec == Codec::kZstd);
    CHECK(h.cipher == Cipher::kAes256Gcm);
    CHECK(h.chunk_size == 4096);
    CHECK(h.key_id == key.id());
    CHECK(h.salt == e.header.salt);
    CHECK(std::string(CipherName(Cipher::kNone)) != std::string(CipherName(Cipher::kAes256Gcm)));
  }

  TEST_CASE("ParseObjectHeader refuses short input and bad magic with kCorrupt naming the object") {
    const Encoded e = Encode("hello", {{Codec::kLz4, 0}, false}, 4096);
    const std::string header = e.bytes.substr(0, kObjectHeaderSize);
    CHECK_CODE(ParseObjectHeader(AsBytes(std::string_view(header).substr(0, 127)), "obj/name"), ErrorCode::kCorrupt);
    CHECK_CODE(ParseObjectHeader(Bytes(), "obj/name"), ErrorCode::kCorrupt);
    std::string bad = header;
    bad[0] ^= 0x20;
    CHECK_CODE(ParseObjectHeader(AsBytes(bad), "obj/name"), ErrorCode::kCorrupt);
    CHECK(Contains(walstore::test::ThrownMessage([&] { ParseObjectHeader(AsBytes(bad), "obj/name"); }), "obj/name"));
    MemoryReadStream shortin{std::string_view(header).substr(0, 50)};
    CHECK_CODE(ReadObjectHeader(shortin, "obj/name"), ErrorCode::kCorrupt);
    const std::string garbage = RandomString(4096, 3);
    CHECK(DecodeOutcome(garbage, nullptr) == "kCorrupt");
    CHECK(DecodeOutcome("", nullptr) == "kCorrupt");
  }

  TEST_CASE("unknown format version is kUnsupportedFormat") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      Encoded e = Encode(CompressibleString(5000, 1), combo, 1024, &key);
      for (uint16_t version : {uint16_t{3}, uint16_t{0}, uint16_t{0xFFFF}}) {
        CAPTURE(version);
        std::string obj = e.bytes;
        obj[8] = static_cast<char>(version & 0xFF);
        obj[9] = static_cast<char>(version >> 8);
        FixHeaderCheck(obj);
        CHECK(DecodeOutcome(obj, combo.encrypt ? &key : nullptr) == "kUnsupportedFormat");
        // Decoding without a key also names the version problem, not a key problem.
        CHECK_CODE(ParseObjectHeader(AsBytes(std::string_view(obj).substr(0, kObjectHeaderSize)), "x"),
                   ErrorCode::kUnsupportedFormat);
      }
    }
  }

  TEST_CASE("unknown codec or cipher in a well-formed header is kUnsupportedFormat") {
    Encoded e = Encode("some data", {{Codec::kLz4, 0}, false}, 1024);
    std::string obj = e.bytes;
    obj[10] = 9;  // codec
    FixHeaderCheck(obj);
    CHECK(DecodeOutcome(obj, nullptr) == "kUnsupportedFormat");
    obj = e.bytes;
    obj[11] = 9;  // cipher
    FixHeaderCheck(obj);
    CHECK(DecodeOutcome(obj, nullptr) == "kUnsupportedFormat");
  }

  TEST_CASE("impossible chunk sizes in a well-formed header are kCorrupt") {
    // Find the chunk size field by its value rather than by a fixed offset.
    const uint32_t marker = 0x00ABCDEF;
    Encoded e = Encode("some data", {{Codec::kLz4, 0}, false}, marker);
    const std::string le{'\xEF', '\xCD', '\xAB', '\x00'};
    const size_t at = e.bytes.substr(0, 120).find(le);
    REQUIRE(at != std::string::npos);
    for (uint32_t chunk : {0u, kMaxChunkSize + 1, 0xFFFFFFFFu}) {
      CAPTURE(chunk);
      std::string obj = e.bytes;
      for (int i = 0; i < 4; ++i) obj[at + i] = static_cast<char>((chunk >> (8 * i)) & 0xFF);
      FixHeaderCheck(obj);
      CHECK(DecodeOutcome(obj, nullptr) == "kCorrupt");
    }
  }

  TEST_CASE("wrong key and missing key are kWrongKey naming both key ids") {
    const Key a = KeyA();
    const Key b = KeyB();
    REQUIRE(a.id() != b.id());
    for (const Combo& combo : AllCombos()) {
      if (!combo.encrypt) continue;
      CAPTURE(combo.Name());
      const Encoded e = Encode(RandomString(10000, 2), combo, 4096, &a);
      MemoryReadStream in{std::string_view(e.bytes)};
      auto err = walstore::test::ThrownError([&] { ObjectDecoder dec(in, &b, kIdentity); });
      REQUIRE(err.has_value());
      CHECK(CodeName(err->code()) == std::string("kWrongKey"));
      CHECK(Contains(err->what(), a.IdHex()));
      CHECK(Contains(err->what(), b.IdHex()));
      CHECK(Contains(err->what(), "test/object"));
      CHECK(DecodeOutcome(e.bytes, nullptr) == "kWrongKey");
      CHECK(Contains(walstore::test::ThrownMessage([&] { Decode(e.bytes, nullptr); }), a.IdHex()));
    }
  }

  TEST_CASE("with a key configured an unencrypted object is refused unless allowed") {
    const Key a = KeyA();
    const std::string data = RandomString(3000, 9);
    for (const Combo& combo : AllCombos()) {
      if (combo.encrypt) continue;
      CAPTURE(combo.Name());
      const Encoded e = Encode(data, combo, 1024);
      CHECK(Decode(e.bytes, nullptr).data == data);
      CHECK(DecodeOutcome(e.bytes, &a) == "kUnauthenticated");
      MemoryReadStream in{std::string_view(e.bytes)};
      const std::string message = walstore::test::ThrownMessage([&] {
        ObjectDecoder dec(in, &a, kIdentity);
      });
      CHECK(Contains(message, "not encrypted"));
      CHECK(Contains(message, kIdentity));
      DecodeOptions options;
      options.keys.push_back(a);
      MemoryReadStream refused{std::string_view(e.bytes)};
      CHECK(ThrownCode([&] { ObjectDecoder dec(refused, options, kIdentity); }) ==
            "kUnauthenticated");
      options.allow_plaintext = true;  // the migration setting
      MemoryReadStream allowed{std::string_view(e.bytes)};
      ObjectDecoder dec(allowed, options, kIdentity);
      CHECK(walstore::test::ReadAll(dec) == data);
    }
    // Encrypted objects are unaffected by the setting.
    const Encoded enc = Encode(data, {{Codec::kLz4, 0}, true}, 1024, &a);
    DecodeOptions options;
    options.keys.push_back(a);
    options.allow_plaintext = true;
    MemoryReadStream in{std::string_view(enc.bytes)};
    ObjectDecoder dec(in, options, kIdentity);
    CHECK(walstore::test::ReadAll(dec) == data);
  }

  TEST_CASE("truncation anywhere is kCorrupt") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const std::string data = CompressibleString(5 * 64 + 30, 4);
      const Encoded e = Encode(data, combo, 64, &key);
      const Key* k = combo.encrypt ? &key : nullptr;
      REQUIRE(Decode(e.bytes, k).data == data);
      // Every prefix of a small object.
      for (size_t len = 0; len < e.bytes.size(); ++len) {
        CAPTURE(len);
        CHECK(DecodeOutcome(e.bytes.substr(0, len), k) == "kCorrupt");
      }
      // Missing end record, record by record.
      const auto recs = Records(e.bytes);
      REQUIRE(recs.size() == 7);  // 6 data records + end
      CHECK(recs.back().type != recs.front().type);
      for (const RecordSpan& r : recs) {
        CHECK(DecodeOutcome(e.bytes.substr(0, r.offset), k) == "kCorrupt");
      }
      // Data after the end record.
      CHECK(DecodeOutcome(e.bytes + "x", k) == "kCorrupt");
      CHECK(DecodeOutcome(e.bytes + e.bytes.substr(recs.back().offset), k) == "kCorrupt");
    }
  }

  TEST_CASE("truncation of a large object at record boundaries is kCorrupt") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const std::string data = RandomString(3 * (1 << 16) + 5, 4);
      const Encoded e = Encode(data, combo, 1 << 16, &key);
      const Key* k = combo.encrypt ? &key : nullptr;
      for (const RecordSpan& r : Records(e.bytes)) {
        for (size_t cut : {r.offset, r.offset + 1, r.offset + 15, r.offset + 16, r.offset + r.size / 2,
                           r.offset + r.size - 1}) {
          CAPTURE(cut);
          CHECK(DecodeOutcome(e.bytes.substr(0, cut), k) == "kCorrupt");
        }
      }
    }
  }

  TEST_CASE("an abandoned encoder leaves an object every reader refuses") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      StringWriteStream sink;
      {
        EncodeOptions o;
        o.identity = kIdentity;
        o.compression = combo.compression;
        o.key = combo.encrypt ? &key : nullptr;
        o.chunk_size = 1024;
        ObjectEncoder enc(sink, o);
        enc.Write(AsBytes(RandomString(5000, 1)));
      }
      CHECK(sink.data().size() >= kObjectHeaderSize);
      CHECK(DecodeOutcome(sink.data(), combo.encrypt ? &key : nullptr) == "kCorrupt");
    }
  }

  TEST_CASE("any single flipped bit is kCorrupt, never silent success (every bit of small objects)") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const std::string data = CompressibleString(3 * 64 + 20, 2);
      for (bool with_digest : {false, true}) {
        CAPTURE(with_digest);
        std::optional<std::pair<uint64_t, Sha256Digest>> known;
        if (with_digest) known = std::make_pair(uint64_t{data.size()}, Sha256Of(AsBytes(data)));
        const Encoded e = Encode(data, combo, 64, &key, known);
        const Key* k = combo.encrypt ? &key : nullptr;
        REQUIRE(Decode(e.bytes, k).data == data);
        const auto recs = Records(e.bytes);
        // Flips that did not give kCorrupt, summarised as "<where> bits <list> -> <outcome>".
        std::map<std::string, std::string> missed;
        int wrong_plaintext = 0;
        for (size_t pos = 0; pos < e.bytes.size(); ++pos) {
          for (int bit = 0; bit < 8; ++bit) {
            std::string bad = e.bytes;
            bad[pos] = static_cast<char>(bad[pos] ^ (1 << bit));
            std::string outcome = DecodeOutcome(bad, k);
            if (outcome == "kCorrupt") continue;
            if (outcome == "no exception") {
              const bool same = Decode(bad, k).data == data;
              outcome = same ? "accepted, plaintext unchanged" : "accepted, WRONG PLAINTEXT";
              if (!same) ++wrong_plaintext;
            }
            std::string where = fmt::format("header byte {}", pos);
            for (size_t i = 0; i < recs.size(); ++i) {
              if (pos >= recs[i].offset && pos < recs[i].offset + recs[i].size) {
                const size_t off = pos - recs[i].offset;
                where = fmt::format("{} record {} {} {}", recs[i].type == recs.back().type ? "end" : "data", i,
                                    off < 16 ? "record-header byte" : "payload byte", off < 16 ? off : off - 16);
              }
            }
            missed[where + " -> " + outcome] += std::to_string(bit);
          }
        }
        std::string report;
        for (const auto& [where, bits] : missed) report += "\n  " + where + " (bits " + bits + ")";
        // Hard requirement: damage never returns other plaintext as success.
        CHECK_MESSAGE(wrong_plaintext == 0, "flips returning wrong plaintext:" << report);
        // Format claim (object_format.h): any flipped bit is detected.
        CHECK_MESSAGE(missed.empty(), "flips not detected:" << report);
      }
    }
  }

  TEST_CASE("bit flips in a larger object (body, GCM tag, end record)") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const std::string data = RandomString(4 * 8192 + 100, 12);
      const Encoded e = Encode(data, combo, 8192, &key);
      const Key* k = combo.encrypt ? &key : nullptr;
      const auto recs = Records(e.bytes);
      for (const RecordSpan& r : recs) {
        for (size_t off : {size_t{0}, size_t{4}, size_t{8}, size_t{12}, size_t{16}, r.size / 2,
                           r.size - 16, r.size - 1}) {
          CAPTURE(r.index);
          CAPTURE(off);
          std::string bad = e.bytes;
          bad[r.offset + off] ^= 0x04;
          CHECK(DecodeOutcome(bad, k) == "kCorrupt");
        }
      }
    }
  }

  TEST_CASE("reordered, duplicated, dropped or spliced records are kCorrupt") {
    const Key key = KeyA();
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      // Four chunks of equal content length; the first two differ.
      std::string data = RandomString(4 * 1024, 21);
      const Encoded e = Encode(data, combo, 1024, &key);
      const Key* k = combo.encrypt ? &key : nullptr;
      const auto recs = Records(e.bytes);
      REQUIRE(recs.size() == 5);
      auto rec = [&](const std::string& obj, const std::vector<RecordSpan>& rs, size_t i) {
        return obj.substr(rs[i].offset, rs[i].size);
      };
      const std::string head = e.bytes.substr(0, kObjectHeaderSize);
      SUBCASE("swap records 0 and 1") {
        const std::string obj = head + rec(e.bytes, recs, 1) + rec(e.bytes, recs, 0) +
                                rec(e.bytes, recs, 2) + rec(e.bytes, recs, 3) + rec(e.bytes, recs, 4);
        CHECK(DecodeOutcome(obj, k) == "kCorrupt");
      }
      SUBCASE("swap records 0 and 1 and their indexes") {
        std::string r0 = rec(e.bytes, recs, 0);
        std::string r1 = rec(e.bytes, recs, 1);
        std::swap(r0[4], r1[4]);  // index low bytes: r1 now claims 0, r0 claims 1
        const std::string obj = head + r1 + r0 + rec(e.bytes, recs, 2) + rec(e.bytes, recs, 3) +
                                rec(e.bytes, recs, 4);
        CHECK(DecodeOutcome(obj, k) == "kCorrupt");
      }
      SUBCASE("duplicate record 0 in place of record 1") {
        std::string r0 = rec(e.bytes, recs, 0);
        std::string dup = r0;
        dup[4] = 1;  // claims index 1
        const std::string obj = head + r0 + dup + rec(e.bytes, recs, 2) + rec(e.bytes, recs, 3) +
                                rec(e.bytes, recs, 4);
        CHECK(DecodeOutcome(obj, k) == "kCorrupt");
      }
      SUBCASE("drop record 1") {
        const std::string obj = head + rec(e.bytes, recs, 0) + rec(e.bytes, recs, 2) +
                                rec(e.bytes, recs, 3) + rec(e.bytes, recs, 4);
        CHECK(DecodeOutcome(obj, k) == "kCorrupt");
      }
      SUBCASE("drop the last data record (end record kept)") {
        const std::string obj = head + rec(e.bytes, recs, 0) + rec(e.bytes, recs, 1) +
                                rec(e.bytes, recs, 2) + rec(e.bytes, recs, 4);
        CHECK(DecodeOutcome(obj, k) == "kCorrupt");
      }
      SUBCASE("splice record 1 from another object with the same key and layout") {
        std::string other_data = data;
        other_data[1500] ^= 0x55;  // inside chunk 1
        const Encoded o = Encode(other_data, combo, 1024, &key);
        const auto orecs = Records(o.bytes);
        REQUIRE(orecs.size() == 5);
        const std::string obj = head + rec(e.bytes, recs, 0) + rec(o.bytes, orecs, 1) +
                                rec(e.bytes, recs, 2) + rec(e.bytes, recs, 3) + rec(e.bytes, recs, 4);
        CHECK(DecodeOutcome(obj, k) == "kCorrupt");
      }
      SUBCASE("header of another object") {
        const Encoded o = Encode(data, combo, 1024, &key);
        const std::string obj = o.bytes.substr(0, kObjectHeaderSize) + e.bytes.substr(kObjectHeaderSize);
        if (combo.encrypt) {
          CHECK(DecodeOutcome(obj, k) == "kCorrupt");
        } else {
          // Same plaintext, same options: the unencrypted objects are identical.
          CHECK(obj == e.bytes);
        }
      }
    }
  }

  TEST_CASE("decoder reads with 1-byte and odd buffers") {
    const Key key = KeyA();
    const std::string data = CompressibleString(3000, 3);
    const Encoded e = Encode(data, {{Codec::kZstd, 0}, true}, 1000, &key);
    CHECK(Decode(e.bytes, &key, 1).data == data);
    CHECK(Decode(e.bytes, &key, 999).data == data);
    CHECK(Decode(e.bytes, &key, 1 << 20).data == data);
  }

  TEST_CASE("bounded memory: 1 GiB encoded on the fly and decoded") {
    const uint64_t kTotal = 1ull << 30;
    const Key key = KeyA();
    EncodeOptions o;
    o.identity = kIdentity;
    o.compression = CompressionSpec{Codec::kLz4, 0};
    o.key = &key;
    o.chunk_size = 1u << 20;

    const bool reset = walstore::test::ResetPeakRss();
    const long rss_before = walstore::test::ProcStatusKb(reset ? "VmRSS" : "VmHWM");
    REQUIRE(rss_before > 0);
    const auto start = std::chrono::steady_clock::now();

    // Decoder reading an object encoded on the fly.
    {
      EncodingSource source(kTotal, o);
      ObjectDecoder dec(source, &key, kIdentity);
      std::vector<uint8_t> buf(1 << 20);
      uint64_t total = 0;
      for (;;) {
        const size_t n = dec.Read(MutableBytes(buf.data(), buf.size()));
        if (n == 0) break;
        total += n;
      }
      CHECK(total == kTotal);
      CHECK(dec.plaintext_size() == kTotal);
      CHECK(source.encoder().plaintext_size() == kTotal);
      CHECK(dec.plaintext_sha256() == source.encoder().plaintext_sha256());
      CHECK(source.encoder().encoded_size() < kTotal / 2);  // compressible data
    }
    const auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long peak = walstore::test::ProcStatusKb("VmHWM");
    const long growth_kb = peak - rss_before;
    MESSAGE("1 GiB encode + decode (lz4 + aes): " << seconds << " s, peak RSS growth "
                                                  << growth_kb / 1024 << " MiB");
    CHECK(growth_kb < 64 * 1024);
    CHECK(seconds < 120);
  }

  TEST_CASE("version 2 objects are bound to their name: misplaced objects are refused") {
    const Key key = KeyA();
    const std::string data = CompressibleString(5000, 31);
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const Encoded e = Encode(data, combo, 1024, &key);
      CHECK(e.header.version == 2);
      const Key* k = combo.encrypt ? &key : nullptr;
      REQUIRE(Decode(e.bytes, k).data == data);
      // The same object read under another name (copied or moved there).
      for (const char* other : {"test/objecT", "test/object.partial", "other-cluster/test/object", ""}) {
        CAPTURE(other);
        MemoryReadStream in{std::string_view(e.bytes)};
        const auto err = walstore::test::ThrownError([&] { ObjectDecoder dec(in, k, other, "where"); });
        REQUIRE(err.has_value());
        CHECK(CodeName(err->code()) == std::string("kMisplaced"));
        CHECK(Contains(err->what(), "where was stored for another name"));
      }
      // A forger who rewrites the identity hash (and the header check) for
      // the other name still fails: the name is in every record's AAD
      // (encrypted) or in the stored SHA-256 (unencrypted).
      std::string forged = e.bytes;
      const auto other_hash = ObjectIdentityHash("test/other");
      std::memcpy(&forged[56], other_hash.data(), other_hash.size());
      FixHeaderCheck(forged);
      MemoryReadStream in{std::string_view(forged)};
      CHECK(ThrownCode([&] {
              ObjectDecoder dec(in, k, "test/other");
              walstore::test::ReadAll(dec);
            }) == "kCorrupt");
    }
    CHECK(ObjectIdentityHash("a") != ObjectIdentityHash("b"));
  }

  TEST_CASE("version 1 objects (earlier builds) still decode, under any name") {
    const Key key = KeyA();
    const std::string data = RandomString(3000, 41);
    for (const Key* k : {static_cast<const Key*>(nullptr), &key}) {
      CAPTURE(k != nullptr);
      const std::string v1 = V1Object(data, 1024, k);
      const ObjectHeader h =
          ParseObjectHeader(AsBytes(std::string_view(v1).substr(0, kObjectHeaderSize)), "v1");
      CHECK(h.version == 1);
      for (const char* name : {kIdentity, "any/other/name"}) {
        MemoryReadStream in{std::string_view(v1)};
        DecodeOptions options;
        if (k != nullptr) options.keys.push_back(*k);
        ObjectDecoder dec(in, options, name);
        CHECK(walstore::test::ReadAll(dec) == data);
        CHECK(dec.plaintext_sha256() == Sha256Of(AsBytes(data)));
      }
      // Still fully checked: a flipped payload bit or reserved record bytes are damage.
      std::string bad = v1;
      bad[kObjectHeaderSize + 16 + 100] ^= 0x01;
      CHECK(DecodeOutcome(bad, k) == "kCorrupt");
      bad = v1;
      bad[kObjectHeaderSize + 2] = 1;  // version 1 has no high index bytes
      CHECK(DecodeOutcome(bad, k) == "kCorrupt");
    }
    // An unencrypted version 1 object is no more trusted under a key than a version 2 one.
    CHECK(DecodeOutcome(V1Object(data, 1024, nullptr), &key) == "kUnauthenticated");
  }

  TEST_CASE("record counter: 64-bit nonces in version 2, and the encoder stops before the limit") {
    using format_internal::RecordNonce;
    // Version 1 put a 32-bit index in the nonce: record 2^32 reused record 0's.
    CHECK(RecordNonce(1, 1, uint64_t{1} << 32) == RecordNonce(1, 1, 0));
    std::set<std::array<uint8_t, AesGcm::kNonceSize>> nonces;
    const std::vector<uint64_t> indices = {0, 1, (uint64_t{1} << 32) - 1, uint64_t{1} << 32,
                                           (uint64_t{1} << 32) + 1, kMaxRecordsPerObject};
    for (uint64_t index : indices) {
      for (uint8_t type : {uint8_t{1}, uint8_t{2}}) nonces.insert(RecordNonce(2, type, index));
    }
    CHECK(nonces.size() == indices.size() * 2);
    CHECK(kMaxRecordsPerObject == (uint64_t{1} << 48) - 1);

    // The limit, lowered by the test hook: exactly max_records chunks fit.
    for (int threads : {1, 3}) {
      CAPTURE(threads);
      for (bool encrypt : {false, true}) {
        const Key key = KeyA();
        EncodeOptions o;
        o.identity = kIdentity;
        o.key = encrypt ? &key : nullptr;
        o.chunk_size = 16;
        o.max_records = 3;
        o.threads = threads;
        StringWriteStream fits;
        ObjectEncoder ok(fits, o);
        ok.Write(AsBytes(std::string(48, 'x')));
        ok.Finish();
        CHECK(Decode(fits.data(), o.key).data == std::string(48, 'x'));
        StringWriteStream sink;
        ObjectEncoder enc(sink, o);
        const std::string message = walstore::test::ThrownMessage([&] {
          enc.Write(AsBytes(std::string(49, 'x')));
          enc.Finish();
        });
        CHECK(Contains(message, "record counter"));
        CHECK(ThrownCode([&] {
                StringWriteStream s2;
                ObjectEncoder e2(s2, o);
                e2.Write(AsBytes(std::string(100, 'y')));
                e2.Finish();
              }) == "kConfig");
      }
    }
  }
}

namespace {

// What a decoder with `threads` helper threads did with `object`: every piece of
// plaintext it handed out, in order (DecodeTo() writes one piece per record), and
// how it ended ("ok <sha>" or "<code>: <message>").
struct DecodeTrace {
  std::vector<std::string> pieces;
  std::string outcome;
  size_t peak_read_ahead = 0;
  size_t chunk_buffers = 0;
  bool operator==(const DecodeTrace& o) const {
    return pieces == o.pieces && outcome == o.outcome;
  }
};

class PieceSink : public WriteStream {
 public:
  explicit PieceSink(std::vector<std::string>& pieces) : pieces_(pieces) {}
  void Write(Bytes data) override {
    pieces_.emplace_back(reinterpret_cast<const char*>(data.data()), data.size());
  }
  void Finish() override {}

 private:
  std::vector<std::string>& pieces_;
};

DecodeTrace TraceDecode(const std::string& object, const Key* key, int threads) {
  DecodeTrace t;
  MemoryReadStream in{std::string_view(object)};
  DecodeOptions options;
  if (key != nullptr) options.keys.push_back(*key);
  options.threads = threads;
  std::unique_ptr<ObjectDecoder> dec;
  const std::string code = ThrownCode([&] {
    dec = std::make_unique<ObjectDecoder>(in, options, kIdentity);
    PieceSink sink(t.pieces);
    dec->DecodeTo(sink);
  });
  const std::string message = ThrownMessage([&] {
    MemoryReadStream again{std::string_view(object)};
    ObjectDecoder d(again, options, kIdentity);
    std::vector<std::string> ignored_pieces;
    PieceSink ignored(ignored_pieces);
    d.DecodeTo(ignored);
  });
  t.outcome = code == "no exception" ? "ok " + ToHex(dec->plaintext_sha256()) : code + ": " + message;
  if (dec) {
    t.peak_read_ahead = dec->peak_records_read_ahead();
    t.chunk_buffers = dec->chunk_buffers();
  }
  return t;
}

std::string Joined(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

}  // namespace

TEST_SUITE("format") {
  TEST_CASE("parallel decoding (threads 2..8) hands out exactly what serial decoding does") {
    const Key key = KeyA();
    constexpr uint32_t kChunk = 1024;
    for (const Combo& combo : AllCombos()) {
      CAPTURE(combo.Name());
      const Key* k = combo.encrypt ? &key : nullptr;
      for (size_t size : {size_t{0}, size_t{1}, size_t{kChunk}, size_t{kChunk + 1},
                          size_t{13 * kChunk + 7}}) {
        CAPTURE(size);
        // Half compressible, half random, so raw and compressed records mix.
        const std::string data = CompressibleString(size / 2, 9) + RandomString(size - size / 2, 9);
        const Encoded e = Encode(data, combo, kChunk, &key);
        const DecodeTrace serial = TraceDecode(e.bytes, k, 1);
        REQUIRE(serial.outcome == "ok " + ToHex(Sha256Of(AsBytes(data))));
        REQUIRE(Joined(serial.pieces) == data);
        CHECK(serial.pieces.size() == (size + kChunk - 1) / kChunk);  // one per record
        for (int threads = 2; threads <= 8; ++threads) {
          CAPTURE(threads);
          const DecodeTrace parallel = TraceDecode(e.bytes, k, threads);
          CHECK(parallel == serial);
        }
        // Read() in odd sizes gives the same bytes.
        MemoryReadStream in{std::string_view(e.bytes)};
        DecodeOptions options;
        if (k) options.keys.push_back(*k);
        options.threads = 3;
        ObjectDecoder dec(in, options, kIdentity);
        CHECK(walstore::test::ReadAll(dec, 333) == data);
      }
    }
  }

  TEST_CASE("parallel decoding: a damaged record k fails as serially, after records < k only") {
    const Key key = KeyA();
    constexpr uint32_t kChunk = 512;
    for (const Combo& combo : {Combo{{Codec::kLz4, 0}, true}, Combo{{Codec::kZstd, 0}, false},
                               Combo{{Codec::kNone, 0}, true}}) {
      CAPTURE(combo.Name());
      const Key* k = combo.encrypt ? &key : nullptr;
      const std::string data = RandomString(9 * kChunk + 100, 5);
      const Encoded e = Encode(data, combo, kChunk, &key);
      const auto recs = Records(e.bytes);
      REQUIRE(recs.size() == 11);
      std::vector<std::pair<std::string, std::string>> damaged;  // name, object
      for (size_t i = 0; i < recs.size(); ++i) {
        std::string flipped = e.bytes;
        flipped[recs[i].offset + 16 + recs[i].size / 2 - 8] ^= 0x10;  // inside the payload
        damaged.emplace_back(fmt::format("bit flip in record {}", i), flipped);
        damaged.emplace_back(fmt::format("cut inside record {}", i),
                             e.bytes.substr(0, recs[i].offset + recs[i].size / 2));
        damaged.emplace_back(fmt::format("cut before record {}", i), e.bytes.substr(0, recs[i].offset));
      }
      std::string swapped = e.bytes.substr(0, recs[4].offset) +
                            e.bytes.substr(recs[5].offset, recs[5].size) +
                            e.bytes.substr(recs[4].offset, recs[4].size) +
                            e.bytes.substr(recs[6].offset);
      damaged.emplace_back("records 4 and 5 swapped", swapped);
      damaged.emplace_back("data after the end record", e.bytes + "x");
      for (const auto& [name, object] : damaged) {
        CAPTURE(name);
        const DecodeTrace serial = TraceDecode(object, k, 1);
        REQUIRE(serial.outcome.rfind("kCorrupt: ", 0) == 0);
        // Serially, nothing of the damaged record or after it is handed out
        // when encrypted (an unencrypted flipped bit is found at the end).
        CHECK(serial.pieces.size() <= 10);
        if (combo.encrypt) CHECK(data.rfind(Joined(serial.pieces), 0) == 0);
        for (int threads : {2, 3, 4, 7}) {
          CAPTURE(threads);
          CHECK(TraceDecode(object, k, threads) == serial);
        }
      }
      // An encrypted bit flip in record 6: records 0..5 are served, then its error.
      if (combo.encrypt) {
        std::string flipped = e.bytes;
        flipped[recs[6].offset + 20] ^= 1;
        const DecodeTrace t = TraceDecode(flipped, k, 4);
        CHECK(t.pieces.size() == 6);
        CHECK(Contains(t.outcome, "record 6 failed authentication"));
      }
    }
  }

  TEST_CASE("parallel decoding: memory is bounded by the threads, not by the object") {
    const Key key = KeyA();
    constexpr uint32_t kChunk = 4096;
    const std::string data = RandomString(300 * kChunk + 1, 8);  // 301 data records
    const Encoded e = Encode(data, Combo{{Codec::kLz4, 0}, true}, kChunk, &key, std::nullopt, 2);
    const DecodeTrace serial = TraceDecode(e.bytes, &key, 1);
    CHECK(serial.peak_read_ahead == 0);
    CHECK(serial.chunk_buffers == 4);
    for (int threads : {2, 3, 5, 8}) {
      CAPTURE(threads);
      const DecodeTrace t = TraceDecode(e.bytes, &key, threads);
      CHECK(t == serial);
      // Reads ahead by exactly `threads` records (so they are opened in
      // parallel), never more, with buffers for threads + 2 records.
      CHECK(t.peak_read_ahead == static_cast<size_t>(threads));
      CHECK(t.chunk_buffers == 2 * static_cast<size_t>(threads + 2));
    }
    // A small object holds its records at most.
    const Encoded small = Encode("abc", Combo{{Codec::kLz4, 0}, true}, kChunk, &key);
    CHECK(TraceDecode(small.bytes, &key, 8).peak_read_ahead == 2);  // data record + end record
  }
}

namespace {
// A forged object: a genuine header (any chunk size; nothing in it is
// authenticated before record 0 opens), then `records` raw data records of
// the largest size the header allows, each failing authentication.  Counts
// the bytes the decoder read.
class ForgedRecordsSource : public ReadStream {
 public:
  ForgedRecordsSource(std::string header, uint32_t chunk_size, int records)
      : header_(std::move(header)), chunk_size_(chunk_size), records_(records) {}
  size_t Read(MutableBytes out) override {
    size_t total = 0;
    const size_t stored = size_t{chunk_size_} + AesGcm::kTagSize;
    while (total < out.size()) {
      size_t n;
      if (header_pos_ < header_.size()) {
        n = std::min(out.size() - total, header_.size() - header_pos_);
        std::memcpy(out.data() + total, header_.data() + header_pos_, n);
        header_pos_ += n;
      } else if (record_ >= records_) {
        break;
      } else if (record_pos_ < kRecordHeaderSize) {
        format_internal::RecordHeader r;
        r.type = object_layout::kRecordTypeData;
        r.flags = object_layout::kRecordFlagRaw;
        r.index = static_cast<uint64_t>(record_);
        r.plain_len = chunk_size_;
        r.stored_len = static_cast<uint32_t>(stored);
        const auto bytes = r.Serialize();
        n = std::min(out.size() - total, kRecordHeaderSize - record_pos_);
        std::memcpy(out.data() + total, bytes.data() + record_pos_, n);
        record_pos_ += n;
      } else {
        n = std::min(out.size() - total, kRecordHeaderSize + stored - record_pos_);
        std::memset(out.data() + total, 0x5a, n);
        record_pos_ += n;
        if (record_pos_ == kRecordHeaderSize + stored) {
          record_pos_ = 0;
          ++record_;
        }
      }
      total += n;
      bytes_read += n;
    }
    return total;
  }
  uint64_t bytes_read = 0;

 private:
  static constexpr size_t kRecordHeaderSize = object_layout::kRecordHeaderSize;
  std::string header_;
  uint32_t chunk_size_;
  int records_;
  size_t header_pos_ = 0;
  size_t record_pos_ = 0;
  int record_ = 0;
};

MutableBytes Writable(std::string& s) {
  return MutableBytes(reinterpret_cast<uint8_t*>(s.data()), s.size());
}
}  // namespace

TEST_SUITE("format") {
  TEST_CASE("parallel decoding: read-ahead stays within kDecodeReadAheadBudget at 16 MiB chunks") {
    const Key key = KeyA();
    constexpr uint32_t kChunk = 16u << 20;
    const Encoded e = Encode("abc", Combo{{Codec::kLz4, 0}, true}, kChunk, &key);
    REQUIRE_FALSE(e.header.has_digest);  // no record count to go by: only the budget bounds it
    const std::string header = e.bytes.substr(0, Records(e.bytes)[0].offset);
    constexpr size_t kInFlight = kDecodeReadAheadBudget / kChunk;  // 4
    for (int threads : {8, 64}) {
      CAPTURE(threads);
      ForgedRecordsSource in(header, kChunk, 8);
      DecodeOptions options;
      options.keys.push_back(key);
      options.threads = threads;
      ObjectDecoder dec(in, options, kIdentity);
      CHECK(dec.chunk_buffers() == 2 * (kInFlight + 2));
      std::string out(4096, '\0');
      CHECK(Contains(ThrownMessage([&] { dec.Read(Writable(out)); }),
                     "damaged: record 0 failed authentication"));
      // Still parallel, but no more records (and bytes) read ahead of
      // record 0's authentication than the budget allows.
      CHECK(dec.peak_records_read_ahead() == kInFlight);
      CHECK(in.bytes_read <= header.size() + kDecodeReadAheadBudget + kInFlight * 64);
    }
  }
}

TEST_SUITE("format") {
  TEST_CASE("decoding: after an error, every later Read() rethrows that error (any threads)") {
    const Key key = KeyA();
    constexpr uint32_t kChunk = 512;
    const std::string data = RandomString(9 * kChunk + 100, 5);
    const Encoded e = Encode(data, Combo{{Codec::kLz4, 0}, true}, kChunk, &key);
    std::string flipped = e.bytes;
    flipped[Records(e.bytes)[6].offset + 20] ^= 1;
    for (int threads : {1, 4}) {
      CAPTURE(threads);
      MemoryReadStream in{std::string_view(flipped)};
      DecodeOptions options;
      options.keys.push_back(key);
      options.threads = threads;
      ObjectDecoder dec(in, options, kIdentity);
      std::string out(100000, '\0');
      const auto read = [&] { dec.Read(Writable(out)); };
      const std::string first = ThrownMessage(read);
      CHECK(Contains(first, "record 6 failed authentication"));
      for (int again = 0; again < 2; ++again) {
        CHECK(ThrownCode(read) == "kCorrupt");
        CHECK(ThrownMessage(read) == first);
        std::vector<std::string> pieces;
        PieceSink sink(pieces);
        CHECK(ThrownMessage([&] { dec.DecodeTo(sink); }) == first);
        CHECK(pieces.empty());
      }
    }
  }

  TEST_CASE("parallel decoding: no more helper threads than records, nor than kMaxDecodeThreads") {
    const Key key = KeyA();
    constexpr uint32_t kChunk = 4096;
    const Combo combo{{Codec::kZstd, 0}, true};
    // The header knows the size (has_digest): one data record decodes serially.
    const std::string tiny = "abc";
    const Encoded one = Encode(tiny, combo, kChunk, &key,
                               std::pair{tiny.size(), Sha256Of(AsBytes(tiny))});
    REQUIRE(one.header.has_digest);
    const DecodeTrace serial_one = TraceDecode(one.bytes, &key, 1);
    const DecodeTrace t1 = TraceDecode(one.bytes, &key, 8);
    CHECK(t1 == serial_one);
    CHECK(t1.chunk_buffers == 4);
    CHECK(t1.peak_read_ahead == 0);
    // Three data records and the end record: four lanes at most.
    const std::string three = RandomString(2 * kChunk + 1, 3);
    const Encoded e3 = Encode(three, combo, kChunk, &key,
                              std::pair{three.size(), Sha256Of(AsBytes(three))});
    const DecodeTrace t3 = TraceDecode(e3.bytes, &key, 8);
    CHECK(t3 == TraceDecode(e3.bytes, &key, 1));
    CHECK(t3.peak_read_ahead == 4);
    CHECK(t3.chunk_buffers == 2 * (4 + 2));
    // Without a size in the header, the library's own limit.
    const Encoded many = Encode(RandomString(100 * kChunk, 4), combo, kChunk, &key);
    REQUIRE_FALSE(many.header.has_digest);
    const DecodeTrace t = TraceDecode(many.bytes, &key, 1000);
    CHECK(t == TraceDecode(many.bytes, &key, 1));
    CHECK(t.peak_read_ahead == static_cast<size_t>(kMaxDecodeThreads));
    CHECK(t.chunk_buffers == 2 * static_cast<size_t>(kMaxDecodeThreads + 2));
  }
}
