// lz4 block codec: fast mode for level 1, LZ4HC for levels 2..12.
#include <lz4.h>
#include <lz4hc.h>
#include <walstore/error.h>

#include <vector>

#include "codec/codec_internal.h"

namespace walstore {
namespace {

class Lz4Codec : public BlockCodec {
 public:
  explicit Lz4Codec(int level) : level_(level <= 1 ? 1 : level) {
    state_.resize(level_ == 1 ? LZ4_sizeofState() : LZ4_sizeofStateHC());
  }
  size_t MaxCompressedSize(size_t input_size) const override {
    return LZ4_compressBound(static_cast<int>(input_size));
  }
  size_t Compress(Bytes in, MutableBytes out) override {
    const char* src = reinterpret_cast<const char*>(in.data());
    char* dst = reinterpret_cast<char*>(out.data());
    const int src_size = static_cast<int>(in.size());
    const int dst_size = static_cast<int>(out.size());
    int n = level_ == 1 ? LZ4_compress_fast_extState(state_.data(), src, dst, src_size, dst_size, 1)
                        : LZ4_compress_HC_extStateHC(state_.data(), src, dst, src_size, dst_size,
                                                     level_);
    if (n <= 0 && !in.empty()) Fail(ErrorCode::kInternal, "lz4 compression failed");
    return static_cast<size_t>(n);
  }
  bool Decompress(Bytes in, MutableBytes out) override {
    int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()),
                                reinterpret_cast<char*>(out.data()), static_cast<int>(in.size()),
                                static_cast<int>(out.size()));
    return n >= 0 && static_cast<size_t>(n) == out.size();
  }

 private:
  int level_;
  std::vector<char> state_;
};

}  // namespace

std::unique_ptr<BlockCodec> MakeLz4Codec(int level) { return std::make_unique<Lz4Codec>(level); }

}  // namespace walstore
