// Tests for src/lib/config/config.cc: TOML file, environment overrides, key loading.
// TOML names (docs/configuration.md / config.cc): repository, compression,
// encryption_key_file, log_level, system_id, chunk_size, parallel, [s3] ...
#include <doctest/doctest.h>

#include <walstore/cli.h>
#include <walstore/config.h>
#include <walstore/crypto.h>
#include <walstore/error.h>
#include <fmt/format.h>

#include <sched.h>

#include <algorithm>
#include <limits>
#include <map>
#include <string>

#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::ThrownMessage;
using walstore::test::TempDir;
using walstore::test::WriteFile;

using walstore::test::MapEnv;

namespace {

const char* kKeyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const char* kKeyHex2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

bool DefaultConfigExists() { return walstore::test::Exists(kDefaultConfigPath); }

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("defaults without file or environment") {
    if (DefaultConfigExists()) {
      MESSAGE("skipped: " << kDefaultConfigPath << " exists on this machine");
      return;
    }
    const Config c = LoadConfig(std::nullopt, MapEnv({}));
    CHECK(c.repo_url.empty());
    CHECK(c.compression.codec == Codec::kLz4);
    CHECK(c.compression.level == 0);
    CHECK(c.key_file.empty());
    CHECK_FALSE(c.key.has_value());
    CHECK(c.log_level == LogLevel::kNotice);
    CHECK_FALSE(c.system_id.has_value());
    CHECK(c.chunk_size == 1u << 20);
    CHECK(c.source_path.empty());
    CHECK(c.s3.endpoint.empty());
    CHECK(c.s3.verify_tls);
    CHECK(c.s3.access_key_id.empty());
  }

  TEST_CASE("values from the file") {
    TempDir dir;
    WriteFile(dir / "key", std::string(kKeyHex) + "\n", 0600);
    WriteFile(dir / "walstore.toml",
              "repository = \"file:///var/lib/walstore\"\n"
              "compression = \"zstd:5\"\n"
              "encryption_key_file = \"" + (dir / "key") + "\"\n"
              "log_level = \"debug\"\n"
              "system_id = 7312345678901234567\n");
    const Config c = LoadConfig(dir / "walstore.toml", MapEnv({}));
    CHECK(c.repo_url == "file:///var/lib/walstore");
    CHECK(c.compression == CompressionSpec{Codec::kZstd, 5});
    CHECK(c.key_file == dir / "key");
    REQUIRE(c.key.has_value());
    CHECK(c.key->bytes() == ParseHexKey(kKeyHex, "x").bytes());
    CHECK(c.log_level == LogLevel::kDebug);
    REQUIRE(c.system_id.has_value());
    CHECK(*c.system_id == 7312345678901234567ull);
    CHECK(c.source_path == dir / "walstore.toml");
  }

  TEST_CASE("environment overrides win over the file") {
    TempDir dir;
    WriteFile(dir / "key1", std::string(kKeyHex) + "\n", 0600);
    WriteFile(dir / "key2", std::string(kKeyHex2) + "\n", 0600);
    WriteFile(dir / "walstore.toml",
              "repository = \"file:///from/file\"\n"
              "compression = \"lz4\"\n"
              "encryption_key_file = \"" + (dir / "key1") + "\"\n"
              "log_level = \"error\"\n");
    SUBCASE("repo, compression, key file, log level") {
      const Config c = LoadConfig(dir / "walstore.toml",
                                  MapEnv({{"WALSTORE_REPO", "file:///from/env"},
                                       {"WALSTORE_COMPRESSION", "zstd:7"},
                                       {"WALSTORE_ENCRYPTION_KEY_FILE", dir / "key2"},
                                       {"WALSTORE_LOG_LEVEL", "info"},
                                       {"WALSTORE_SYSTEM_ID", "42"}}));
      CHECK(c.repo_url == "file:///from/env");
      CHECK(c.compression == CompressionSpec{Codec::kZstd, 7});
      CHECK(c.key_file == dir / "key2");
      REQUIRE(c.key.has_value());
      CHECK(c.key->bytes() == ParseHexKey(kKeyHex2, "x").bytes());
      CHECK(c.log_level == LogLevel::kInfo);
      REQUIRE(c.system_id.has_value());
      CHECK(*c.system_id == 42);
    }
    SUBCASE("key as hex in the environment") {
      const Config c = LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_ENCRYPTION_KEY", kKeyHex2}}));
      REQUIRE(c.key.has_value());
      CHECK(c.key->bytes() == ParseHexKey(kKeyHex2, "x").bytes());
    }
    SUBCASE("compression none") {
      const Config c = LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_COMPRESSION", "none"}}));
      CHECK(c.compression.codec == Codec::kNone);
    }
  }

  TEST_CASE("WALSTORE_CONFIG names the file; an explicit path beats it") {
    TempDir dir;
    WriteFile(dir / "a.toml", "repository = \"file:///a\"\n");
    WriteFile(dir / "b.toml", "repository = \"file:///b\"\n");
    const Config from_env = LoadConfig(std::nullopt, MapEnv({{"WALSTORE_CONFIG", dir / "a.toml"}}));
    CHECK(from_env.repo_url == "file:///a");
    CHECK(from_env.source_path == dir / "a.toml");
    const Config explicit_wins = LoadConfig(dir / "b.toml", MapEnv({{"WALSTORE_CONFIG", dir / "a.toml"}}));
    CHECK(explicit_wins.repo_url == "file:///b");
    CHECK(explicit_wins.source_path == dir / "b.toml");
    // A missing WALSTORE_CONFIG file is an error too, not silently ignored.
    CHECK_CODE(LoadConfig(std::nullopt, MapEnv({{"WALSTORE_CONFIG", dir / "missing.toml"}})), ErrorCode::kConfig);
  }

