// Tests for include/walstore/number.h and src/lib/common/number.cc: checked number parsing.
#include <doctest/doctest.h>

#include <walstore/number.h>

#include <cstdint>
#include <string>

#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::ThrownError;

TEST_SUITE("number") {
  TEST_CASE("TryParseNumber: the whole text, in range") {
    CHECK(TryParseNumber<uint64_t>("0") == 0u);
    CHECK(TryParseNumber<uint64_t>("18446744073709551615") == UINT64_MAX);
    CHECK(TryParseNumber<uint32_t>("4294967295") == UINT32_MAX);
    CHECK(TryParseNumber<int>("-12") == -12);
    CHECK(TryParseNumber<uint8_t>("ff", 16) == 255);
    CHECK(TryParseNumber<uint8_t>("0A", 16) == 10);
    CHECK(TryParseNumber<double>("1.5") == 1.5);
    CHECK(TryParseNumber<double>("-2e3") == -2000.0);
    CHECK(TryParseNumber<double>("1732872014.123456") == 1732872014.123456);
  }

  TEST_CASE("TryParseNumber: anything else is nullopt") {
    for (const char* text : {"", " 1", "1 ", "+1", "-1", "1x", "x1", "0x10", "1.0", "1e3",
                             "18446744073709551616", "99999999999999999999999"}) {
      CAPTURE(std::string(text));
      CHECK(!TryParseNumber<uint64_t>(text));
    }
    CHECK(!TryParseNumber<uint32_t>("4294967296"));
    CHECK(!TryParseNumber<int8_t>("128"));
    CHECK(!TryParseNumber<int8_t>("-129"));
    CHECK(!TryParseNumber<uint8_t>("100", 16));
    CHECK(!TryParseNumber<uint8_t>("g0", 16));
    for (const char* text :
         {"", "inf", "-inf", "nan", "-nan", "infinity", "1.5x", " 1", "+1", "1e999", "x", "-"}) {
      CAPTURE(std::string(text));
      CHECK(!TryParseNumber<double>(text));
    }
  }

  TEST_CASE("ParseNumber throws the caller's code, naming what and the text") {
    CHECK(ParseNumber<uint32_t>("7", ErrorCode::kUsage, "--keep-full") == 7u);
    auto error = ThrownError([] { ParseNumber<uint32_t>("4294967296", ErrorCode::kPostgres,
                                                        "the timeline PostgreSQL returned"); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kPostgres);
    CHECK(std::string(error->what()) ==
          "the timeline PostgreSQL returned must be an integer from 0 to 4294967295, not "
          "\"4294967296\"");
    error = ThrownError([] { ParseNumber<uint8_t>("zz", ErrorCode::kCorrupt, "a byte", 16); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kCorrupt);
    CHECK(Contains(error->what(), "a hexadecimal integer from 0 to 255, not \"zz\""));
    error = ThrownError([] { ParseNumber<double>("soon", ErrorCode::kPostgres, "the time"); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kPostgres);
    CHECK(Contains(error->what(), "the time must be a number, not \"soon\""));
    // Long junk is shortened, not echoed whole.
    error = ThrownError(
        [] { ParseNumber<uint64_t>(std::string(1000, '7') + "x", ErrorCode::kUsage, "--n"); });
    REQUIRE(error);
    CHECK(Contains(error->what(), "not \"" + std::string(40, '7') + "...\""));
    CHECK(std::string(error->what()).size() < 150);
  }
}
