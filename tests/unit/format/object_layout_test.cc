// Tests for src/lib/format/object_layout.h: the named offsets and sizes are
// those of docs/format.md's tables, and an encoded object holds each value
// where its name says (a known object, byte for byte, and an encrypted one,
// whose records open with the nonce and associated data the layout names).
#include "format/object_layout.h"

#include <doctest/doctest.h>

#include <walstore/crypto.h>
#include <walstore/object_format.h>
#include <walstore/stream.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "format/format_test_paths.h"
#include "format/object_record.h"
#include "test_util.h"

using namespace walstore;
using namespace walstore::object_layout;
using walstore::test::FromHex;

namespace {

struct NamedField {
  Field field;
  std::string doc_name;  // the start of the "field" column in docs/format.md
};

struct DocRow {
  size_t offset;
  size_t size;
  std::string name;
};

// The rows of the first table after the line `heading` in docs/format.md.
std::vector<DocRow> DocTable(const std::string& heading) {
  std::istringstream doc(walstore::test::ReadFile(kFormatDoc));
  std::string line;
  while (std::getline(doc, line) && line != heading) {
  }
  REQUIRE_MESSAGE(line == heading, "docs/format.md has no heading " << heading);
  while (std::getline(doc, line) && !line.starts_with("| offset")) {
  }
  std::getline(doc, line);  // |---:|
  std::vector<DocRow> rows;
  while (std::getline(doc, line) && line.starts_with("|")) {
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');) {
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
    }
    REQUIRE(cells.size() >= 3);
    rows.push_back({std::stoul(cells[0]), std::stoul(cells[1]), cells[2]});
  }
  return rows;
}

void CheckDocTable(const std::string& heading, const std::vector<NamedField>& named) {
  const std::vector<DocRow> rows = DocTable(heading);
  REQUIRE(rows.size() == named.size());
  size_t next = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO(heading << ": " << rows[i].name);
    CHECK(rows[i].name.find(named[i].doc_name) != std::string::npos);
    CHECK(rows[i].offset == named[i].field.offset);
    CHECK(rows[i].size == named[i].field.size);
    CHECK(named[i].field.offset == next);  // no gap, no overlap
    next = named[i].field.end();
  }
}

std::string Slice(const std::string& bytes, size_t base, Field field) {
  return bytes.substr(base + field.offset, field.size);
}
uint64_t Get(const std::string& bytes, size_t base, Field field) {
  return GetField(reinterpret_cast<const uint8_t*>(bytes.data()) + base, field);
}
std::string Str(const Sha256Digest& digest) {
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

constexpr const char* kIdentity = "7312/wal/00000001.history";
const std::string kPlaintext = "walstore!";

// kPlaintext encoded under kIdentity, unencrypted, codec lz4 (the default;
// chunks this small do not shrink, so both are stored raw), chunk size 5,
// with its digest in the header: 128 header bytes, records "walst" and "ore!",
// the 72-byte end record.
const std::string kKnownObject = FromHex(
    "57414c53544f5245020001000500000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000080ba92b7c580602c"
    "010000000000000009000000000000006cd0669f242db7060564603116c9230a"
    "c23b4242b223f098a83e738fa47e7b6200000000000000009a349bcb8219b18f"
    "0101000000000000050000000500000077616c73740101000001000000040000"
    "00040000006f7265210200000002000000480000004800000009000000000000"
    "006cd0669f242db7060564603116c9230ac23b4242b223f098a83e738fa47e7b"
    "628d67e8c07177a21ff7bb82930a7aa306eb25dfb43f72b7de04dd5a541b8004"
    "31");

std::string EncodeKnown(const Key* key) {
  StringWriteStream sink;
  EncodeOptions options;
  options.identity = kIdentity;
  options.compression = {Codec::kLz4, 0};
  options.chunk_size = 5;
  options.key = key;
  options.known_digest = std::make_pair(uint64_t{kPlaintext.size()}, Sha256Of(AsBytes(kPlaintext)));
  ObjectEncoder encoder(sink, options);
  encoder.Write(AsBytes(kPlaintext));
  encoder.Finish();
  return sink.data();
}

}  // namespace

