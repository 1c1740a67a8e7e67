// The config file parser (src/lib/config/config.cc, ParseConfigText: the
// settings of walstore.toml as LoadConfig reads them) on arbitrary text.
// Refusals are kConfig; a parsed config describes itself without throwing.
#include <walstore/config.h>

#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Expect({ErrorCode::kConfig}, [&] {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const Config config = ParseConfigText(text, "fuzz.toml");
    fuzz::Require(config.source_path == "fuzz.toml", "the source is recorded");
    config.Describe();
  });
  return 0;
}
