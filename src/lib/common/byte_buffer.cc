#include "common/byte_buffer.h"

#include <sys/mman.h>

#include <new>

namespace walstore {

void ByteBufferRelease::operator()(uint8_t* data) const {
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
  // Map one huge page more than needed, then trim both ends so that what is
  // left starts and ends on a huge-page boundary.
  const size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
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
  data_ = std::unique_ptr<uint8_t[], ByteBufferRelease>(aligned, ByteBufferRelease{rounded});
}

}  // namespace walstore
