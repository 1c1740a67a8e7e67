// Tests for src/lib/common/stream.cc.
#include <doctest/doctest.h>

#include <walstore/stream.h>

#include <string>
#include <vector>

#include "test_util.h"

using namespace walstore;

namespace {
class CountingWriteStream : public WriteStream {
 public:
  void Write(Bytes data) override {
    bytes += data.size();
    ++writes;
    max_write = std::max(max_write, data.size());
    content.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  void Finish() override { ++finishes; }
  uint64_t bytes = 0;
  int writes = 0;
  int finishes = 0;
  size_t max_write = 0;
  std::string content;
};
}  // namespace

TEST_SUITE("stream") {
  TEST_CASE("StringWriteStream appends") {
    StringWriteStream s;
    s.Write(AsBytes("abc"));
    s.Write(AsBytes(""));
    s.Write(AsBytes("def"));
    s.Finish();
    CHECK(s.data() == "abcdef");
  }

  TEST_CASE("MemoryReadStream reads in pieces and returns 0 at the end") {
    const std::string data = walstore::test::RandomString(1000);
    MemoryReadStream in{std::string_view(data)};
    std::vector<uint8_t> buf(300);
    std::string got;
    for (int i = 0; i < 4; ++i) {
      size_t n = in.Read(MutableBytes(buf.data(), buf.size()));
      CHECK(n == (i < 3 ? 300u : 100u));
      got.append(reinterpret_cast<char*>(buf.data()), n);
    }
    CHECK(in.Read(MutableBytes(buf.data(), buf.size())) == 0);
    CHECK(in.Read(MutableBytes(buf.data(), buf.size())) == 0);
    CHECK(got == data);
  }

  TEST_CASE("MemoryReadStream over empty data") {
    MemoryReadStream in(std::string_view(""));
    uint8_t b[4];
    CHECK(in.Read(MutableBytes(b, 4)) == 0);
  }

  TEST_CASE("ReadFully fills the buffer across short reads") {
    const std::string data = walstore::test::RandomString(1000, 9);
    test::TrickleReadStream in(data, 7);
    std::vector<uint8_t> buf(600);
    CHECK(ReadFully(in, MutableBytes(buf.data(), buf.size())) == 600);
    CHECK(std::string(buf.begin(), buf.end()) == data.substr(0, 600));
    CHECK(ReadFully(in, MutableBytes(buf.data(), buf.size())) == 400);
    CHECK(std::string(buf.begin(), buf.begin() + 400) == data.substr(600));
    CHECK(ReadFully(in, MutableBytes(buf.data(), buf.size())) == 0);
  }

  TEST_CASE("Copy copies everything with a bounded buffer and does not finish") {
    const std::string data = walstore::test::RandomString(100000, 11);
    test::TrickleReadStream in(data, 3000);
    CountingWriteStream out;
    CHECK(Copy(in, out, 4096) == data.size());
    CHECK(out.content == data);
    CHECK(out.max_write <= 4096);
    CHECK(out.finishes == 0);
  }

  TEST_CASE("Copy of an empty stream") {
    MemoryReadStream in(std::string_view(""));
    CountingWriteStream out;
    CHECK(Copy(in, out) == 0);
    CHECK(out.bytes == 0);
  }
}
