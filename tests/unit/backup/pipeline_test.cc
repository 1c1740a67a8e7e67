#include "backup/pipeline.h"

#include <doctest/doctest.h>
#include <walstore/error.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace walstore::backup {
namespace {

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return s;
}

class FailingWriter : public WriteStream {
 public:
  void Write(Bytes) override { Fail(ErrorCode::kNoSpace, "disk full"); }
  void Finish() override {}
};

class FailingReader : public ReadStream {
 public:
  size_t Read(MutableBytes out) override {
    if (served_ >= 3) Fail(ErrorCode::kCorrupt, "damaged at block 3");
    ++served_;
    std::fill(out.begin(), out.end(), uint8_t{'x'});
    return out.size();
  }

 private:
  int served_ = 0;
};

// An endless source that counts the bytes it served.
class CountingSource : public ReadStream {
 public:
  size_t Read(MutableBytes out) override {
    std::fill(out.begin(), out.end(), uint8_t{'y'});
    served += out.size();
    return out.size();
  }
  std::atomic<uint64_t> served{0};
};

TEST_SUITE("backup_pipeline") {
  TEST_CASE("PrefetchReader's read-ahead stays within 3 MiB (restore's memory bound)") {
    CountingSource source;
    // kPipelineDepth blocks queued and one waiting to be queued, 1 MiB each.
    const uint64_t bound = uint64_t{3} << 20;
    PrefetchReader reader(source);  // the default block size and depth, as restore uses
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (source.served < bound && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // room to overshoot
    CHECK(source.served == bound);
    uint8_t byte = 0;
    CHECK(reader.Read(MutableBytes(&byte, 1)) == 1);
  }

  TEST_CASE("BackgroundWriter passes every byte in order") {
    std::string data = Pattern(1000003);
    StringWriteStream out;
    BackgroundWriter writer(out, 4096, 3);
    for (size_t pos = 0; pos < data.size(); pos += 777) {
      writer.Write(AsBytes(std::string_view(data).substr(pos, 777)));
    }
    writer.Finish();
    CHECK(out.data() == data);
  }

  TEST_CASE("BackgroundWriter rethrows the downstream error") {
    FailingWriter failing;
    BackgroundWriter writer(failing, 1024, 2);
    std::string block(1024, 'z');
    auto write_all = [&] {
      for (int i = 0; i < 100; ++i) writer.Write(AsBytes(block));
      writer.Finish();
    };
    CHECK_THROWS_AS(write_all(), Error);
  }

  TEST_CASE("BackgroundWriter abandoned without Finish stops cleanly") {
    StringWriteStream out;
    {
      BackgroundWriter writer(out, 16, 1);
      for (int i = 0; i < 50; ++i) writer.Write(AsBytes("0123456789"));
    }
    CHECK(out.data().size() <= 500);
  }

  TEST_CASE("PrefetchReader yields the source exactly") {
    std::string data = Pattern(300001);
    MemoryReadStream in(data);
    PrefetchReader reader(in, 1000, 4);
    std::string got;
    uint8_t buf[333];
    while (size_t n = reader.Read(MutableBytes(buf, sizeof buf)))
      got.append(reinterpret_cast<char*>(buf), n);
    CHECK(got == data);
    CHECK(reader.Read(MutableBytes(buf, sizeof buf)) == 0);
  }

  TEST_CASE("PrefetchReader rethrows the source's error after the good blocks") {
    FailingReader failing;
    PrefetchReader reader(failing, 100, 2);
    uint8_t buf[100];
    size_t good = 0;
    auto read_all = [&] {
      while (size_t n = reader.Read(MutableBytes(buf, sizeof buf))) good += n;
    };
    CHECK_THROWS_AS(read_all(), Error);
    CHECK(good == 300);
  }

  TEST_CASE("PrefetchReader destroyed early stops its thread") {
    std::string data = Pattern(100000);
    MemoryReadStream in(data);
    PrefetchReader reader(in, 100, 2);
    uint8_t buf[10];
    CHECK(reader.Read(MutableBytes(buf, sizeof buf)) == 10);
  }
}

}  // namespace
}  // namespace walstore::backup
