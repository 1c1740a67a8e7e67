// Tests for src/lib/common/byte_buffer.h.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "common/byte_buffer.h"

using namespace walstore;

namespace {

// Fills the whole buffer with a pattern and checks it reads back.
bool FillAndCheck(ByteBuffer& buffer, uint8_t seed) {
  for (size_t i = 0; i < buffer.size(); ++i) buffer.data()[i] = static_cast<uint8_t>(seed + i * 7);
  for (size_t i = 0; i < buffer.size(); ++i) {
    if (buffer.data()[i] != static_cast<uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

}  // namespace

TEST_SUITE("byte_buffer") {
  TEST_CASE("huge pages only for whole MiB of at least 1 MiB") {
    CHECK(!ByteBuffer::UsesHugePages(0));
    CHECK(!ByteBuffer::UsesHugePages(4096));
    CHECK(!ByteBuffer::UsesHugePages((1u << 20) - 1));
    CHECK(ByteBuffer::UsesHugePages(1u << 20));
    CHECK(!ByteBuffer::UsesHugePages((1u << 20) + 4096 + 16));  // a compressed bound
    CHECK(ByteBuffer::UsesHugePages(2u << 20));
    CHECK(ByteBuffer::UsesHugePages(3u << 20));
    CHECK(ByteBuffer::UsesHugePages(16u << 20));
  }

  TEST_CASE("every size is usable end to end") {
    for (size_t size : {size_t{0}, size_t{1}, size_t{4096}, size_t{1} << 20, (size_t{1} << 20) + 1,
                        size_t{3} << 20, (size_t{4} << 20) + 80}) {
      CAPTURE(size);
      ByteBuffer buffer(size);
      CHECK(buffer.size() == size);
      CHECK(MutableBytes(buffer).size() == size);
      CHECK(Bytes(std::as_const(buffer)).size() == size);
      if (size > 0) {
        CHECK(buffer.data() != nullptr);
        CHECK(FillAndCheck(buffer, static_cast<uint8_t>(size)));
      }
    }
  }

  TEST_CASE("whole-MiB buffers start on a huge-page boundary") {
    for (size_t mib : {1, 2, 3}) {
      ByteBuffer buffer(mib << 20);
      CHECK(reinterpret_cast<uintptr_t>(buffer.data()) % ByteBuffer::kHugePage == 0);
    }
  }

  TEST_CASE("Several: whole-MiB buffers share one huge-page mapping, end to end") {
    // Each on its own mapping, three 1 MiB chunk buffers would touch three
    // 2 MiB huge pages (6 MiB of RSS); laid end to end they touch two.
    for (size_t count : {2, 3, 6}) {
      CAPTURE(count);
      auto buffers = ByteBuffer::Several(count, size_t{1} << 20);
      REQUIRE(buffers.size() == count);
      CHECK(reinterpret_cast<uintptr_t>(buffers[0].data()) % ByteBuffer::kHugePage == 0);
      for (size_t i = 0; i < count; ++i) {
        CHECK(buffers[i].size() == size_t{1} << 20);
        CHECK(buffers[i].data() == buffers[0].data() + i * (size_t{1} << 20));
      }
      for (size_t i = 0; i < count; ++i) CHECK(FillAndCheck(buffers[i], static_cast<uint8_t>(i)));
      // Every part keeps the mapping: the first one going frees nothing the others use.
      ByteBuffer last = std::move(buffers.back());
      buffers.clear();
      CHECK(FillAndCheck(last, 9));
    }
  }

  TEST_CASE("Several: other sizes, and one buffer, are plain ByteBuffers") {
    auto odd = ByteBuffer::Several(3, (size_t{1} << 20) + 4096 + 16);
    REQUIRE(odd.size() == 3);
    for (auto& buffer : odd) {
      CHECK(buffer.size() == (size_t{1} << 20) + 4096 + 16);
      CHECK(FillAndCheck(buffer, 3));
    }
    auto one = ByteBuffer::Several(1, size_t{1} << 20);
    REQUIRE(one.size() == 1);
    CHECK(reinterpret_cast<uintptr_t>(one[0].data()) % ByteBuffer::kHugePage == 0);
    CHECK(ByteBuffer::Several(0, size_t{1} << 20).empty());
  }

  TEST_CASE("moves hand the memory over; many buffers come and go") {
    std::vector<ByteBuffer> buffers;
    for (int i = 0; i < 8; ++i) {
      buffers.emplace_back(i % 2 == 0 ? size_t{1} << 20 : size_t{100000});
      CHECK(FillAndCheck(buffers.back(), static_cast<uint8_t>(i)));
    }
    ByteBuffer moved = std::move(buffers[0]);
    CHECK(moved.size() == size_t{1} << 20);
    CHECK(moved.data()[1] == static_cast<uint8_t>(0 + 7));
    buffers[0] = ByteBuffer(4096);  // assignment frees nothing twice
    buffers[2] = std::move(moved);
    CHECK(buffers[2].data()[2] == static_cast<uint8_t>(14));
    buffers.clear();
    ByteBuffer empty;
    CHECK(empty.size() == 0);
    CHECK(empty.data() == nullptr);
  }
}
