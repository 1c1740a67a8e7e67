// Tests for src/lib/crypto: SHA-256, HMAC, keys, HKDF and AES-256-GCM.
#include <doctest/doctest.h>

#include <walstore/crypto.h>
#include <walstore/error.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::FromHex;
using walstore::test::LowerHex;

namespace {

std::string HexOf(const Sha256Digest& d) { return ToHex(d); }

Bytes B(const std::string& s) { return AsBytes(s); }

std::array<uint8_t, 32> Arr32(const std::string& bytes) {
  std::array<uint8_t, 32> a{};
  REQUIRE(bytes.size() == 32);
  std::copy(bytes.begin(), bytes.end(), a.begin());
  return a;
}

std::array<uint8_t, 12> Arr12(const std::string& bytes) {
  std::array<uint8_t, 12> a{};
  REQUIRE(bytes.size() == 12);
  std::copy(bytes.begin(), bytes.end(), a.begin());
  return a;
}

const char* kKeyHex = "3c1f6a0e9d8b7c6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa9988";

std::string Seal(AesGcm& gcm, const std::array<uint8_t, 12>& nonce, const std::string& aad,
                 const std::string& pt) {
  std::string out(pt.size() + AesGcm::kTagSize, '\0');
  gcm.Seal(nonce, B(aad), B(pt), MutableBytes(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  return out;
}

bool Open(AesGcm& gcm, const std::array<uint8_t, 12>& nonce, const std::string& aad,
          const std::string& ct, std::string* pt) {
  pt->assign(ct.size() - AesGcm::kTagSize, '\0');
  return gcm.Open(nonce, B(aad), B(ct), MutableBytes(reinterpret_cast<uint8_t*>(pt->data()), pt->size()));
}

// RFC 5869 HKDF-SHA256 with one output block, built from HmacSha256.
std::string Hkdf32(const std::string& ikm, const std::string& salt, const std::string& info) {
  const Sha256Digest prk = HmacSha256(B(salt), B(ikm));
  std::string t = info + '\x01';
  const Sha256Digest okm = HmacSha256(Bytes(prk.data(), prk.size()), B(t));
  return std::string(okm.begin(), okm.end());
}

}  // namespace

TEST_SUITE("crypto") {
  TEST_CASE("ToHex is lower case") {
    CHECK(ToHex(B(std::string("\x00\x01\xab\xff", 4))) == "0001abff");
    CHECK(ToHex(Bytes()) == "");
  }

  TEST_CASE("SHA-256 known answers") {
    CHECK(HexOf(Sha256Of(B(""))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(HexOf(Sha256Of(B("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(HexOf(Sha256Of(B("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }

  TEST_CASE("SHA-256 of a million 'a', incrementally in uneven pieces") {
    Sha256 h;
    const std::string chunk(997, 'a');
    size_t left = 1000000;
    size_t step = 1;
    while (left > 0) {
      const size_t n = std::min({left, step, chunk.size()});
      h.Update(Bytes(reinterpret_cast<const uint8_t*>(chunk.data()), n));
      left -= n;
      step = step * 3 + 1;
    }
    CHECK(HexOf(h.Final()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }

  TEST_CASE("incremental SHA-256 equals one-shot on random data and empty updates") {
    const std::string data = walstore::test::RandomString(100000, 4);
    Sha256 h;
    h.Update(Bytes());
    h.Update(B(data.substr(0, 63)));
    h.Update(B(data.substr(63, 1)));
    h.Update(B(data.substr(64)));
    h.Update(Bytes());
    CHECK(h.Final() == Sha256Of(B(data)));
  }

  TEST_CASE("HMAC-SHA256 RFC 4231 test vectors") {
    // Test case 1
    CHECK(HexOf(HmacSha256(B(std::string(20, '\x0b')), B("Hi There"))) ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    // Test case 2
    CHECK(HexOf(HmacSha256(B("Jefe"), B("what do ya want for nothing?"))) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // Test case 3
    CHECK(HexOf(HmacSha256(B(std::string(20, '\xaa')), B(std::string(50, '\xdd')))) ==
          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    // Test case 4
    CHECK(HexOf(HmacSha256(B(FromHex("0102030405060708090a0b0c0d0e0f10111213141516171819")),
                           B(std::string(50, '\xcd')))) ==
          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    // Test case 6: key larger than the block size
    CHECK(HexOf(HmacSha256(B(std::string(131, '\xaa')),
                           B("Test Using Larger Than Block-Size Key - Hash Key First"))) ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    // Test case 7
    CHECK(HexOf(HmacSha256(
              B(std::string(131, '\xaa')),
              B("This is a test using a larger than block-size key and a larger than block-size "
                "data. The key needs to be hashed before being used by the HMAC algorithm."))) ==
          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  }

  TEST_CASE("AES-256-GCM known answers (McGrew & Viega GCM spec test cases 13-16)") {
    SUBCASE("test case 13: zero key, empty plaintext") {
      AesGcm gcm(Arr32(std::string(32, '\0')));
      const std::string out = Seal(gcm, Arr12(std::string(12, '\0')), "", "");
      CHECK(LowerHex(out) == "530f8afbc74536b9a963b4f1c4cb738b");
    }
    SUBCASE("test case 14: zero key, one zero block") {
      AesGcm gcm(Arr32(std::string(32, '\0')));
      const std::string out = Seal(gcm, Arr12(std::string(12, '\0')), "", std::string(16, '\0'));
      CHECK(LowerHex(out) == "cea7403d4d606b6e074ec5d3baf39d18" "d0d1c8a799996bf0265b98b5d48ab919");
    }
    const std::string key =
        FromHex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    const auto iv = Arr12(FromHex("cafebabefacedbaddecaf888"));
    const std::string p15 = FromHex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
    SUBCASE("test case 15: 64 bytes, no AAD") {
      AesGcm gcm(Arr32(key));
      const std::string out = Seal(gcm, iv, "", p15);
      CHECK(LowerHex(out) ==
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
            "b094dac5d93471bdec1a502270e3cc6c");
      std::string pt;
      CHECK(Open(gcm, iv, "", out, &pt));
      CHECK(pt == p15);
    }
    SUBCASE("test case 16: 60 bytes with AAD") {
      AesGcm gcm(Arr32(key));
      const std::string aad = FromHex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
      const std::string p16 = p15.substr(0, 60);
      const std::string out = Seal(gcm, iv, aad, p16);
      CHECK(LowerHex(out) ==
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            "76fc6ece0f4e1768cddf8853bb2d551b");
      std::string pt;
      CHECK(Open(gcm, iv, aad, out, &pt));
      CHECK(pt == p16);
    }
  }

  TEST_CASE("AES-256-GCM Open refuses any change") {
    AesGcm gcm(Arr32(walstore::test::RandomString(32, 5)));
    std::array<uint8_t, 12> nonce{};
    nonce[11] = 7;
    const std::string aad = "header bytes";
    const std::string pt = walstore::test::RandomString(1000, 6);
    const std::string ct = Seal(gcm, nonce, aad, pt);
    REQUIRE(ct.size() == pt.size() + 16);
    std::string out;
    REQUIRE(Open(gcm, nonce, aad, ct, &out));
    CHECK(out == pt);
    // The same instance seals many chunks.
    for (int i = 0; i < 3; ++i) {
      std::array<uint8_t, 12> n2{};
      n2[0] = static_cast<uint8_t>(i);
      const std::string c2 = Seal(gcm, n2, "", pt.substr(0, 100 + i));
      REQUIRE(Open(gcm, n2, "", c2, &out));
      CHECK(out == pt.substr(0, 100 + i));
    }

    for (size_t pos : {size_t{0}, size_t{500}, pt.size() - 1}) {
      std::string bad = ct;
      bad[pos] ^= 0x01;
      CHECK_FALSE(Open(gcm, nonce, aad, bad, &out));
    }
    for (size_t pos = pt.size(); pos < ct.size(); ++pos) {  // every tag byte
      std::string bad = ct;
      bad[pos] ^= 0x80;
      CHECK_FALSE(Open(gcm, nonce, aad, bad, &out));
    }
    std::string bad_aad = aad;
    bad_aad[0] ^= 0x01;
    CHECK_FALSE(Open(gcm, nonce, bad_aad, ct, &out));
    CHECK_FALSE(Open(gcm, nonce, "", ct, &out));
    auto bad_nonce = nonce;
    bad_nonce[11] ^= 0x01;
    CHECK_FALSE(Open(gcm, bad_nonce, aad, ct, &out));
    AesGcm other(Arr32(walstore::test::RandomString(32, 99)));
    CHECK_FALSE(Open(other, nonce, aad, ct, &out));
    // Still works after failures.
    CHECK(Open(gcm, nonce, aad, ct, &out));
    CHECK(out == pt);
  }

  TEST_CASE("ParseHexKey accepts 64 hex characters") {
    const Key k = ParseHexKey(kKeyHex, "test");
    CHECK(LowerHex(std::string(k.bytes().begin(), k.bytes().end())) == kKeyHex);
    const Key k2 = ParseHexKey(std::string("  ") + kKeyHex + "\n", "test");
    CHECK(k2.bytes() == k.bytes());
    const Key k3 = ParseHexKey(std::string(kKeyHex) + "\r\n", "test");
    CHECK(k3.bytes() == k.bytes());
    std::string upper = kKeyHex;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(ParseHexKey(upper, "test").bytes() == k.bytes());
  }

  TEST_CASE("ParseHexKey refuses bad keys with kConfig and never echoes the text") {
    const std::string k = kKeyHex;
    std::string non_hex = k;
    non_hex[10] = 'g';
    std::string inner_space = k.substr(0, 32) + " " + k.substr(32);
    const std::vector<std::string> bad = {k.substr(0, 63), k + "a", non_hex, "", "   ",
                                          inner_space, k + k, "0x" + k.substr(2)};
    for (const std::string& text : bad) {
      CAPTURE(text);
      CHECK_THROWS_AS(ParseHexKey(text, "WALSTORE_ENCRYPTION_KEY"), Error);
      CHECK_CODE(ParseHexKey(text, "WALSTORE_ENCRYPTION_KEY"), ErrorCode::kConfig);
      auto err = walstore::test::ThrownError([&] { ParseHexKey(text, "WALSTORE_ENCRYPTION_KEY"); });
      REQUIRE(err.has_value());
      const std::string msg = std::string(err->what()) + "\n" + err->hint();
      CHECK(Contains(msg, "WALSTORE_ENCRYPTION_KEY"));
      // No run of 12 characters of the key text appears in the message.
      if (text.size() >= 12) {
        for (size_t i = 0; i + 12 <= text.size(); ++i) {
          if (text.substr(i, 12).find_first_not_of(' ') == std::string::npos) continue;
          CHECK_FALSE(Contains(msg, text.substr(i, 12)));
        }
      }
    }
  }

  TEST_CASE("LoadKeyFile checks the file mode") {
    walstore::test::TempDir dir;
    const std::string path = dir / "key";
    const std::string content = std::string(kKeyHex) + "\n";
    const Key expected = ParseHexKey(kKeyHex, "x");

    walstore::test::WriteFile(path, content, 0600);
    CHECK(LoadKeyFile(path).bytes() == expected.bytes());
    walstore::test::WriteFile(path, content, 0400);
    CHECK(LoadKeyFile(path).bytes() == expected.bytes());

    for (mode_t mode : {mode_t{0644}, mode_t{0640}, mode_t{0604}, mode_t{0660}, mode_t{0606}}) {
      CAPTURE(mode);
      walstore::test::WriteFile(path, content, mode);
      CHECK_CODE(LoadKeyFile(path), ErrorCode::kConfig);
      const std::string msg = walstore::test::ThrownMessage([&] { LoadKeyFile(path); });
      CHECK(Contains(msg, path));
      CHECK_FALSE(Contains(msg, std::string(kKeyHex).substr(0, 16)));
    }
    // The message names the mode (0644 or 644).
    walstore::test::WriteFile(path, content, 0644);
    CHECK(Contains(walstore::test::ThrownMessage([&] { LoadKeyFile(path); }), "644"));
  }

  TEST_CASE("LoadKeyFile refuses missing, empty and malformed files without echoing them") {
    walstore::test::TempDir dir;
    CHECK_CODE(LoadKeyFile(dir / "missing"), ErrorCode::kConfig);
    walstore::test::WriteFile(dir / "empty", "", 0600);
    CHECK_CODE(LoadKeyFile(dir / "empty"), ErrorCode::kConfig);
    const std::string short_key = std::string(kKeyHex).substr(0, 63);
    walstore::test::WriteFile(dir / "short", short_key + "\n", 0600);
    CHECK_CODE(LoadKeyFile(dir / "short"), ErrorCode::kConfig);
    const std::string msg = walstore::test::ThrownMessage([&] { LoadKeyFile(dir / "short"); });
    CHECK(Contains(msg, dir / "short"));
    CHECK_FALSE(Contains(msg, short_key.substr(0, 16)));
    walstore::test::WriteFile(dir / "two", std::string(kKeyHex) + "\n" + kKeyHex + "\n", 0600);
    CHECK_CODE(LoadKeyFile(dir / "two"), ErrorCode::kConfig);
    std::filesystem::create_directories(dir / "a_directory");
    ::chmod((dir / "a_directory").c_str(), 0700);
    CHECK_CODE(LoadKeyFile(dir / "a_directory"), ErrorCode::kConfig);
  }

  TEST_CASE("key id: stable, documented derivation, differs between keys") {
    const Key a = ParseHexKey(kKeyHex, "a");
    const Key a2 = ParseHexKey(kKeyHex, "a2");
    std::string other = kKeyHex;
    other[63] = other[63] == '0' ? '1' : '0';
    const Key b = ParseHexKey(other, "b");
    CHECK(a.id() == a2.id());
    CHECK(a.id() != b.id());
    CHECK(a.id() != 0);
    CHECK(a.IdHex().size() == 16);
    CHECK(a.IdHex().find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(a.IdHex() == KeyIdHex(a.id()));
    CHECK(a.IdHex() != b.IdHex());
    // "the first 8 bytes of SHA-256("walstore-key-id" || key)", printed in order.
    Sha256 h;
    h.Update(B("walstore-key-id"));
    h.Update(Bytes(a.bytes().data(), a.bytes().size()));
    const Sha256Digest d = h.Final();
    CHECK(a.IdHex() == ToHex(Bytes(d.data(), 8)));
    // A copy keeps the key and its id.
    Key c = a;
    CHECK(c.id() == a.id());
    CHECK(c.bytes() == a.bytes());
  }

  TEST_CASE("DeriveObjectKey: HKDF-SHA256, differs per salt and per master") {
    const Key a = ParseHexKey(kKeyHex, "a");
    std::string other = kKeyHex;
    other[0] = 'f';
    const Key b = ParseHexKey(other, "b");
    const std::string s1 = walstore::test::RandomString(32, 1);
    const std::string s2 = walstore::test::RandomString(32, 2);
    const auto k1 = DeriveObjectKey(a, B(s1));
    CHECK(DeriveObjectKey(a, B(s1)) == k1);
    CHECK(DeriveObjectKey(a, B(s2)) != k1);
    CHECK(DeriveObjectKey(b, B(s1)) != k1);
    CHECK(k1 != a.bytes());
    const std::string master(a.bytes().begin(), a.bytes().end());
    CHECK(std::string(k1.begin(), k1.end()) == Hkdf32(master, s1, "walstore object v1"));
  }

  TEST_CASE("RandomBytes") {
    std::array<uint8_t, 32> x{}, y{};
    RandomBytes(MutableBytes(x.data(), x.size()));
    RandomBytes(MutableBytes(y.data(), y.size()));
    CHECK(x != y);
    CHECK(x != std::array<uint8_t, 32>{});
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
      std::array<uint8_t, 16> z{};
      RandomBytes(MutableBytes(z.data(), z.size()));
      seen.insert(std::string(z.begin(), z.end()));
    }
    CHECK(seen.size() == 100);
  }

  TEST_CASE("the algorithms fetched once serve several threads at once") {
    // SHA-256, HKDF and AES-256-GCM share one fetched algorithm each for the
    // whole process; threads using them together must get the same answers.
    const Key key = ParseHexKey(kKeyHex, "key");
    const std::string salt = walstore::test::RandomString(32, 3);
    const auto object_key = DeriveObjectKey(key, B(salt));
    const auto nonce = Arr12(std::string(12, '\x07'));
    AesGcm reference(object_key);
    const std::string sealed = Seal(reference, nonce, "aad", "plain text");
    const Sha256Digest digest = Sha256Of(B(sealed));
    std::vector<int> ok(8, 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < ok.size(); ++t) {
      threads.emplace_back([&, t] {
        bool good = true;
        for (int i = 0; i < 50 && good; ++i) {
          AesGcm gcm(DeriveObjectKey(key, B(salt)));
          std::string plain;
          good = Seal(gcm, nonce, "aad", "plain text") == sealed &&
                 Open(gcm, nonce, "aad", sealed, &plain) && plain == "plain text" &&
                 Sha256Of(B(sealed)) == digest;
        }
        ok[t] = good ? 1 : 0;
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(ok == std::vector<int>(ok.size(), 1));
  }
}
