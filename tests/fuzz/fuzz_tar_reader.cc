// TarReader (src/lib/backup/tar_reader.cc) on arbitrary archive bytes: every
// entry, reading the data of every other one and skipping the rest.  A file
// entry hands out exactly its size; damage is kCorrupt.
#include <array>

#include "backup/tar_reader.h"
#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Expect({ErrorCode::kCorrupt}, [&] {
    MemoryReadStream source(Bytes(data, size));
    backup::TarReader reader(source, "fuzz.tar");
    std::array<uint8_t, 4096> buffer;
    size_t index = 0;
    while (auto entry = reader.Next()) {
      fuzz::Require(entry->path.size() <= 1 || entry->path.back() != '/',
                    "paths come without a trailing '/'");
      if (entry->type != backup::TarEntry::Type::kFile) {
        fuzz::Require(entry->size == 0, "only files have a size");
      }
      if (index++ % 2 == 1) continue;  // Next() skips what was not read
      uint64_t read = 0;
      while (size_t n = reader.Read(buffer)) read += n;
      fuzz::Require(read == entry->size, "a file yields exactly its size");
      fuzz::Require(reader.offset() <= size, "offset within the input");
    }
  });
  return 0;
}
