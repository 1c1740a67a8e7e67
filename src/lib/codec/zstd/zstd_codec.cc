// zstd block codec with reused contexts.
#include <walstore/error.h>
#include <zstd.h>

#include "codec/codec_internal.h"

namespace walstore {
namespace {

class ZstdCodec : public BlockCodec {
 public:
  explicit ZstdCodec(int level)
      : level_(level == 0 ? 3 : level), cctx_(ZSTD_createCCtx()), dctx_(ZSTD_createDCtx()) {
    if (cctx_ == nullptr || dctx_ == nullptr) Fail(ErrorCode::kInternal, "out of memory (zstd)");
  }
  ~ZstdCodec() override {
    ZSTD_freeCCtx(cctx_);
    ZSTD_freeDCtx(dctx_);
  }
  size_t MaxCompressedSize(size_t input_size) const override {
    return ZSTD_compressBound(input_size);
  }
  size_t Compress(Bytes in, MutableBytes out) override {
    size_t n = ZSTD_compressCCtx(cctx_, out.data(), out.size(), in.data(), in.size(), level_);
    if (ZSTD_isError(n)) Fail(ErrorCode::kInternal, "zstd compression failed: {}", ZSTD_getErrorName(n));
    return n;
  }
  bool Decompress(Bytes in, MutableBytes out) override {
    size_t n = ZSTD_decompressDCtx(dctx_, out.data(), out.size(), in.data(), in.size());
    return !ZSTD_isError(n) && n == out.size();
  }

 private:
  int level_;
  ZSTD_CCtx* cctx_;
  ZSTD_DCtx* dctx_;
};

}  // namespace

std::unique_ptr<BlockCodec> MakeZstdCodec(int level) { return std::make_unique<ZstdCodec>(level); }

}  // namespace walstore
