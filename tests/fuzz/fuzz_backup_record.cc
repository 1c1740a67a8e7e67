// The backup record (backup.json, src/lib/backup/repository.cc RecordFromJson)
// as LoadBackups reads it: JSON parsed without exceptions, then the record.
// Malformed records are kCorrupt, foreign documents kUnsupportedFormat;
// nothing else may escape (walctl would report an internal error).  A record
// that parses survives a round trip through ToJson.
#include <nlohmann/json.hpp>

#include <walstore/backup/repository.h>
#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Expect({ErrorCode::kCorrupt, ErrorCode::kUnsupportedFormat}, [&] {
    const nlohmann::json doc = nlohmann::json::parse(data, data + size, nullptr, false);
    const backup::BackupRecord record = backup::RecordFromJson(doc, "fuzz backup.json");
    const backup::BackupRecord again = backup::RecordFromJson(backup::ToJson(record), "again");
    fuzz::Require(again.label == record.label && again.start_lsn == record.start_lsn &&
                      again.stop_lsn == record.stop_lsn && again.system_id == record.system_id &&
                      again.archives.size() == record.archives.size(),
                  "ToJson/RecordFromJson round trip");
  });
  return 0;
}
