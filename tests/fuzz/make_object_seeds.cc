// Writes the object decoder's seeds (tests/fuzz/make_corpus.py runs it): real
// objects made by ObjectEncoder for each codec, plain and encrypted under the
// fuzz key, prefixed with the target's option byte (see fuzz_object_decoder.cc).
#include <walstore/object_format.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "fuzz_util.h"

using namespace walstore;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const Key key = fuzz::FuzzKey();
  // Small, compressible plaintext over several small chunks so records repeat.
  std::string plaintext;
  for (int i = 0; plaintext.size() < 3000; ++i) plaintext += "walstore fuzz seed line " + std::to_string(i) + "\n";
  struct Seed {
    const char* name;
    CompressionSpec compression;
    bool encrypt;
    bool known_digest;
    uint8_t options;
  };
  const Seed seeds[] = {
      {"none_plain", {Codec::kNone, 0}, false, false, 0x00},
      {"lz4_plain_digest", {Codec::kLz4, 0}, false, true, 0x04},
      {"zstd_plain", {Codec::kZstd, 3}, false, false, 0x18},
      {"none_key", {Codec::kNone, 0}, true, true, 0x01},
      {"lz4_key_rotated", {Codec::kLz4, 0}, true, false, 0x02},
      {"zstd_key_decodeto", {Codec::kZstd, 0}, true, true, 0x05},
      {"zstd_wrong_key", {Codec::kZstd, 0}, true, false, 0x03},
  };
  for (const Seed& seed : seeds) {
    StringWriteStream out;
    EncodeOptions options;
    options.compression = seed.compression;
    options.key = seed.encrypt ? &key : nullptr;
    options.chunk_size = 1024;
    options.identity = fuzz::kObjectIdentity;
    if (seed.known_digest) options.known_digest = {{plaintext.size(), Sha256Of(AsBytes(plaintext))}};
    ObjectEncoder encoder(out, options);
    encoder.Write(AsBytes(plaintext));
    encoder.Finish();
    const std::string path = std::string(argv[1]) + "/" + seed.name;
    std::ofstream file(path, std::ios::binary);
    file.put(static_cast<char>(seed.options));
    file << out.data();
    if (!file.flush()) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  // An empty object, as walpush writes for an empty history file.
  StringWriteStream out;
  EncodeOptions options;
  options.compression = {Codec::kLz4, 0};
  options.identity = fuzz::kObjectIdentity;
  ObjectEncoder encoder(out, options);
  encoder.Finish();
  std::ofstream(std::string(argv[1]) + "/lz4_empty", std::ios::binary) << '\0' << out.data();
  return 0;
}
