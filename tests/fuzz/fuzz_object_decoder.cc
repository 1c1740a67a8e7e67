// ObjectDecoder (src/lib/format/object_decoder.cc) on arbitrary repository bytes.
// Input: one option byte, then the object.  Option bits 0-1 choose the keys
// (0 none, 1 the fuzz key, 2 a rotated-out key then the fuzz key, 3 only the
// other key); bit 2 decodes with DecodeTo instead of Read; bits 3-5 the Read
// buffer size; bit 6 allows unencrypted objects under a key (migration); bit 7
// decodes under another identity (storage key) than the seeds were written for.  A decoded object must have yielded exactly the plaintext its
// end record vouches for.
#include <walstore/object_format.h>

#include <array>
#include <vector>

#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput input(data, size);
  const uint8_t options = input.Byte();
  const std::string_view object = input.Rest();
  static const Key key = fuzz::FuzzKey();
  static const std::array<Key, 2> keys = {fuzz::OtherFuzzKey(), fuzz::FuzzKey()};
  static const Key other = fuzz::OtherFuzzKey();
  static constexpr std::array<size_t, 8> kReadSizes = {1, 7, 100, 512, 4096, 65536, 1 << 20, 3};

  fuzz::Expect({ErrorCode::kCorrupt, ErrorCode::kWrongKey, ErrorCode::kUnsupportedFormat,
                ErrorCode::kUnauthenticated, ErrorCode::kMisplaced}, [&] {
    MemoryReadStream source(object);
    DecodeOptions decode;
    switch (options & 3) {
      case 0: break;
      case 1: decode.keys = {key}; break;
      case 2: decode.keys.assign(keys.begin(), keys.end()); break;
      default: decode.keys = {other}; break;
    }
    decode.allow_plaintext = (options & 0x40) != 0;
    const std::string identity = (options & 0x80) != 0 ? "fuzz/other" : fuzz::kObjectIdentity;
    ObjectDecoder decoder(source, decode, identity, "fuzz object");
    Sha256 sha;
    uint64_t produced = 0;
    if (options & 4) {
      class HashSink : public WriteStream {
       public:
        HashSink(Sha256& sha, uint64_t& produced) : sha_(sha), produced_(produced) {}
        void Write(Bytes bytes) override {
          sha_.Update(bytes);
          produced_ += bytes.size();
        }
        void Finish() override {}

       private:
        Sha256& sha_;
        uint64_t& produced_;
      } sink(sha, produced);
      fuzz::Require(decoder.DecodeTo(sink) == produced, "DecodeTo returns the bytes written");
    } else {
      std::vector<uint8_t> buffer(kReadSizes[(options >> 3) & 7]);
      while (size_t n = decoder.Read(buffer)) {
        sha.Update(Bytes(buffer.data(), n));
        produced += n;
      }
    }
    fuzz::Require(produced == decoder.plaintext_size(), "size as vouched by the end record");
    fuzz::Require(sha.Final() == decoder.plaintext_sha256(), "SHA-256 as vouched by the end record");
    const ObjectHeader& header = decoder.header();
    if (header.has_digest) {
      fuzz::Require(header.plaintext_size == produced && header.plaintext_sha256 ==
                    decoder.plaintext_sha256(), "header digest matches the plaintext");
    }
  });
  return 0;
}
