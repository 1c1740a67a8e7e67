#include "common/byte_buffer.h"

#include <sys/mman.h>

#include <limits>
#include <new>

namespace walstore {

namespace {

size_t WholeHugePages(size_t size) {
  return (size + ByteBuffer::kHugePage - 1) / ByteBuffer::kHugePage * ByteBuffer::kHugePage;
}

// A 2 MiB-aligned anonymous mapping of `rounded` bytes (whole huge pages),
// hinted MADV_HUGEPAGE.
uint8_t* MapHugePages(size_t rounded) {
  constexpr size_t kHugePage = ByteBuffer::kHugePage;
  // Map one huge page more than needed, then trim both ends so that what is
  // left starts and ends on a huge-page boundary.
  void* raw = mmap(nullptr, rounded + kHugePage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  auto* const start = static_cast<uint8_t*>(raw);
  const uintptr_t address = reinterpret_cast<uintptr_t>(start);
  const size_t head = (kHugePage - address % kHugePage) % kHugePage;
  uint8_t* const aligned = start + head;
  if (head != 0) munmap(start, head);
  if (kHugePage - head != 0) munmap(aligned + rounded, kHugePage - head);
  // Only a hint: without transparent huge pages the buffer still works.
  madvise(aligned, rounded, MADV_HUGEPAGE);
  return aligned;
}

}  // namespace

void ByteBufferRelease::operator()(uint8_t* data) const {
  if (shared) return;  // the mapping goes with the last part holding `shared`
  if (mapped != 0) {
    munmap(data, mapped);
  } else {
    delete[] data;
  }
}

ByteBuffer::ByteBuffer(size_t size) : size_(size) {
  if (!UsesHugePages(size)) {
    data_.reset(new uint8_t[size]);
    return;
  }
  const size_t rounded = WholeHugePages(size);
  data_ = std::unique_ptr<uint8_t[], ByteBufferRelease>(MapHugePages(rounded),
                                                        ByteBufferRelease{rounded, nullptr});
}

std::vector<ByteBuffer> ByteBuffer::Several(size_t count, size_t size) {
  std::vector<ByteBuffer> buffers(count);
  if (count <= 1 || !UsesHugePages(size)) {
    for (auto& buffer : buffers) buffer = ByteBuffer(size);
    return buffers;
  }
  if (size > (std::numeric_limits<size_t>::max() - kHugePage) / count) throw std::bad_alloc();
  const size_t rounded = WholeHugePages(count * size);
  uint8_t* const base = MapHugePages(rounded);
  const std::shared_ptr<uint8_t> mapping(base, [rounded](uint8_t* p) { munmap(p, rounded); });
  for (size_t i = 0; i < count; ++i) {
    buffers[i].size_ = size;
    buffers[i].data_ = std::unique_ptr<uint8_t[], ByteBufferRelease>(
        base + i * size, ByteBufferRelease{0, mapping});
  }
  return buffers;
}

}  // namespace walstore
