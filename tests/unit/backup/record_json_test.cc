// Tests for src/lib/backup/repository.cc: the backup record (backup.json).
// The malformed records below are what tests/fuzz/fuzz_backup_record.cc found
// escaping as other exceptions (walctl: "internal error"), as kUsage, or as
// undefined behaviour (a huge number converted to an integer type).
#include <doctest/doctest.h>

#include <walstore/error.h>

#include <nlohmann/json.hpp>
#include <string>

#include <walstore/backup/repository.h>
#include "test_helpers.h"
#include "test_util.h"

namespace walstore::backup {
namespace {

using nlohmann::json;
using walstore::test::CodeName;
using walstore::test::Contains;
using walstore::test::ThrownCode;
using walstore::test::ThrownMessage;

json GoodRecordJson() {
  BackupRecord record = testing::MakeBackup("20261129T102100Z", 1795861260.5, 2);
  BackupObject base;
  base.name = "base.tar";
  base.size = 23504384;
  base.stored_size = 3000000;
  BackupObject tablespace = base;
  tablespace.name = "16385.tar";
  tablespace.tablespace_oid = 16385;
  tablespace.tablespace_path = "/srv/ts1";
  record.archives = {base, tablespace};
  record.manifest.name = kManifestName;
  return ToJson(record);
}

// RecordFromJson of the good record with `field` (a JSON pointer) set to `value`.
std::string CodeWith(const std::string& field, const json& value) {
  json j = GoodRecordJson();
  j[json::json_pointer(field)] = value;
  return ThrownCode([&] { RecordFromJson(j, "42/backup/x/backup.json"); });
}

}  // namespace

TEST_SUITE("backup_record_json") {
  TEST_CASE("a record survives ToJson and RecordFromJson") {
    const json j = GoodRecordJson();
    const BackupRecord r = RecordFromJson(j, "backup.json");
    CHECK(r.label == "20261129T102100Z");
    CHECK(r.system_id == 42u);
    CHECK(r.start_lsn == 2 * testing::kSeg + 40);
    CHECK(r.start_time == 1795861260.5);
    REQUIRE(r.archives.size() == 2);
    CHECK(r.archives[1].tablespace_oid == 16385u);
    CHECK(r.archives[0].size == 23504384u);
    CHECK(ToJson(r) == j);
  }

  TEST_CASE("a document that is not a record of this format is kUnsupportedFormat") {
    CHECK(CodeWith("/format", 2) == CodeName(ErrorCode::kUnsupportedFormat));
    CHECK(CodeWith("/format", "1") == CodeName(ErrorCode::kUnsupportedFormat));
    CHECK(CodeWith("/format", nullptr) == CodeName(ErrorCode::kUnsupportedFormat));
    CHECK(ThrownCode([] { RecordFromJson(json::array({1}), "b"); }) ==
          CodeName(ErrorCode::kUnsupportedFormat));
  }

  TEST_CASE("malformed fields are kCorrupt naming the record and the field") {
    CHECK(CodeWith("/system_id", "abc") == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/system_id", "99999999999999999999999") == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/system_id", "42x") == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/start_lsn", "zz") == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/stop_lsn", 5) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/start_epoch", 1e300) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/stop_epoch", -1e300) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/stop_epoch", "now") == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/timeline", 1e300) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/timeline", -1) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/timeline", 4294967296ull) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/stop_timeline", 1.5) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/pg_version", 1e300) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/segment_size", -16777216) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/archives/0/size", -1) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/archives/1/tablespace_oid", 4294967296ull) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/manifest/stored_size", 1e300) == CodeName(ErrorCode::kCorrupt));
    CHECK(CodeWith("/archives", 7) == CodeName(ErrorCode::kCorrupt));

    json j = GoodRecordJson();
    j["start_epoch"] = 1e300;
    const std::string message = ThrownMessage([&] { RecordFromJson(j, "42/backup/x/backup.json"); });
    CHECK(Contains(message, "42/backup/x/backup.json"));
    CHECK(Contains(message, "start_epoch"));
  }

  TEST_CASE("optional fields may be missing") {
    json j = GoodRecordJson();
    j.erase("pg_version");
    j.erase("stop_timeline");
    j["archives"][0].erase("size");
    const BackupRecord r = RecordFromJson(j, "b");
    CHECK(r.pg_version == 0);
    CHECK(r.stop_timeline == r.timeline);
    CHECK(r.archives[0].size == 0);
  }
}

}  // namespace walstore::backup
