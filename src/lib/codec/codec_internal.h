// Factories of the individual codecs (one folder each).  Internal.
#pragma once
#include <walstore/codec.h>
#include <memory>
namespace walstore {
std::unique_ptr<BlockCodec> MakeLz4Codec(int level);
std::unique_ptr<BlockCodec> MakeZstdCodec(int level);
}  // namespace walstore
