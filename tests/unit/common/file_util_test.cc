// Tests for src/lib/common/file_util.cc: AtomicFileWriter's temp files.
#include <doctest/doctest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::ListTree;
using walstore::test::ReadFile;
using walstore::test::TempDir;

TEST_SUITE("file_util") {
  TEST_CASE("writers of one destination each get their own hidden temp file") {
    TempDir dir;
    const std::string dest = dir.path() + "/000000010000000000000001";
    std::vector<std::unique_ptr<AtomicFileWriter>> writers;
    for (int i = 0; i < 20; ++i) {
      writers.push_back(std::make_unique<AtomicFileWriter>(dest, 0600, false));
    }
    const auto names = ListTree(dir.path());
    CHECK(names.size() == writers.size());
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == writers.size());
    for (const auto& name : names) {
      CHECK(name.rfind(".000000010000000000000001" + std::string(kTempMarker), 0) == 0);
    }
    const std::string text = "the last writer wins";
    writers.back()->Write(AsBytes(text));
    CHECK(writers.back()->Publish(true));
    writers.clear();  // the others are discarded, their temp files removed
    CHECK(ListTree(dir.path()) == std::vector<std::string>{"000000010000000000000001"});
    CHECK(ReadFile(dest) == text);
  }
}
