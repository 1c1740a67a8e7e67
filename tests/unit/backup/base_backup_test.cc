// Tests for src/lib/backup/base_backup.cc: what can be tested without a server.
#include <walstore/backup/base_backup.h>

#include <doctest/doctest.h>
#include <walstore/error.h>

#include <cstdint>

#include "test_util.h"

namespace walstore::backup {
namespace {

TEST_SUITE("backup_base_backup") {
  TEST_CASE("ParseGucBytes reads a size as SHOW prints it; anything else is kPostgres") {
    CHECK(ParseGucBytes("16MB") == 16u << 20);
    CHECK(ParseGucBytes("8kB") == 8u << 10);
    CHECK(ParseGucBytes("1GB") == uint64_t{1} << 30);
    CHECK(ParseGucBytes("2TB") == uint64_t{2} << 40);
    CHECK(ParseGucBytes("4096") == 4096u);
    CHECK(ParseGucBytes("4096B") == 4096u);
    for (const char* bad : {"", "MB", "kB", "16XB", "16 MB", "-16MB", "+16MB", "16mb",
                            "99999999999999999999999MB", "16777216TB", "0x10MB"}) {
      CAPTURE(bad);
      CHECK_CODE(ParseGucBytes(bad), ErrorCode::kPostgres);
    }
  }
}

}  // namespace
}  // namespace walstore::backup