  TEST_CASE("a missing explicit file is kConfig naming it") {
    TempDir dir;
    const std::string path = dir / "nope.toml";
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    CHECK(Contains(walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({})); }), path));
  }

  TEST_CASE("malformed TOML is kConfig naming the file") {
    TempDir dir;
    const std::string path = dir / "bad.toml";
    WriteFile(path, "repository = \"unterminated\nlog_level = \n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    CHECK(Contains(walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({})); }), path));
  }

  TEST_CASE("unknown keys are kConfig naming the file and the setting") {
    TempDir dir;
    const std::string path = dir / "typo.toml";
    WriteFile(path, "repositry = \"file:///x\"\n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    const std::string msg = walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({})); });
    CHECK(Contains(msg, path));
    CHECK(Contains(msg, "repositry"));
    WriteFile(path, "[s3]\nregoin = \"eu-west-1\"\n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    CHECK(Contains(walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({})); }), "regoin"));
  }

  TEST_CASE("wrong value types are kConfig") {
    TempDir dir;
    const std::string path = dir / "types.toml";
    WriteFile(path, "repository = 5\n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    WriteFile(path, "[s3]\nverify_tls = \"maybe\"\n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("numbers beyond the setting's type, NaN and infinities are kConfig") {
    // Found by the config fuzz target: prefetch = 0x7ffff45ffffff reached a conversion to int
    // (UBSan: float-cast-overflow).
    for (const char* text :
         {"prefetch = 0x7ffff45ffffff\n", "prefetch = nan\n", "prefetch = inf\n", "prefetch = -inf\n",
          "chunk_size = 1e300\n", "[s3]\nmultipart_threshold = 18446744073709551616.0\n",
          "[s3]\nconnect_timeout_seconds = 1e30\n", "[s3]\npart_size = nan\n",
          "system_id = 6E31\n", "system_id = 7.5\n"}) {
      CAPTURE(text);
      CHECK_CODE(ParseConfigText(text, "numbers.toml"), ErrorCode::kConfig);
    }
    CHECK(ParseConfigText("[s3]\nmultipart_threshold = 18446744073709549568.0\n", "n.toml")
              .s3.multipart_threshold == 18446744073709549568ull);  // the largest double below 2^64
  }

  TEST_CASE("bad compression in the file is kConfig naming the file and the setting") {
    TempDir dir;
    const std::string path = dir / "c.toml";
    WriteFile(path, "compression = \"gzip\"\n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    const std::string msg = walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({})); });
    CAPTURE(msg);
    CHECK(Contains(msg, "gzip"));
    CHECK(Contains(msg, path));
    CHECK(Contains(msg, "compression"));
  }

  TEST_CASE("bad log level in the file is kConfig naming the file") {
    TempDir dir;
    const std::string path = dir / "l.toml";
    WriteFile(path, "log_level = \"loud\"\n");
    CHECK_CODE(LoadConfig(path, MapEnv({})), ErrorCode::kConfig);
    const std::string msg = walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({})); });
    CAPTURE(msg);
    CHECK(Contains(msg, "loud"));
    CHECK(Contains(msg, path));
  }

  TEST_CASE("bad environment values are kConfig naming the variable") {
    TempDir dir;
    for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
             {"WALSTORE_COMPRESSION", "zstd:abc"},
             {"WALSTORE_COMPRESSION", "gzip"},
             {"WALSTORE_LOG_LEVEL", "loud"},
             {"WALSTORE_SYSTEM_ID", "abc"}}) {
      CAPTURE(var);
      CAPTURE(value);
      const std::string path = dir / "empty.toml";
      WriteFile(path, "");
      CHECK_CODE(LoadConfig(path, MapEnv({{var, value}})), ErrorCode::kConfig);
      const std::string msg = walstore::test::ThrownMessage([&] { LoadConfig(path, MapEnv({{var, value}})); });
      CAPTURE(msg);
      CHECK(Contains(msg, var));
    }
  }

  TEST_CASE("a bad key is kConfig and never echoed") {
    TempDir dir;
    WriteFile(dir / "empty.toml", "");
    const std::string bad = std::string(kKeyHex).substr(0, 63);
    CHECK_CODE(LoadConfig(dir / "empty.toml", MapEnv({{"WALSTORE_ENCRYPTION_KEY", bad}})), ErrorCode::kConfig);
    const std::string msg = walstore::test::ThrownMessage(
        [&] { LoadConfig(dir / "empty.toml", MapEnv({{"WALSTORE_ENCRYPTION_KEY", bad}})); });
    CHECK(Contains(msg, "WALSTORE_ENCRYPTION_KEY"));
    CHECK_FALSE(Contains(msg, bad.substr(0, 16)));
    // A key file readable by others.
    WriteFile(dir / "open_key", std::string(kKeyHex) + "\n", 0644);
    CHECK_CODE(LoadConfig(dir / "empty.toml", MapEnv({{"WALSTORE_ENCRYPTION_KEY_FILE", dir / "open_key"}})),
               ErrorCode::kConfig);
    // A missing key file.
    CHECK_CODE(LoadConfig(dir / "empty.toml", MapEnv({{"WALSTORE_ENCRYPTION_KEY_FILE", dir / "none"}})),
               ErrorCode::kConfig);
  }

  TEST_CASE("[s3] table and AWS_* environment fill Config::s3") {
    TempDir dir;
    const std::string path = dir / "s3.toml";
    WriteFile(path,
              "repository = \"s3://bucket/prefix\"\n"
              "[s3]\n"
              "endpoint = \"http://127.0.0.1:9000\"\n"
              "region = \"eu-west-1\"\n"
              "path_style = true\n"
              "storage_class = \"STANDARD_IA\"\n"
              "verify_tls = false\n"
              "ca_bundle = \"/etc/ca/private.pem\"\n"
              "ca_path = \"/etc/ca/hashed\"\n"
              "access_key_id = \"AKIAFILEFILEFILE\"\n"
              "secret_access_key = \"file-secret-0123456789abcdef\"\n");
    const Config f = LoadConfig(path, MapEnv({}));
    CHECK(f.repo_url == "s3://bucket/prefix");
    CHECK(f.s3.endpoint == "http://127.0.0.1:9000");
    CHECK(f.s3.region == "eu-west-1");
    REQUIRE(f.s3.path_style.has_value());
    CHECK(*f.s3.path_style);
    CHECK(f.s3.storage_class == "STANDARD_IA");
    CHECK_FALSE(f.s3.verify_tls);
    CHECK(f.s3.ca_bundle == "/etc/ca/private.pem");
    CHECK(f.s3.ca_path == "/etc/ca/hashed");
    CHECK(f.s3.access_key_id == "AKIAFILEFILEFILE");
    CHECK(f.s3.secret_access_key == "file-secret-0123456789abcdef");
    CHECK_FALSE(Contains(f.Describe(), "file-secret-0123456789abcdef"));

    const Config e = LoadConfig(path, MapEnv({{"AWS_ACCESS_KEY_ID", "AKIAENVENVENV"},
                                           {"AWS_SECRET_ACCESS_KEY", "env-secret-abcdef0123456789"},
                                           {"AWS_SESSION_TOKEN", "env-token-xyz"},
                                           {"AWS_REGION", "us-west-2"},
                                           {"AWS_ENDPOINT_URL", "http://localhost:4568"}}));
    CHECK(e.s3.access_key_id == "AKIAENVENVENV");
    CHECK(e.s3.secret_access_key == "env-secret-abcdef0123456789");
    CHECK(e.s3.session_token == "env-token-xyz");
    CHECK(e.s3.region == "us-west-2");
    CHECK(e.s3.endpoint == "http://localhost:4568");
    CHECK(e.s3.ca_path == "/etc/ca/hashed");
    const Config ca = LoadConfig(path, MapEnv({{"WALSTORE_S3_CA_PATH", "/srv/ca"},
                                            {"AWS_CA_BUNDLE", "/aws/bundle.pem"}}));
    CHECK(ca.s3.ca_path == "/srv/ca");
    CHECK(ca.s3.ca_bundle == "/aws/bundle.pem");
    CHECK_FALSE(Contains(e.Describe(), "env-secret-abcdef0123456789"));
    CHECK_FALSE(Contains(e.Describe(), "env-token-xyz"));
  }

  TEST_CASE("Describe never contains key material") {
    TempDir dir;
    WriteFile(dir / "e.toml", "repository = \"file:///r\"\ncompression = \"zstd:3\"\n");
    const Config c = LoadConfig(dir / "e.toml", MapEnv({{"WALSTORE_ENCRYPTION_KEY", kKeyHex}}));
    REQUIRE(c.key.has_value());
    const std::string d = c.Describe();
    CHECK(Contains(d, "file:///r"));
    CHECK(Contains(d, "zstd"));
    CHECK(Contains(d, c.key->IdHex()));
    CHECK_FALSE(Contains(d, kKeyHex));
    CHECK_FALSE(Contains(d, std::string(kKeyHex).substr(0, 16)));
    std::string upper = kKeyHex;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    CHECK_FALSE(Contains(d, upper.substr(0, 16)));
  }

  TEST_CASE("command-line overrides beat the environment and the file") {
    TempDir dir;
    WriteFile(dir / "k1", std::string(kKeyHex) + "\n", 0600);
    WriteFile(dir / "k2", std::string(kKeyHex2) + "\n", 0600);
    WriteFile(dir / "f.toml", "repository = \"file:///file\"\ncompression = \"lz4\"\nlog_level = \"error\"\n");
    ConfigOverrides o;
    o.config_path = dir / "f.toml";
    o.repo_url = "file:///cli";
    o.compression = "zstd:12";
    o.key_file = dir / "k2";
    o.log_level = LogLevel::kDebug;
    o.system_id = 99;
    const Config c = LoadConfig(o, MapEnv({{"WALSTORE_REPO", "file:///env"},
                                        {"WALSTORE_COMPRESSION", "none"},
                                        {"WALSTORE_ENCRYPTION_KEY_FILE", dir / "k1"},
                                        {"WALSTORE_LOG_LEVEL", "warning"},
                                        {"WALSTORE_SYSTEM_ID", "42"}}));
    CHECK(c.repo_url == "file:///cli");
    CHECK(c.compression == CompressionSpec{Codec::kZstd, 12});
    CHECK(c.key_file == dir / "k2");
    REQUIRE(c.key.has_value());
    CHECK(c.key->bytes() == ParseHexKey(kKeyHex2, "x").bytes());
    CHECK(c.log_level == LogLevel::kDebug);
    CHECK(c.system_id == std::optional<uint64_t>(99));
    // A bad --compression is kConfig too.
    ConfigOverrides bad;
    bad.config_path = dir / "f.toml";
    bad.compression = "gzip";
    CHECK_CODE(LoadConfig(bad, MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("chunk_size from the file, and out-of-range values refused") {
    TempDir dir;
    WriteFile(dir / "c.toml", "chunk_size = 65536\n");
    CHECK(LoadConfig(dir / "c.toml", MapEnv({})).chunk_size == 65536u);
    WriteFile(dir / "c.toml", "chunk_size = 0\n");
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({})), ErrorCode::kConfig);
    WriteFile(dir / "c.toml", "chunk_size = 33554432\n");
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({})), ErrorCode::kConfig);
    WriteFile(dir / "c.toml", "chunk_size = -1\n");
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("prefetch and push_ahead: file, environment, command line, range") {
    TempDir dir;
    WriteFile(dir / "c.toml", "prefetch = 4\npush_ahead = 5\n");
    const Config defaults = LoadConfig(std::nullopt, MapEnv({}));
    CHECK(defaults.prefetch == kDefaultPrefetch);
    CHECK(defaults.push_ahead == kDefaultPushAhead);
    const Config from_file = LoadConfig(dir / "c.toml", MapEnv({}));
    CHECK(from_file.prefetch == 4);
    CHECK(from_file.push_ahead == 5);
    const Config from_env = LoadConfig(
        dir / "c.toml", MapEnv({{"WALSTORE_PREFETCH", "0"}, {"WALSTORE_PUSH_AHEAD", "0"}}));
    CHECK(from_env.prefetch == 0);
    CHECK(from_env.push_ahead == 0);
    ConfigOverrides o;
    o.config_path = dir / "c.toml";
    o.push_ahead = 64;
    CHECK(LoadConfig(o, MapEnv({{"WALSTORE_PUSH_AHEAD", "2"}})).push_ahead == 64);
    o.push_ahead = 65;
    CHECK_CODE(LoadConfig(o, MapEnv({})), ErrorCode::kConfig);
    o.push_ahead = -1;
    CHECK_CODE(LoadConfig(o, MapEnv({})), ErrorCode::kConfig);
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PUSH_AHEAD", "99"}})),
               ErrorCode::kConfig);
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PUSH_AHEAD", "many"}})),
               ErrorCode::kConfig);
    WriteFile(dir / "c.toml", "push_ahead = 100\n");
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("parallel: file, environment, command line; any count is accepted as before") {
    TempDir dir;
    WriteFile(dir / "c.toml", "parallel = 4\n");
    CHECK(LoadConfig(std::nullopt, MapEnv({})).parallel == 0);  // 0: the default
    CHECK(LoadConfig(dir / "c.toml", MapEnv({})).parallel == 4);
    CHECK(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PARALLEL", "3"}})).parallel == 3);
    ConfigOverrides o;
    o.config_path = dir / "c.toml";
    o.parallel = kMaxParallel;
    CHECK(LoadConfig(o, MapEnv({{"WALSTORE_PARALLEL", "2"}})).parallel == kMaxParallel);
    // Earlier releases accepted any non-negative parallel, and walpush and
    // walfetch load the config too: a large one must not stop archiving or
    // recovery.  WorkerThreads lowers it where threads are started.
    WriteFile(dir / "c.toml", "parallel = 100\n");
    CHECK(LoadConfig(dir / "c.toml", MapEnv({})).parallel == 100);
    CHECK(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PARALLEL", "65"}})).parallel == 65);
    CHECK(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PARALLEL", "99999999999"}})).parallel ==
          std::numeric_limits<int>::max());
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PARALLEL", "99999999999999999999"}})),
               ErrorCode::kConfig);
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_PARALLEL", "many"}})),
               ErrorCode::kConfig);
    WriteFile(dir / "c.toml", "parallel = -2\n");
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("parallel above the limit: one WARNING from LoadProgramConfig, none from LoadConfig") {
    TempDir dir;
    WriteFile(dir / "c.toml", "parallel = 100\n");
    const auto stderr_of = [](const std::function<void()>& run) {
      walstore::test::CaptureStderr capture;
      run();
      return capture.Text();
    };
    const std::string warning =
        fmt::format("WARNING:  parallel = 100 is more than {} threads: using {}", kMaxParallel,
                    kMaxParallel);
    ConfigOverrides o;
    o.config_path = dir / "c.toml";
    // What walpush, walfetch and walctl each call once per run.
    const std::string text = stderr_of([&] { LoadProgramConfig(o, MapEnv({})); });
    CHECK(text.find(warning) != std::string::npos);
    CHECK(text.find(warning) == text.rfind(warning));  // once
    // A second read of the file (walctl restore's restore_command) says nothing.
    CHECK(stderr_of([&] { CHECK(LoadConfig(dir / "c.toml", MapEnv({})).parallel == 100); })
              .empty());
    WriteFile(dir / "c.toml", "parallel = 64\n");
    CHECK(stderr_of([&] { LoadProgramConfig(o, MapEnv({})); }).find("WARNING") ==
          std::string::npos);
  }

  TEST_CASE("parallel becomes threads: lowered to kMaxParallel, default capped by usable CPUs") {
    CHECK(WorkerThreads(3, kDefaultEncodeThreadsCap) == 3);
    CHECK(WorkerThreads(kMaxParallel, 1) == kMaxParallel);
    CHECK(WorkerThreads(100, kDefaultEncodeThreadsCap) == kMaxParallel);
    CHECK(WorkerThreads(std::numeric_limits<int>::max(), 1) == kMaxParallel);
    const int cpus = UsableCpus();
    CHECK(cpus >= 1);
    CHECK(WorkerThreads(0, 1) == 1);
    CHECK(WorkerThreads(0, kDefaultEncodeThreadsCap) == std::min(cpus, kDefaultEncodeThreadsCap));
    CHECK(WorkerThreads(0, kDefaultWalctlJobsCap) == std::min(cpus, kDefaultWalctlJobsCap));
    // sched_getaffinity, not the online cores: pinned to one CPU, one thread.
    cpu_set_t saved;
    REQUIRE(sched_getaffinity(0, sizeof(saved), &saved) == 0);
    int first = 0;
    while (!CPU_ISSET(first, &saved)) ++first;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);
    const int pinned = UsableCpus();
    const int pinned_default = WorkerThreads(0, kDefaultWalctlJobsCap);
    REQUIRE(sched_setaffinity(0, sizeof(saved), &saved) == 0);
    CHECK(pinned == 1);
    CHECK(pinned_default == 1);
  }

  TEST_CASE("cgroup v2 cpu.max: the quota in CPUs, rounded up; no limit for max or bad text") {
    CHECK(CpuMaxLimit("max 100000\n") == std::nullopt);
    CHECK(CpuMaxLimit("100000 100000\n") == 1);
    CHECK(CpuMaxLimit("150000 100000\n") == 2);
    CHECK(CpuMaxLimit("200000 100000") == 2);
    CHECK(CpuMaxLimit("1000 100000\n") == 1);  // a tenth of a CPU: still one thread
    CHECK(CpuMaxLimit("100000000 1000\n") == kMaxParallel);
    CHECK(CpuMaxLimit("") == std::nullopt);
    CHECK(CpuMaxLimit("100000") == std::nullopt);
    CHECK(CpuMaxLimit("100000 0") == std::nullopt);
    CHECK(CpuMaxLimit("-5 100000") == std::nullopt);
  }

  TEST_CASE("walctl backup --parallel keeps its earlier range; --jobs is 1..64") {
    const auto parse = [](std::vector<std::string> args, bool old_name) {
      CLI::App app;
      ConfigOverrides o;
      AddJobsOption(app, o, old_name);
      std::reverse(args.begin(), args.end());
      app.parse(args);
      return o.parallel;
    };
    CHECK(parse({"--parallel", "0"}, true) == std::nullopt);  // 0: the default
    CHECK(parse({"--parallel", "-1"}, true) == std::nullopt);
    CHECK(parse({"--parallel", "100"}, true) == 100);        // lowered to 64 where used
    CHECK(parse({"--parallel", "2"}, true) == 2);
    CHECK(parse({"-j", "3"}, true) == 3);
    CHECK(parse({"--jobs", "64"}, false) == 64);
    CHECK_THROWS_AS(parse({"--jobs", "0"}, false), CLI::ValidationError);
    CHECK_THROWS_AS(parse({"--jobs", "65"}, false), CLI::ValidationError);
    CHECK_THROWS_AS(parse({"--parallel", "2"}, false), CLI::ExtrasError);
  }

  TEST_CASE("allow_plaintext_objects: off by default, file and environment") {
    TempDir dir;
    WriteFile(dir / "c.toml", "allow_plaintext_objects = true\n");
    CHECK_FALSE(LoadConfig(std::nullopt, MapEnv({})).allow_plaintext_objects);
    CHECK(LoadConfig(dir / "c.toml", MapEnv({})).allow_plaintext_objects);
    CHECK_FALSE(LoadConfig(dir / "c.toml", MapEnv({{"WALSTORE_ALLOW_PLAINTEXT_OBJECTS", "0"}}))
                    .allow_plaintext_objects);
    CHECK(LoadConfig(std::nullopt, MapEnv({{"WALSTORE_ALLOW_PLAINTEXT_OBJECTS", "1"}}))
              .allow_plaintext_objects);
    CHECK_CODE(LoadConfig(std::nullopt, MapEnv({{"WALSTORE_ALLOW_PLAINTEXT_OBJECTS", "maybe"}})),
               ErrorCode::kConfig);
    WriteFile(dir / "c.toml", "allow_plaintext_objects = \"yes\"\n");
    CHECK_CODE(LoadConfig(dir / "c.toml", MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("ParseConfigText reads the settings of text as a file would be read") {
    // The in-memory entry point of the config fuzz target (tests/fuzz/fuzz_config.cc).
    const Config c = ParseConfigText(
        "repository = \"file:///r\"\ncompression = \"zstd:9\"\nsystem_id = \"42\"\n"
        "encryption_old_key_files = [\"/nonexistent/k1\"]\n[s3]\nregion = \"eu-west-1\"\n",
        "text.toml");
    CHECK(c.repo_url == "file:///r");
    CHECK(c.compression == CompressionSpec{Codec::kZstd, 9});
    CHECK(c.system_id == 42u);
    CHECK(c.s3.region == "eu-west-1");
    CHECK(c.source_path == "text.toml");
    // Key files are only named, not loaded: that is LoadConfig's part.
    CHECK(c.old_key_files == std::vector<std::string>{"/nonexistent/k1"});
    CHECK(c.old_keys.empty());
    try {
      ParseConfigText("repository = \"file:///r\"\nrepositry = 1\n", "text.toml");
      FAIL("an unknown setting was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kConfig);
      CHECK(Contains(e.what(), "text.toml"));
      CHECK(Contains(e.what(), "repositry"));
    }
    try {
      ParseConfigText("repository = [", "broken.toml");
      FAIL("malformed TOML was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kConfig);
      CHECK(Contains(e.what(), "broken.toml:1:"));
    }
  }

  TEST_CASE("text that toml++ up to 3.4.0 mishandles is a parse error, or parses when legal") {
    // Found by tests/fuzz/fuzz_config.cc (docs/testing.md, "Fuzzing", findings 5, 6 and 8); fixed
    // by the patched toml++ in third_party/tomlplusplus.  The sanitizer build aborts on the
    // undefined behaviour, a build with assertions on the broken preconditions.
    // A header key that cannot start a key broke parse_key()'s precondition (toml++ #294).
    // Non-ASCII outside strings reached __builtin_unreachable() in the Unicode whitespace
    // table (toml++ #190, #295): U+FEBF, U+032A, U+03EA, U+2000 (which toml++ knows as
    // whitespace that TOML does not allow), as a key, after a value and after a header.
    for (const std::string text :
         {"[[[1]]]", "[&", "[[=", "[[[]]", "a = 1\n[[[a]]]\n", "\xEF\xBA\xBF", "\xCC\xAA",
          "\xCF\xAA", "\xE2\x80\x80", "repository = \"file:///r\" \xEF\xBA\xBF\n",
          "[s3] \xCC\xAA\n", "\xEF\xBA\xBF = 1\n",
          // A value terminator where a value must follow broke parse_value()'s precondition
          // (found in 3.4.0 by the fuzzer; third_party/tomlplusplus patch 0003).
          "files = [\"/etc/walstore/key.1\", }\"x\"]\n", "a = [1, }]\n", "a = [}\n"}) {
      CAPTURE(text);
      try {
        ParseConfigText(text, "broken.toml");
        FAIL("malformed TOML was accepted");
      } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::kConfig);
        // The error names the file and the line of the bad text (the last line with text).
        const size_t line = std::count(text.begin(), text.end() - 1, '\n') + 1;
        CHECK(Contains(e.what(), fmt::format("broken.toml:{}:", line)));
      }
    }
    // Non-ASCII is legal in comments and strings, and is kept as written.
    const Config c = ParseConfigText(
        "# \xEF\xBA\xBF caf\xC3\xA9 \xE2\x80\x80\n"
        "repository = \"file:///r/\xEF\xBA\xBF/caf\xC3\xA9\"  # \xCC\xAA\n"
        "[s3]  # \xCF\xAA\nregion = \"\xE2\x80\x80x\"\n",
        "text.toml");
    CHECK(c.repo_url == "file:///r/\xEF\xBA\xBF/caf\xC3\xA9");
    CHECK(c.s3.region == "\xE2\x80\x80x");
  }

  TEST_CASE("ParseLogLevel") {
    CHECK(ParseLogLevel("error") == LogLevel::kError);
    CHECK(ParseLogLevel("warning") == LogLevel::kWarning);
    CHECK(ParseLogLevel("notice") == LogLevel::kNotice);
    CHECK(ParseLogLevel("info") == LogLevel::kInfo);
    CHECK(ParseLogLevel("debug") == LogLevel::kDebug);
    CHECK_CODE(ParseLogLevel("verbose"), ErrorCode::kConfig);
    CHECK_CODE(ParseLogLevel(""), ErrorCode::kConfig);
  }

  TEST_CASE("the single-repository form gives one repository, a copy of the settings") {
    TempDir dir;
    WriteFile(dir / "walstore.toml", "repository = \"file:///one\"\ncompression = \"zstd:3\"\n");
    const Config c = LoadConfig(dir / "walstore.toml", MapEnv({}));
    CHECK(c.repo_url == "file:///one");
    REQUIRE(c.repositories.size() == 1);
    CHECK(c.repositories[0].repo_url == "file:///one");
    CHECK(c.repositories[0].compression == CompressionSpec{Codec::kZstd, 3});
    CHECK_FALSE(c.repositories[0].best_effort);
    CHECK(c.repositories[0].repositories.empty());
    CHECK(RepositoryLabel(c, 0) == "file:///one");
    const Config env = LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_REPO", "file:///env"}}));
    REQUIRE(env.repositories.size() == 1);
    CHECK(env.repositories[0].repo_url == "file:///env");
    WriteFile(dir / "empty.toml", "compression = \"none\"\n");
    CHECK(LoadConfig(dir / "empty.toml", MapEnv({})).repositories.empty());
  }

  TEST_CASE("[[repository]] tables: in order, top-level settings are the defaults") {
    TempDir dir;
    WriteFile(dir / "key1", std::string(kKeyHex) + "\n", 0600);
    WriteFile(dir / "key2", std::string(kKeyHex2) + "\n", 0600);
    WriteFile(dir / "walstore.toml",
              "compression = \"zstd:5\"\n"
              "encryption_key_file = \"" + (dir / "key1") + "\"\n"
              "[s3]\nregion = \"eu-west-1\"\nstorage_class = \"STANDARD_IA\"\n"
              "[[repository]]\nurl = \"file:///local\"\n"
              "[[repository]]\nurl = \"s3://offsite/wal\"\ncompression = \"lz4\"\n"
              "encryption_key_file = \"" + (dir / "key2") + "\"\nbest_effort = true\n"
              "[repository.s3]\nregion = \"us-east-2\"\nendpoint = \"http://127.0.0.1:9\"\n"
              "[[repository]]\nurl = \"file:///plain\"\nencryption_key_file = \"\"\n");
    const Config c = LoadConfig(dir / "walstore.toml",
                                MapEnv({{"AWS_REGION", "ap-south-1"}, {"AWS_ACCESS_KEY_ID", "AK"}}));
    CHECK(c.repo_url.empty());  // code that ignores `repositories` finds none
    REQUIRE(c.repositories.size() == 3);
    const Config& local = c.repositories[0];
    CHECK(local.repo_url == "file:///local");
    CHECK(local.compression == CompressionSpec{Codec::kZstd, 5});
    REQUIRE(local.key.has_value());
    CHECK(local.key->bytes() == ParseHexKey(kKeyHex, "x").bytes());
    CHECK_FALSE(local.best_effort);
    CHECK(local.s3.region == "ap-south-1");  // the environment changed the default
    const Config& offsite = c.repositories[1];
    CHECK(offsite.repo_url == "s3://offsite/wal");
    CHECK(offsite.compression == CompressionSpec{Codec::kLz4, 0});
    REQUIRE(offsite.key.has_value());
    CHECK(offsite.key->bytes() == ParseHexKey(kKeyHex2, "x").bytes());
    CHECK(offsite.best_effort);
    CHECK(offsite.s3.region == "us-east-2");  // the table's own setting wins
    CHECK(offsite.s3.endpoint == "http://127.0.0.1:9");
    CHECK(offsite.s3.storage_class == "STANDARD_IA");  // inherited from [s3]
    CHECK(offsite.s3.access_key_id == "AK");
    CHECK_FALSE(c.repositories[2].key.has_value());
    CHECK(RepositoryLabel(c, 1) == "repository 2 (s3://offsite/wal)");
    CHECK(Contains(c.Describe(), "repository 2 (s3://offsite/wal)"));
    CHECK(Contains(c.Describe(), "best-effort"));
  }

  TEST_CASE("--repo N / WALSTORE_REPO=N keep one table; a URL replaces them") {
    TempDir dir;
    WriteFile(dir / "walstore.toml",
              "compression = \"zstd\"\n"
              "[[repository]]\nurl = \"file:///a\"\n"
              "[[repository]]\nurl = \"file:///b\"\ncompression = \"none\"\nbest_effort = true\n");
    ConfigOverrides overrides;
    overrides.config_path = dir / "walstore.toml";
    overrides.repo_url = "2";
    Config c = LoadConfig(overrides, MapEnv({}));
    REQUIRE(c.repositories.size() == 1);
    CHECK(c.repositories[0].repo_url == "file:///b");
    CHECK(c.repositories[0].compression.codec == Codec::kNone);
    CHECK_FALSE(c.repositories[0].best_effort);  // chosen alone, it is the one that counts
    c = LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_REPO", "1"}}));
    REQUIRE(c.repositories.size() == 1);
    CHECK(c.repositories[0].repo_url == "file:///a");
    c = LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_REPO", "file:///other"}}));
    REQUIRE(c.repositories.size() == 1);
    CHECK(c.repositories[0].repo_url == "file:///other");
    CHECK(c.repositories[0].compression.codec == Codec::kZstd);
    overrides.repo_url = "3";
    CHECK_CODE(LoadConfig(overrides, MapEnv({})), ErrorCode::kConfig);
    overrides.repo_url = "0";
    CHECK_CODE(LoadConfig(overrides, MapEnv({})), ErrorCode::kConfig);
  }

  TEST_CASE("--repo all / WALSTORE_REPO=all: every repository for walctl backup, a config "
            "error naming it anywhere else") {
    TempDir dir;
    WriteFile(dir / "walstore.toml",
              "[[repository]]\nurl = \"file:///a\"\n[[repository]]\nurl = \"file:///b\"\n");
    ConfigOverrides overrides;
    overrides.config_path = dir / "walstore.toml";
    overrides.repo_url = "all";
    for (const bool from_env : {false, true}) {
      ConfigOverrides o = overrides;
      if (from_env) o.repo_url.reset();
      const auto env = from_env ? MapEnv({{"WALSTORE_REPO", "all"}}) : MapEnv({});
      try {
        LoadConfig(o, env);
        FAIL("accepted");
      } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::kConfig);
        CHECK(Contains(e.what(), "only for walctl backup"));
      }
      o.repo_all_allowed = true;
      const Config c = LoadConfig(o, env);
      CHECK(c.every_repository);
      REQUIRE(c.repositories.size() == 2);
      CHECK(c.repositories[1].repo_url == "file:///b");
    }
  }

  TEST_CASE("--repo URL / WALSTORE_REPO=URL naming a table selects it, with its own settings") {
    TempDir dir;
    WriteFile(dir / "key1", std::string(kKeyHex) + "\n", 0600);
    WriteFile(dir / "key2", std::string(kKeyHex2) + "\n", 0600);
    WriteFile(dir / "walstore.toml",
              "compression = \"zstd\"\n"
              "encryption_key_file = \"" + (dir / "key1") + "\"\n"
              "[[repository]]\nurl = \"/var/lib/walstore\"\n"
              "[[repository]]\nurl = \"s3://pg-archive-eu/prod\"\ncompression = \"none\"\n"
              "encryption_key_file = \"" + (dir / "key2") + "\"\nbest_effort = true\n"
              "[repository.s3]\nendpoint = \"http://minio:9000\"\n");
    for (const char* url : {"s3://pg-archive-eu/prod", "s3://pg-archive-eu//prod/"}) {
      CAPTURE(std::string(url));
      walstore::test::CaptureStderr capture;
      ConfigOverrides overrides;
      overrides.config_path = dir / "walstore.toml";
      overrides.repo_url = url;
      const Config c = LoadConfig(overrides, MapEnv({}));
      REQUIRE(c.repositories.size() == 1);
      const Config& r = c.repositories[0];
      CHECK(r.repo_url == "s3://pg-archive-eu/prod");
      CHECK(r.compression.codec == Codec::kNone);
      REQUIRE(r.key.has_value());
      CHECK(r.key->bytes() == ParseHexKey(kKeyHex2, "x").bytes());
      CHECK(r.s3.endpoint == "http://minio:9000");
      CHECK_FALSE(r.best_effort);
      CHECK(capture.Text().empty());
    }
    const Config env =
        LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_REPO", "file:///var/lib/walstore/"}}));
    REQUIRE(env.repositories.size() == 1);
    CHECK(env.repositories[0].repo_url == "/var/lib/walstore");
    CHECK(env.repositories[0].compression.codec == Codec::kZstd);
    // A URL that is none of the tables: used alone, loudly.
    walstore::test::CaptureStderr capture;
    const Config other =
        LoadConfig(dir / "walstore.toml", MapEnv({{"WALSTORE_REPO", "file:///elsewhere"}}));
    REQUIRE(other.repositories.size() == 1);
    CHECK(other.repositories[0].repo_url == "file:///elsewhere");
    const std::string text = capture.Text();
    CHECK(Contains(text, "WARNING:"));
    CHECK(Contains(text, "\"file:///elsewhere\" is none of the configured [[repository]] tables"));
    CHECK(Contains(text, "/var/lib/walstore, s3://pg-archive-eu/prod"));
  }

  TEST_CASE("the same repository spelt twice is a duplicate") {
    auto accepted = [](const std::string& a, const std::string& b) {
      try {
        ParseConfigText("[[repository]]\nurl = \"" + a + "\"\n[[repository]]\nurl = \"" + b +
                            "\"\n",
                        "t.toml");
        return true;
      } catch (const Error& e) {
        CHECK(Contains(e.what(), "repository[2].url"));
        return false;
      }
    };
    CHECK_FALSE(accepted("/var/lib/walstore", "file:///var/lib/walstore"));
    CHECK_FALSE(accepted("file:///var/lib/walstore", "file:///var/lib//walstore/"));
    CHECK_FALSE(accepted("file:///a/./b", "/a/b"));
    CHECK_FALSE(accepted("s3://b/p", "s3://b//p/"));
    CHECK(accepted("s3://b/p", "s3://b/q"));
    CHECK(accepted("file:///a/b", "s3://a/b"));
  }

  TEST_CASE("[[repository]] tables are validated, naming the table and setting") {
    auto message = [](const std::string& text) {
      try {
        ParseConfigText(text, "t.toml");
      } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::kConfig);
        return std::string(e.what());
      }
      return std::string("(accepted)");
    };
    CHECK(Contains(message("[[repository]]\ncompression = \"lz4\"\n"), "repository[1].url"));
    CHECK(Contains(message("[[repository]]\nurl = \"file:///a\"\n[[repository]]\nurl = \"file:///a/\"\n"),
                   "repository[2].url"));
    CHECK(Contains(message("[[repository]]\nurl = \"file:///a\"\nbest_efort = true\n"),
                   "repository[1].best_efort"));
    CHECK(Contains(message("[[repository]]\nurl = \"file:///a\"\n[repository.s3]\nregon = \"x\"\n"),
                   "repository[1].s3.regon"));
    CHECK(Contains(message("[[repository]]\nurl = \"file:///a\"\ncompression = \"brotli\"\n"),
                   "repository[1].compression"));
    CHECK(Contains(message("[[repository]]\nurl = \"file:///a\"\nbest_effort = true\n"),
                   "best_effort"));
    CHECK(Contains(message("repository = []\n"), "at least one"));
    CHECK(Contains(message("repository = [1, 2]\n"), "repository"));
    CHECK(Contains(message("repository = 5\n"), "must be a string"));
    const Config ok = ParseConfigText(
        "[[repository]]\nurl = \"file:///a\"\n[[repository]]\nurl = \"file:///b\"\nbest_effort = true\n",
        "t.toml");
    REQUIRE(ok.repositories.size() == 2);
    CHECK(ok.repositories[1].best_effort);
  }

  TEST_CASE("ProcessEnvironment reads the real environment") {
    ::setenv("WALSTORE_UNIT_TEST_VAR", "value-1", 1);
    EnvLookup env = ProcessEnvironment();
    CHECK(env("WALSTORE_UNIT_TEST_VAR") == std::optional<std::string>("value-1"));
    ::unsetenv("WALSTORE_UNIT_TEST_VAR");
    CHECK_FALSE(env("WALSTORE_UNIT_TEST_VAR").has_value());
  }
}