TEST_SUITE("format_layout") {
  TEST_CASE("the named fields are docs/format.md's tables, in order, without gaps") {
    CheckDocTable("## Header (128 bytes)",
                  {{kHeaderMagic, "magic"},
                   {kHeaderVersion, "format version"},
                   {kHeaderCodec, "codec"},
                   {kHeaderCipher, "cipher"},
                   {kHeaderChunkSize, "chunk size"},
                   {kHeaderKeyId, "key id"},
                   {kHeaderSalt, "salt"},
                   {kHeaderIdentityHash, "identity hash"},
                   {kHeaderFlags, "flags"},
                   {kHeaderReserved68, "reserved"},
                   {kHeaderPlaintextSize, "plaintext size"},
                   {kHeaderPlaintextSha256, "plaintext SHA-256"},
                   {kHeaderReserved112, "reserved"},
                   {kHeaderCheck, "header check"}});
    CheckDocTable("## Records", {{kRecordType, "type"},
                                 {kRecordFlags, "flags"},
                                 {kRecordIndexHigh, "index, high bits"},
                                 {kRecordIndexLow, "index, low bits"},
                                 {kRecordPlainLength, "plain length"},
                                 {kRecordStoredLength, "stored length"}});
    CheckDocTable("### End record", {{kEndPlaintextSize, "plaintext size"},
                                     {kEndPlaintextSha256, "SHA-256 of the whole plaintext"},
                                     {kEndStoredSha256, "unencrypted objects only"}});
    CHECK(kHeaderCheck.end() == kObjectHeaderSize);
    CHECK(kRecordStoredLength.end() == kRecordHeaderSize);
    CHECK(kEndPayloadSizeEncrypted == 40);
    CHECK(kEndPayloadSizeUnencrypted == 72);
  }

  TEST_CASE("a known object has every value where the layout names it") {
    const std::string object = EncodeKnown(nullptr);
    REQUIRE(object == kKnownObject);  // the encoder writes these bytes, byte for byte

    const Sha256Digest sha = Sha256Of(AsBytes(kPlaintext));
    CHECK(Slice(object, 0, kHeaderMagic) == "WALSTORE");
    CHECK(Slice(object, 0, kHeaderMagic) == std::string(kMagic, sizeof kMagic));
    CHECK(Get(object, 0, kHeaderVersion) == kObjectFormatVersion);
    CHECK(Get(object, 0, kHeaderCodec) == static_cast<uint8_t>(Codec::kLz4));
    CHECK(Get(object, 0, kHeaderCipher) == static_cast<uint8_t>(Cipher::kNone));
    CHECK(Get(object, 0, kHeaderChunkSize) == 5);
    CHECK(Get(object, 0, kHeaderKeyId) == 0);
    CHECK(Slice(object, 0, kHeaderSalt) == std::string(kHeaderSalt.size, '\0'));
    const auto identity_hash = ObjectIdentityHash(kIdentity);
    CHECK(Slice(object, 0, kHeaderIdentityHash) ==
          std::string(identity_hash.begin(), identity_hash.end()));
    CHECK(Get(object, 0, kHeaderFlags) == kHeaderFlagHasDigest);
    CHECK(Get(object, 0, kHeaderReserved68) == 0);
    CHECK(Get(object, 0, kHeaderPlaintextSize) == kPlaintext.size());
    CHECK(Slice(object, 0, kHeaderPlaintextSha256) == Str(sha));
    CHECK(Slice(object, 0, kHeaderReserved112) == std::string(kHeaderReserved112.size, '\0'));
    CHECK(Slice(object, 0, kHeaderCheck) ==
          Str(Sha256Of(AsBytes(object.substr(0, kHeaderCheck.offset)))).substr(0, kHeaderCheck.size));
    // What the header says is what ParseObjectHeader reads.
    const ObjectHeader parsed = ParseObjectHeader(AsBytes(object), "known");
    CHECK(parsed.chunk_size == 5);
    CHECK(parsed.plaintext_size == kPlaintext.size());

    // Two data records, then the end record; the stored SHA-256 covers the
    // identity (length first), the header description and the data records.
    Sha256 stored;
    uint8_t length[kStoredHashIdentityLengthSize];
    PutLe(length, std::string_view(kIdentity).size(), sizeof length);
    stored.Update(Bytes(length, sizeof length));
    stored.Update(AsBytes(std::string_view(kIdentity)));
    stored.Update(AsBytes(object.substr(0, kHeaderDescriptionSize)));
    size_t at = kObjectHeaderSize;
    const std::vector<std::string> chunks = {"walst", "ore!"};
    for (size_t index = 0; index < chunks.size(); ++index) {
      INFO("record " << index);
      CHECK(Get(object, at, kRecordType) == kRecordTypeData);
      CHECK(Get(object, at, kRecordFlags) == kRecordFlagRaw);
      CHECK(Get(object, at, kRecordIndexHigh) == 0);
      CHECK(Get(object, at, kRecordIndexLow) == index);
      CHECK(Get(object, at, kRecordPlainLength) == chunks[index].size());
      CHECK(Get(object, at, kRecordStoredLength) == chunks[index].size());
      CHECK(object.substr(at + kRecordHeaderSize, chunks[index].size()) == chunks[index]);
      stored.Update(AsBytes(object.substr(at, kRecordHeaderSize + chunks[index].size())));
      at += kRecordHeaderSize + chunks[index].size();
    }
    CHECK(Get(object, at, kRecordType) == kRecordTypeEnd);
    CHECK(Get(object, at, kRecordFlags) == 0);
    CHECK(Get(object, at, kRecordIndexLow) == chunks.size());
    CHECK(Get(object, at, kRecordPlainLength) == kEndPayloadSizeUnencrypted);
    CHECK(Get(object, at, kRecordStoredLength) == kEndPayloadSizeUnencrypted);
    const size_t end = at + kRecordHeaderSize;
    CHECK(Get(object, end, kEndPlaintextSize) == kPlaintext.size());
    CHECK(Slice(object, end, kEndPlaintextSha256) == Str(sha));
    CHECK(Slice(object, end, kEndStoredSha256) == Str(stored.Final()));
    CHECK(end + kEndPayloadSizeUnencrypted == object.size());
  }

  TEST_CASE("an encrypted object: key id and salt where named; records open with the named nonce and AAD") {
    std::array<uint8_t, 32> key_bytes;
    for (size_t i = 0; i < key_bytes.size(); ++i) key_bytes[i] = static_cast<uint8_t>(0x40 + i);
    const Key key(key_bytes);
    const std::string object = EncodeKnown(&key);
    CHECK(Get(object, 0, kHeaderCipher) == static_cast<uint8_t>(Cipher::kAes256Gcm));
    CHECK(Get(object, 0, kHeaderKeyId) == key.id());
    const std::string salt = Slice(object, 0, kHeaderSalt);
    CHECK(salt != std::string(kHeaderSalt.size, '\0'));
    AesGcm gcm(DeriveObjectKey(key, AsBytes(salt)));

    size_t at = kObjectHeaderSize;
    std::string plaintext;
    for (uint64_t index = 0;; ++index) {
      INFO("record " << index);
      const uint8_t type = static_cast<uint8_t>(Get(object, at, kRecordType));
      const size_t stored_length = Get(object, at, kRecordStoredLength);
      CHECK(stored_length == Get(object, at, kRecordPlainLength) + AesGcm::kTagSize);
      // The nonce by hand: the 64-bit index, then the type, then zeros.
      std::array<uint8_t, AesGcm::kNonceSize> nonce{};
      PutField(nonce.data(), kNonceIndexV2, index);
      nonce[kNonceTypeOffsetV2] = type;
      CHECK(nonce == format_internal::RecordNonce(kObjectFormatVersion, type, index));
      const std::string aad = object.substr(0, kHeaderDescriptionSize) +
                              object.substr(at, kRecordHeaderSize) + kIdentity;
      std::string opened(stored_length - AesGcm::kTagSize, '\0');
      REQUIRE(gcm.Open(nonce, AsBytes(aad), AsBytes(object.substr(at + kRecordHeaderSize, stored_length)),
                       MutableBytes(reinterpret_cast<uint8_t*>(opened.data()), opened.size())));
      at += kRecordHeaderSize + stored_length;
      if (type == kRecordTypeEnd) {
        CHECK(opened.size() == kEndPayloadSizeEncrypted);
        CHECK(GetField(reinterpret_cast<const uint8_t*>(opened.data()), kEndPlaintextSize) ==
              kPlaintext.size());
        CHECK(opened.substr(kEndPlaintextSha256.offset, kEndPlaintextSha256.size) ==
              Str(Sha256Of(AsBytes(kPlaintext))));
        break;
      }
      CHECK(type == kRecordTypeData);
      plaintext += opened;
    }
    CHECK(plaintext == kPlaintext);
    CHECK(at == object.size());
  }

  TEST_CASE("version 1 nonces: the 32-bit index, then the type") {
    std::array<uint8_t, AesGcm::kNonceSize> nonce{};
    PutField(nonce.data(), kNonceIndexV1, 0x01020304);
    nonce[kNonceTypeOffsetV1] = kRecordTypeEnd;
    CHECK(nonce == format_internal::RecordNonce(1, kRecordTypeEnd, 0x01020304));
    CHECK(kNonceTypeOffsetV1 == 4);
    CHECK(kNonceTypeOffsetV2 == 8);
  }
}
