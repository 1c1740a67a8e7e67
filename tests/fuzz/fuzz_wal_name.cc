// WAL file names (src/lib/archive/wal_name.cc) on arbitrary text: PostgreSQL
// passes %f, and listings of a repository bring names back.  Only exact
// PostgreSQL spellings parse, a parsed name is kept verbatim, and a segment
// name is the one SegmentFileName writes for its number.
#include <walstore/wal_name.h>

#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  const auto parsed = ParseWalFileName(name);
  fuzz::Expect({ErrorCode::kInvalidName}, [&] {
    fuzz::Require(ParseWalFileNameOrThrow(name) == *parsed, "both parsers agree");
  });
  if (!parsed) return 0;
  fuzz::Require(parsed->text == name, "the name is kept verbatim");
  fuzz::Require(name.find('/') == name.npos && name.find("..") == name.npos,
                "no path separators or '..'");
  if (parsed->kind == WalFileKind::kHistory) return 0;
  fuzz::Require(name.starts_with(parsed->TimelineLogPrefix()), "timeline/log prefix");
  // With 1 GiB segments a log file holds 4 segments, with 16 MiB 256.
  for (uint64_t segment_size : {uint64_t{16} << 20, uint64_t{1} << 30}) {
    if (parsed->segment >= (uint64_t{1} << 32) / segment_size) continue;
    const std::string again =
        SegmentFileName(parsed->timeline, parsed->SegmentNumber(segment_size), segment_size);
    fuzz::Require(again == name.substr(0, 24), "SegmentFileName writes the same segment");
  }
  return 0;
}
