// Endpoint / addressing resolution and credential lookup.
#include "storage/s3/s3_config.h"
#include "test_util.h"

#include <doctest/doctest.h>
#include <walstore/error.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

namespace walstore::s3 {
using walstore::test::MapEnv;

namespace {

// A credentials file in a fresh temporary directory.
std::string WriteCredentials(const std::string& text) {
  char pattern[] = "/tmp/walstore-s3-config-test-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  const std::string path = std::string(pattern) + "/credentials";
  std::ofstream(path) << text;
  return path;
}

const char* kCredentialsFile =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = DEFAULTKEY\n"
    "aws_secret_access_key = defaultsecret\n"
    "\n"
    "[archive]\n"
    "aws_access_key_id=ARCHIVEKEY\n"
    "aws_secret_access_key=archivesecret\n"
    "aws_session_token = archivetoken\n";

}  // namespace

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

  TEST_CASE("keys from the settings come first") {
    S3Settings settings;
    settings.access_key_id = "AKID";
    settings.secret_access_key = "secret";
    settings.session_token = "token";
    const Credentials credentials = ResolveCredentials(settings, MapEnv({}));
    CHECK(credentials.access_key_id == "AKID");
    CHECK(credentials.secret_access_key == "secret");
    CHECK(credentials.session_token == "token");
  }

  TEST_CASE("profiles of the shared credentials file") {
    const std::string file = WriteCredentials(kCredentialsFile);
    S3Settings settings;
    Credentials credentials =
        ResolveCredentials(settings, MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", file}}));
    CHECK(credentials.access_key_id == "DEFAULTKEY");
    CHECK(credentials.secret_access_key == "defaultsecret");
    CHECK(credentials.session_token.empty());

    credentials = ResolveCredentials(
        settings, MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "archive"}}));
    CHECK(credentials.access_key_id == "ARCHIVEKEY");
    CHECK(credentials.session_token == "archivetoken");

    settings.profile = "default";  // the settings' profile beats AWS_PROFILE
    credentials = ResolveCredentials(
        settings, MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "archive"}}));
    CHECK(credentials.access_key_id == "DEFAULTKEY");

    // ~/.aws/credentials when AWS_SHARED_CREDENTIALS_FILE is not set.
    const std::string home = std::filesystem::path(file).parent_path().string();
    std::filesystem::create_directory(home + "/.aws");
    std::filesystem::copy_file(file, home + "/.aws/credentials");
    settings.profile = "archive";
    credentials = ResolveCredentials(settings, MapEnv({{"HOME", home}}));
    CHECK(credentials.access_key_id == "ARCHIVEKEY");
    std::filesystem::remove_all(home);
  }

  TEST_CASE("missing credentials name everything looked for, and no secret") {
    const std::string file = WriteCredentials("[other]\naws_access_key_id = X\n");
    S3Settings settings;
    settings.access_key_id = "ONLYTHEID";  // without a secret: not usable
    try {
      ResolveCredentials(settings, MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", file}}));
      FAIL("no error");
    } catch (const Error& error) {
      const std::string message = error.what();
      CHECK(error.code() == ErrorCode::kConfig);
      CHECK(message.find("[s3]") != std::string::npos);
      CHECK(message.find("AWS_ACCESS_KEY_ID") != std::string::npos);
      CHECK(message.find("AWS_SECRET_ACCESS_KEY") != std::string::npos);
      CHECK(message.find("profile \"default\"") != std::string::npos);
      CHECK(message.find(file) != std::string::npos);
      CHECK(message.find("ONLYTHEID") == std::string::npos);
    }
    std::filesystem::remove_all(std::filesystem::path(file).parent_path());
  }
}

}  // namespace walstore::s3
