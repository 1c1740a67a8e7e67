// ParseManifest (src/lib/backup/manifest.cc) on arbitrary backup_manifest
// text: refused with kCorrupt (kUnsupportedFormat for another manifest
// version) or parsed, and a parsed manifest's files can be looked up by their
// paths.
#include "backup/manifest.h"
#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Expect({ErrorCode::kCorrupt, ErrorCode::kUnsupportedFormat}, [&] {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const backup::BackupManifest manifest = backup::ParseManifest(text, "fuzz backup_manifest");
    backup::ManifestChecker checker(manifest);
    for (const auto& file : manifest.files) {
      fuzz::Require(checker.Find(file.path) != nullptr, "every listed file can be found");
    }
  });
  return 0;
}
