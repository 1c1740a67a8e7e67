// Compression codecs used inside walstore objects.
//
// Objects are compressed chunk by chunk (see object_format.h), so a codec
// here compresses one bounded block at a time; memory stays bounded whatever
// the object size.  Each codec is in its own folder under src/lib/codec/.
#pragma once

#include <walstore/stream.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace walstore {

// Stored in the object header: values are part of the on-disk format.
enum class Codec : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };

struct CompressionSpec {
  Codec codec = Codec::kLz4;
  int level = 0;  // 0 = the codec's default (lz4: fast mode 1; zstd: 3)
  bool operator==(const CompressionSpec&) const = default;
};

// "none", "lz4", "lz4:4", "zstd", "zstd:9".  Throws Error(kConfig); the
// message starts with `source` (e.g. "walstore.toml: setting \"compression\"")
// when given.
CompressionSpec ParseCompressionSpec(std::string_view text, std::string_view source = {});
std::string ToString(const CompressionSpec& spec);
const char* CodecName(Codec codec);

// Compresses and decompresses independent blocks.  One instance per thread
// (it keeps codec contexts between calls).
class BlockCodec {
 public:
  virtual ~BlockCodec() = default;
  // Worst-case compressed size of `input_size` bytes.
  virtual size_t MaxCompressedSize(size_t input_size) const = 0;
  // Compresses `in` into `out` (at least MaxCompressedSize bytes); returns
  // the compressed size.
  virtual size_t Compress(Bytes in, MutableBytes out) = 0;
  // Decompresses `in` into `out`.  Returns false (out is then garbage) unless
  // `in` is a valid block that expands to exactly out.size() bytes; damaged
  // input is a value here so callers can name the object in their error.
  [[nodiscard]] virtual bool Decompress(Bytes in, MutableBytes out) = 0;
};

// Throws Error(kUnsupportedFormat) for a codec this build does not have.
std::unique_ptr<BlockCodec> MakeBlockCodec(const CompressionSpec& spec);

}  // namespace walstore
