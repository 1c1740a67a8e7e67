#include "backup/manifest.h"

#include <doctest/doctest.h>
#include <walstore/crypto.h>
#include <walstore/error.h>

#include "backup/checksum.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

std::string MakeManifest(const std::string& files) {
  std::string body = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n" + files +
                     "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", "
                     "\"End-LSN\": \"0/2000100\" }\n],\n";
  return body + "\"Manifest-Checksum\": \"" + ToHex(Sha256Of(AsBytes(body))) + "\"}\n";
}

const std::string kFiles =
    "{ \"Path\": \"PG_VERSION\", \"Size\": 3, \"Last-Modified\": \"2026-11-21 10:00:00 GMT\", "
    "\"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"REPLACE\" },\n"
    "{ \"Encoded-Path\": \"626173652f31\", \"Size\": 0, \"Last-Modified\": \"2026-11-21 10:00:00 "
    "GMT\" }";

std::string Crc32cHex(const std::string& data) {
  auto c = MakeFileChecksum("CRC32C");
  c->Update(AsBytes(data));
  return c->FinalHex();
}

// A valid manifest: PG_VERSION ("15\n", CRC32C) and base/1 (no checksum).
std::string ValidManifest() {
  std::string files = kFiles;
  files.replace(files.find("REPLACE"), 7, Crc32cHex("15\n"));
  return MakeManifest(files);
}

TEST_SUITE("backup_manifest") {
  TEST_CASE("CRC-32C matches the standard check value, in PostgreSQL's byte order") {
    std::string digits = "123456789";
    CHECK(Crc32c(reinterpret_cast<const uint8_t*>(digits.data()), digits.size()) == 0xE3069283u);
    CHECK(Crc32cHex(digits) == "839206e3");
    auto c = MakeFileChecksum("crc32c");  // incremental, any split
    c->Update(AsBytes("1234"));
    c->Update(AsBytes("56789"));
    CHECK(c->FinalHex() == "839206e3");
    CHECK(MakeFileChecksum("NONE") == nullptr);
    CHECK_THROWS_AS(MakeFileChecksum("MD5"), Error);
    auto sha = MakeFileChecksum("SHA256");
    sha->Update(AsBytes("abc"));
    CHECK(sha->FinalHex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  }

  TEST_CASE("parses files, encoded paths and WAL ranges; checks the manifest checksum") {
    std::string text = ValidManifest();
    BackupManifest m = ParseManifest(text, "m");
    REQUIRE(m.files.size() == 2);
    CHECK(m.files[0].path == "PG_VERSION");
    CHECK(m.files[0].algorithm == "CRC32C");
    CHECK(m.files[1].path == "base/1");
    CHECK(m.files[1].algorithm.empty());
    REQUIRE(m.wal_ranges.size() == 1);
    CHECK(m.wal_ranges[0].start_lsn == 0x2000028);

    std::string damaged = text;
    damaged[damaged.find("\"Size\": 3") + 8] = '4';
    CHECK_THROWS_AS(ParseManifest(damaged, "m"), Error);
    CHECK_THROWS_AS(ParseManifest("not json", "m"), Error);
  }

  TEST_CASE("an Encoded-Path that is not hexadecimal is kCorrupt naming the manifest") {
    for (const char* bad : {"zz", "6g", "+1", "-1", " 6"}) {
      CAPTURE(bad);
      std::string files = kFiles;
      files.replace(files.find("626173652f31"), 12, bad);
      auto error = test::ThrownError([&] { ParseManifest(MakeManifest(files), "the manifest"); });
      REQUIRE(error);
      CHECK(error->code() == ErrorCode::kCorrupt);
      CHECK(test::Contains(error->what(), "the manifest: Encoded-Path"));
    }
  }

  TEST_CASE("members of the wrong type are kCorrupt, never another exception") {
    // Found by the manifest fuzz target: a string version threw nlohmann's type_error.
    const std::string string_version =
        "{ \"PostgreSQL-Backup-Manifest-Version\": \"0/2000028\", \"End-LSNChecksum\": \"65\"}\n";
    auto error = test::ThrownError([&] { ParseManifest(string_version, "m"); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kCorrupt);
    // Behind a valid checksum: each member of each kind with another type.
    for (const char* files : {"{ \"Path\": 7, \"Size\": 3 }", "{ \"Path\": \"a\", \"Size\": \"3\" }",
                              "{ \"Path\": \"a\", \"Size\": -3 }", "{ \"Path\": \"a\", \"Size\": 3.5 }",
                              "{ \"Encoded-Path\": [], \"Size\": 3 }",
                              "{ \"Path\": \"a\", \"Checksum-Algorithm\": 1 }",
                              "{ \"Path\": \"a\", \"Checksum\": {} }", "7", "[]"}) {
      CAPTURE(files);
      error = test::ThrownError([&] { ParseManifest(MakeManifest(files), "m"); });
      REQUIRE(error);
      CHECK(error->code() == ErrorCode::kCorrupt);
    }
    std::string body = "{ \"PostgreSQL-Backup-Manifest-Version\": 1, \"Files\": {}, ";
    body += "\"Manifest-Checksum\": \"" + ToHex(Sha256Of(AsBytes(body))) + "\"}\n";
    error = test::ThrownError([&] { ParseManifest(body, "m"); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kCorrupt);
    std::string ranges = MakeManifest("");
    ranges.replace(ranges.find("\"Timeline\": 1"), 13, "\"Timeline\": 4294967296");
    body = ranges.substr(0, ranges.find("\"Manifest-Checksum\""));
    body += "\"Manifest-Checksum\": \"" + ToHex(Sha256Of(AsBytes(body))) + "\"}\n";
    error = test::ThrownError([&] { ParseManifest(body, "m"); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kCorrupt);
  }

  TEST_CASE("checker: size, checksum, unknown and unseen files") {
    std::string text = ValidManifest();
    BackupManifest m = ParseManifest(text, "m");
    ManifestChecker checker(m);
    CHECK(checker.Find("nope") == nullptr);
    const ManifestFile* v = checker.Find("PG_VERSION");
    REQUIRE(v);
    CHECK_THROWS_AS(checker.Check(*v, 4, Crc32cHex("15\n")), Error);
    CHECK_THROWS_AS(checker.Check(*v, 3, Crc32cHex("16\n")), Error);
    checker.Check(*v, 3, Crc32cHex("15\n"));
    CHECK(checker.Unseen() == std::vector<std::string>{"base/1"});
    checker.Check(*checker.Find("base/1"), 0, "");
    CHECK(checker.Unseen().empty());
    CHECK(checker.checked() == 2);
  }
}

}  // namespace
}  // namespace walstore::backup
