// A fixed-size heap buffer that is not zero-filled: large scratch buffers of
// which only a part is touched (compression bounds) then cost no page faults
// for the rest.  Internal.
//
// Buffers of whole MiB (at least 1 MiB) are placed on their own 2 MiB-aligned
// mapping with MADV_HUGEPAGE: those are the plaintext chunk buffers (chunk_size,
// 1 MiB by default) and batches of them, which are filled completely, and
// whose first touch otherwise costs one page fault per 4 KiB (256 per MiB; about
// 0.5 ms per MiB on a virtual machine).  With transparent huge pages in
// "madvise" or "always" mode one fault maps 2 MiB; with "never" nothing
// changes.  Other sizes (bounds such as a chunk's compressed bound plus header
// and tag, usually only partly used) stay on the heap, where a few touched KiB
// cost a few 4 KiB pages instead of a zeroed 2 MiB page.
//
// A whole-MiB buffer that is not a whole number of huge pages still occupies
// whole huge pages once touched (a 1 MiB buffer costs 2 MiB of RSS).  Sets of
// same-sized buffers (a decoder's or encoder's chunk buffers) therefore come
// from Several(), which lays them end to end on one mapping: the rounding is
// paid once per set, not once per buffer (3 chunk buffers of 1 MiB: 4 MiB
// instead of 6).
#pragma once
#include <walstore/stream.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace walstore {

// Frees a ByteBuffer's memory: munmap for a huge-page mapping of its own,
// nothing for a part of a shared one (Several(): the last part to go unmaps
// it, by dropping `shared`), delete[] otherwise.
struct ByteBufferRelease {
  size_t mapped = 0;  // bytes mapped; 0 = allocated with new[] or shared
  std::shared_ptr<uint8_t> shared;  // the mapping this buffer is a part of
  void operator()(uint8_t* data) const;
};

class ByteBuffer {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kHugeUnit = size_t{1} << 20;
  // Whether a buffer of `size` bytes goes on its own huge-page mapping.
  static constexpr bool UsesHugePages(size_t size) {
    return size >= kHugeUnit && size % kHugeUnit == 0;
  }

  ByteBuffer() = default;
  explicit ByteBuffer(size_t size);
  // `count` buffers of `size` bytes.  Whole-MiB sizes share one 2 MiB-aligned
  // MADV_HUGEPAGE mapping of count * size bytes rounded up to whole huge
  // pages, buffer i at offset i * size; other sizes are `count` ByteBuffer(size).
  static std::vector<ByteBuffer> Several(size_t count, size_t size);
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  operator MutableBytes() { return {data_.get(), size_}; }
  operator Bytes() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<uint8_t[], ByteBufferRelease> data_;
  size_t size_ = 0;
};
}  // namespace walstore
