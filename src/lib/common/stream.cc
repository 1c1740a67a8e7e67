#include <walstore/stream.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/byte_buffer.h"

namespace walstore {

size_t ReadFully(ReadStream& in, MutableBytes out) {
  size_t total = 0;
  while (total < out.size()) {
    size_t n = in.Read(out.subspan(total));
    if (n == 0) break;
    total += n;
  }
  return total;
}

uint64_t Copy(ReadStream& in, WriteStream& out, size_t buffer_size) {
  ByteBuffer buffer(buffer_size);
  uint64_t total = 0;
  while (size_t n = in.Read(buffer)) {
    out.Write(Bytes(buffer.data(), n));
    total += n;
  }
  return total;
}

void StringWriteStream::Write(Bytes data) {
  data_.append(reinterpret_cast<const char*>(data.data()), data.size());
}

size_t MemoryReadStream::Read(MutableBytes out) {
  size_t n = std::min(out.size(), data_.size() - pos_);
  if (n > 0) std::memcpy(out.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

}  // namespace walstore
