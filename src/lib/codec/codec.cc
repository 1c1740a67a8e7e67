#include <walstore/codec.h>
#include <walstore/error.h>

#include <charconv>
#include <cstring>

#include "codec/codec_internal.h"

namespace walstore {
namespace {

struct LevelRange {
  int min;
  int max;
};
LevelRange LevelsOf(Codec codec) {
  switch (codec) {
    case Codec::kLz4: return {1, 12};  // 1 = fast mode, 2..12 = LZ4HC levels
    case Codec::kZstd: return {1, 22};
    case Codec::kNone: return {0, 0};
  }
  return {0, 0};
}

// Stores blocks as they are.
class NoneCodec : public BlockCodec {
 public:
  size_t MaxCompressedSize(size_t input_size) const override { return input_size; }
  size_t Compress(Bytes in, MutableBytes out) override {
    // memcpy needs valid pointers even for 0 bytes; an empty span's may be null.
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
    return in.size();
  }
  bool Decompress(Bytes in, MutableBytes out) override {
    if (in.size() != out.size()) return false;
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
    return true;
  }
};

}  // namespace

const char* CodecName(Codec codec) {
  switch (codec) {
    case Codec::kNone: return "none";
    case Codec::kLz4: return "lz4";
    case Codec::kZstd: return "zstd";
  }
  return "unknown";
}

CompressionSpec ParseCompressionSpec(std::string_view text, std::string_view source) {
  const std::string where = source.empty() ? "" : fmt::format("{}: ", source);
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  CompressionSpec spec;
  if (name == "none") {
    spec.codec = Codec::kNone;
  } else if (name == "lz4") {
    spec.codec = Codec::kLz4;
  } else if (name == "zstd") {
    spec.codec = Codec::kZstd;
  } else {
    Fail(ErrorCode::kConfig, "{}unknown compression \"{}\": use none, lz4[:level] or zstd[:level]",
         where, text);
  }
  if (colon != std::string_view::npos) {
    const std::string_view level = text.substr(colon + 1);
    const LevelRange range = LevelsOf(spec.codec);
    auto [end, ec] = std::from_chars(level.data(), level.data() + level.size(), spec.level);
    if (ec != std::errc() || end != level.data() + level.size() || spec.level < range.min ||
        spec.level > range.max || spec.codec == Codec::kNone) {
      Fail(ErrorCode::kConfig, "{}bad compression level in \"{}\": {} takes {}..{}", where, text,
           name, range.min, range.max);
    }
  }
  return spec;
}

std::string ToString(const CompressionSpec& spec) {
  if (spec.level == 0 || spec.codec == Codec::kNone) return CodecName(spec.codec);
  return fmt::format("{}:{}", CodecName(spec.codec), spec.level);
}

std::unique_ptr<BlockCodec> MakeBlockCodec(const CompressionSpec& spec) {
  switch (spec.codec) {
    case Codec::kNone: return std::make_unique<NoneCodec>();
    case Codec::kLz4: return MakeLz4Codec(spec.level);
    case Codec::kZstd: return MakeZstdCodec(spec.level);
  }
  Fail(ErrorCode::kUnsupportedFormat, "unknown compression codec {}",
       static_cast<int>(spec.codec));
}

}  // namespace walstore
