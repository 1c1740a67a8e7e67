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
    CHECK(CodeWith("/format", 3) == CodeName(ErrorCode::kUnsupportedFormat));
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

  TEST_CASE("a full backup's record stays of format 1, with its type and block map") {
    json j = GoodRecordJson();
    CHECK(j["format"] == 1);
    CHECK(j["type"] == "full");
    CHECK(j["reference"].is_null());
    CHECK_FALSE(j.contains("blockmap"));  // none recorded
    // A record of an older walctl has no type: a full backup.
    j.erase("type");
    j.erase("reference");
    j.erase("chain");
    j.erase("logical_size");
    CHECK(RecordFromJson(j, "b").type == BackupType::kFull);
  }

  TEST_CASE("a diff or incr record is of format 2 and survives the round trip") {
    BackupRecord record = RecordFromJson(GoodRecordJson(), "b");
    record.type = BackupType::kIncr;
    record.reference = "diff1";
    record.chain = {"full1", "diff1"};
    record.reference_blockmap_sha256 = std::string(64, 'b');
    record.reference_start_lsn = 0x5000028;
    record.archives[0].name = "base.delta";
    record.blockmap.name = kBlockMapName;
    record.blockmap.stored_size = 1000;
    record.file_bytes = 99999999;
    const json j = ToJson(record);
    // An older walctl knows format 1 only: it refuses the record instead of
    // restoring the delta archives as a full backup.
    CHECK(j["format"] == 2);
    CHECK(j["type"] == "incr");
    CHECK(j["logical_size"] == 99999999);
    CHECK(j["stored_size"] == record.stored_size());
    const BackupRecord back = RecordFromJson(j, "b");
    CHECK(back.type == BackupType::kIncr);
    CHECK(back.reference == "diff1");
    CHECK(back.chain == std::vector<std::string>{"full1", "diff1"});
    CHECK(back.reference_blockmap_sha256 == std::string(64, 'b'));
    CHECK(back.reference_start_lsn == 0x5000028u);
    CHECK(back.blockmap.name == kBlockMapName);
    CHECK(back.logical_size() == 99999999u);
    CHECK(ToJson(back) == j);

    auto code = [&](const std::string& field, const json& value) {
      json bad = j;
      bad[json::json_pointer(field)] = value;
      return ThrownCode([&] { RecordFromJson(bad, "b"); });
    };
    CHECK(code("/format", 1) == CodeName(ErrorCode::kCorrupt));  // an incr posing as format 1
    CHECK(code("/type", "full") == CodeName(ErrorCode::kCorrupt));
    CHECK(code("/type", "half") == CodeName(ErrorCode::kCorrupt));
    CHECK(code("/chain", json::array()) == CodeName(ErrorCode::kCorrupt));
    CHECK(code("/chain", json::array({"full1", "other"})) == CodeName(ErrorCode::kCorrupt));
    CHECK(code("/reference", 5) == CodeName(ErrorCode::kCorrupt));
    CHECK(code("/chain", "full1") == CodeName(ErrorCode::kCorrupt));
    CHECK(code("/reference_start_lsn", "nonsense") == CodeName(ErrorCode::kCorrupt));
    // A diff or incr names what it was compared with: without that it is refused.
    for (const char* field : {"reference_blockmap_sha256", "reference_start_lsn"}) {
      json bad = j;
      bad.erase(field);
      CHECK(ThrownCode([&] { RecordFromJson(bad, "b"); }) == CodeName(ErrorCode::kCorrupt));
    }
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
