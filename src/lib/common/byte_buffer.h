// A fixed-size heap buffer that is not zero-filled: large scratch buffers of
// which only a part is touched (compression bounds) then cost no page faults
// for the rest.  Internal.
#pragma once
#include <walstore/stream.h>
#include <cstddef>
#include <cstdint>
#include <memory>
namespace walstore {
class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(size_t size) : data_(new uint8_t[size]), size_(size) {}
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  operator MutableBytes() { return {data_.get(), size_}; }
  operator Bytes() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
};
}  // namespace walstore
