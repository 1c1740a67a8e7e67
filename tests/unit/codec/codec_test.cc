// Tests for src/lib/codec: block codecs and compression specs.
#include <doctest/doctest.h>

#include <walstore/codec.h>
#include <walstore/error.h>

#include <string>
#include <vector>

#include "test_util.h"

using namespace walstore;
using walstore::test::CompressibleString;
using walstore::test::RandomString;

namespace {

std::vector<CompressionSpec> AllSpecs() {
  return {
      {Codec::kNone, 0}, {Codec::kLz4, 0},  {Codec::kLz4, 1},  {Codec::kLz4, 9},
      {Codec::kZstd, 0}, {Codec::kZstd, 1}, {Codec::kZstd, 3}, {Codec::kZstd, 9},
      {Codec::kZstd, 19},
  };
}

std::vector<uint8_t> Compress(BlockCodec& c, const std::string& in) {
  std::vector<uint8_t> out(c.MaxCompressedSize(in.size()));
  const size_t n = c.Compress(AsBytes(in), MutableBytes(out.data(), out.size()));
  REQUIRE(n <= out.size());
  out.resize(n);
  return out;
}

std::string Decompress(BlockCodec& c, const std::vector<uint8_t>& in, size_t size) {
  std::string out(size, '\0');
  const bool ok = c.Decompress(Bytes(in.data(), in.size()),
                               MutableBytes(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  CHECK(ok);
  return out;
}

// Decompress of damaged input: "false", "true", or what it threw.
std::string TryDecompress(BlockCodec& c, const std::vector<uint8_t>& in, size_t size) {
  std::string out(size, '\0');
  std::string result;
  const std::string thrown = walstore::test::ThrownCode([&] {
    result = c.Decompress(Bytes(in.data(), in.size()),
                          MutableBytes(reinterpret_cast<uint8_t*>(out.data()), out.size()))
                 ? "true"
                 : "false";
  });
  return thrown == "no exception" ? result : "threw " + thrown;
}

}  // namespace

TEST_SUITE("codec") {
  TEST_CASE("round trips for every codec and several levels") {
    const std::vector<std::pair<const char*, std::string>> inputs = {
        {"empty", ""},
        {"one byte", "x"},
        {"random 64 KiB", RandomString(64 << 10, 1)},
        {"zeros 1 MiB", std::string(1 << 20, '\0')},
        {"compressible 1 MiB", CompressibleString(1 << 20, 2)},
        {"random 1 MiB", RandomString(1 << 20, 3)},
    };
    for (const auto& spec : AllSpecs()) {
      CAPTURE(ToString(spec));
      auto codec = MakeBlockCodec(spec);
      REQUIRE(codec != nullptr);
      for (const auto& [label, data] : inputs) {
        CAPTURE(std::string(label));
        if (spec.level == 19 && data.size() > (64 << 10) && label == std::string("random 1 MiB"))
          continue;  // keep the suite fast; level 19 on random data is slow
        auto c = Compress(*codec, data);
        CHECK(Decompress(*codec, c, data.size()) == data);
        if (spec.codec != Codec::kNone && label == std::string("zeros 1 MiB")) {
          CHECK(c.size() < data.size() / 50);
        }
        if (spec.codec != Codec::kNone && label == std::string("compressible 1 MiB")) {
          CHECK(c.size() < data.size() / 2);
        }
        if (spec.codec == Codec::kNone) CHECK(c.size() == data.size());
      }
    }
  }

  TEST_CASE("one codec instance handles many blocks in a row") {
    for (const auto& spec : AllSpecs()) {
      CAPTURE(ToString(spec));
      auto codec = MakeBlockCodec(spec);
      for (int i = 0; i < 20; ++i) {
        const std::string data = (i % 2) ? RandomString(1000 + i * 37, i) : CompressibleString(5000 + i, i);
        auto c = Compress(*codec, data);
        CHECK(Decompress(*codec, c, data.size()) == data);
      }
    }
  }

  TEST_CASE("level 0 means the codec default (lz4: 1, zstd: 3)") {
    const std::string data = CompressibleString(200000, 12);
    auto lz4_0 = MakeBlockCodec({Codec::kLz4, 0});
    auto lz4_1 = MakeBlockCodec({Codec::kLz4, 1});
    CHECK(Compress(*lz4_0, data) == Compress(*lz4_1, data));
    auto zstd_0 = MakeBlockCodec({Codec::kZstd, 0});
    auto zstd_3 = MakeBlockCodec({Codec::kZstd, 3});
    CHECK(Compress(*zstd_0, data) == Compress(*zstd_3, data));
  }

  TEST_CASE("higher zstd levels do not compress worse on text") {
    const std::string data = CompressibleString(1 << 20, 5);
    auto fast = MakeBlockCodec({Codec::kZstd, 1});
    auto strong = MakeBlockCodec({Codec::kZstd, 19});
    CHECK(Compress(*strong, data).size() <= Compress(*fast, data).size());
  }

  TEST_CASE("Decompress returns false for a wrong output size") {
    for (const auto& spec : AllSpecs()) {
      CAPTURE(ToString(spec));
      auto codec = MakeBlockCodec(spec);
      const std::string data = CompressibleString(10000, 9);
      auto c = Compress(*codec, data);
      CHECK(TryDecompress(*codec, c, data.size() + 1) == "false");
      CHECK(TryDecompress(*codec, c, data.size() - 1) == "false");
      CHECK(TryDecompress(*codec, c, 0) == "false");
      // Empty input for a non-empty block.
      CHECK(TryDecompress(*codec, {}, 100) == "false");
      // Still usable afterwards.
      CHECK(Decompress(*codec, c, data.size()) == data);
    }
  }

  TEST_CASE("Decompress of truncated input returns false") {
    for (const auto& spec : AllSpecs()) {
      CAPTURE(ToString(spec));
      auto codec = MakeBlockCodec(spec);
      for (const std::string& data : {CompressibleString(20000, 4), RandomString(20000, 4)}) {
        auto c = Compress(*codec, data);
        for (size_t cut : {size_t{0}, size_t{1}, c.size() / 2, c.size() - 1}) {
          CAPTURE(cut);
          std::vector<uint8_t> t(c.begin(), c.begin() + static_cast<long>(cut));
          CHECK(TryDecompress(*codec, t, data.size()) == "false");
        }
      }
    }
  }

  TEST_CASE("Decompress of a flipped byte returns false or other bytes, never throws or crashes") {
    // A block codec has no checksum of its own (the object format's SHA-256 and
    // GCM tag catch silent changes), so a flipped literal may decode to other
    // bytes of the right size.  What is required: no exception, no crash, and
    // damage to the codec's structure (the first byte) is detected.
    for (const auto& spec : AllSpecs()) {
      if (spec.codec == Codec::kNone) continue;
      CAPTURE(ToString(spec));
      auto codec = MakeBlockCodec(spec);
      const std::string data = CompressibleString(30000, 8);
      auto c = Compress(*codec, data);
      int detected = 0;
      for (size_t pos = 0; pos < c.size(); pos += 1 + c.size() / 300) {
        CAPTURE(pos);
        auto bad = c;
        bad[pos] ^= 0xFF;
        const std::string got = TryDecompress(*codec, bad, data.size());
        CHECK((got == "false" || got == "true"));
        if (got == "false") ++detected;
      }
      CHECK(detected > 0);
      auto bad = c;
      bad[0] ^= 0xFF;  // lz4's first token / zstd's frame magic
      CHECK(TryDecompress(*codec, bad, data.size()) == "false");
      CHECK(Decompress(*codec, c, data.size()) == data);
    }
  }

  TEST_CASE("ParseCompressionSpec accepts the documented forms") {
    CHECK(ParseCompressionSpec("none").codec == Codec::kNone);
    CHECK(ParseCompressionSpec("lz4") == CompressionSpec{Codec::kLz4, 0});
    CHECK(ParseCompressionSpec("lz4:1") == CompressionSpec{Codec::kLz4, 1});
    CHECK(ParseCompressionSpec("lz4:4") == CompressionSpec{Codec::kLz4, 4});
    auto z = ParseCompressionSpec("zstd");
    CHECK(z.codec == Codec::kZstd);
    CHECK((z.level == 0 || z.level == 3));  // 0 = the codec default (3)
    CHECK(ParseCompressionSpec("zstd:19") == CompressionSpec{Codec::kZstd, 19});
    CHECK(ParseCompressionSpec("zstd:9") == CompressionSpec{Codec::kZstd, 9});
    CHECK(ParseCompressionSpec("zstd:1") == CompressionSpec{Codec::kZstd, 1});
  }

  TEST_CASE("ParseCompressionSpec refuses bad specs with kConfig") {
    for (const char* bad : {"gzip", "zstd:abc", "zstd:99", "zstd:", "lz4:", ":3", "", "zstd:3x",
                            "zstd:3:4", "zstd 3", "bzip2:9", "none:3x"}) {
      CAPTURE(std::string(bad));
      CHECK_THROWS_AS(ParseCompressionSpec(bad), Error);
      CHECK_CODE(ParseCompressionSpec(bad), ErrorCode::kConfig);
    }
    const std::string msg = walstore::test::ThrownMessage([] { ParseCompressionSpec("gzip"); });
    CHECK(walstore::test::Contains(msg, "gzip"));
  }

  TEST_CASE("ToString round trips and CodecName") {
    for (const auto& spec : AllSpecs()) {
      CAPTURE(ToString(spec));
      const CompressionSpec back = ParseCompressionSpec(ToString(spec));
      CHECK(back.codec == spec.codec);
      if (spec.level != 0) CHECK(back.level == spec.level);
    }
    CHECK(ToString({Codec::kZstd, 7}) == "zstd:7");
    CHECK(std::string(CodecName(Codec::kNone)) == "none");
    CHECK(std::string(CodecName(Codec::kLz4)) == "lz4");
    CHECK(std::string(CodecName(Codec::kZstd)) == "zstd");
  }

  TEST_CASE("MakeBlockCodec refuses an unknown codec value") {
    CHECK_CODE(MakeBlockCodec({static_cast<Codec>(77), 0}), ErrorCode::kUnsupportedFormat);
  }
}
