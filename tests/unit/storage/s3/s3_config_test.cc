// Endpoint / addressing resolution (credentials: credentials_test.cc).
#include "storage/s3/s3_config.h"
#include "test_util.h"

#include <doctest/doctest.h>
#include <walstore/error.h>

namespace walstore::s3 {

TEST_SUITE("s3_config") {
  TEST_CASE("path-style is chosen by itself for IP and localhost endpoints") {
    S3Settings settings;
    settings.endpoint = "http://127.0.0.1:9000";
    Location location = ResolveLocation(settings, "wal");
    CHECK(location.path_style);
    CHECK(location.BaseUrl() == "http://127.0.0.1:9000");
    CHECK(location.path_prefix == "/wal");
    CHECK(location.region == "us-east-1");

    settings.endpoint = "https://localhost:8443/";
    CHECK(ResolveLocation(settings, "wal").path_style);
    settings.endpoint = "http://[::1]:9000";
    CHECK(ResolveLocation(settings, "wal").path_style);
  }

  TEST_CASE("virtual-hosted addressing for named endpoints and AWS") {
    S3Settings settings;
    settings.region = "eu-west-1";
    Location location = ResolveLocation(settings, "wal");
    CHECK_FALSE(location.path_style);
    CHECK(location.BaseUrl() == "https://wal.s3.eu-west-1.amazonaws.com");
    CHECK(location.path_prefix.empty());

    settings.endpoint = "minio.example.com:9000";  // scheme defaults to https
    CHECK(ResolveLocation(settings, "wal").BaseUrl() == "https://wal.minio.example.com:9000");
    // A dotted bucket name does not match a wildcard certificate.
    CHECK(ResolveLocation(settings, "my.wal").path_style);
  }

  TEST_CASE("an explicit path_style wins over the automatic choice") {
    S3Settings settings;
    settings.endpoint = "http://127.0.0.1:9000";
    settings.path_style = false;
    CHECK(ResolveLocation(settings, "wal").host == "wal.127.0.0.1:9000");
    settings.endpoint = "https://s3.example.com";
    settings.path_style = true;
    CHECK(ResolveLocation(settings, "wal").host == "s3.example.com");
  }

  TEST_CASE("malformed endpoints are configuration errors") {
    S3Settings settings;
    settings.endpoint = "ftp://host";
    CHECK_THROWS_AS(ResolveLocation(settings, "wal"), Error);
    settings.endpoint = "http://host/path";
    try {
      ResolveLocation(settings, "wal");
      FAIL("no error");
    } catch (const Error& error) {
      CHECK(error.code() == ErrorCode::kConfig);
      CHECK(std::string(error.what()).find("http://host/path") != std::string::npos);
    }
  }

  TEST_CASE("TLS on AWS: virtual-hosted for plain names, path-style for dotted ones") {
    // *.s3.<region>.amazonaws.com covers one label: "wal.s3..." matches it,
    // "my.wal.s3..." does not, so a dotted bucket goes in the path.
    S3Settings settings;
    settings.region = "eu-west-1";
    const Location plain = ResolveLocation(settings, "wal-archive");
    CHECK(plain.BaseUrl() == "https://wal-archive.s3.eu-west-1.amazonaws.com");
    CHECK(plain.path_prefix.empty());
    const Location dotted = ResolveLocation(settings, "my.wal.archive");
    CHECK(dotted.path_style);
    CHECK(dotted.BaseUrl() == "https://s3.eu-west-1.amazonaws.com");
    CHECK(dotted.path_prefix == "/my.wal.archive");
  }
}

}  // namespace walstore::s3
