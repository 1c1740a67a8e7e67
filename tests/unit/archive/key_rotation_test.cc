// Key rotation: objects written under a key that was rotated out still
// decode when that key is listed in encryption_old_key_files, and are never
// written with it.
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/error.h>

#include <map>
#include <string>

#include <walstore/backup/repository.h>
#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::MakeSegment;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

using walstore::test::MapEnv;

namespace {

constexpr uint64_t kSysId = 7311111111111111111ull;
constexpr uint32_t kSegSize = 1u << 20;
const std::string kKeyA(64, 'a');
const std::string kKeyB(64, 'b');

}  // namespace

TEST_SUITE("key_rotation") {
  TEST_CASE("an object under a rotated-out key decodes with encryption_old_key_files") {
    TempDir dir;
    ResetMemoryStorage("rotation");
    WriteFile(dir.path() + "/a.key", kKeyA + "\n");
    WriteFile(dir.path() + "/b.key", kKeyB + "\n");
    const std::string name = "000000010000000000000003";
    const std::string segment = dir.path() + "/" + name;
    WriteFile(segment, MakeSegment(1, 3, kSegSize, kSysId));

    // Written under key A.
    WriteFile(dir.path() + "/old.toml", "repository = \"memory://rotation\"\nencryption_key_file = \"" +
                                            dir.path() + "/a.key\"\n");
    const Config old_config = LoadConfig(dir.path() + "/old.toml", MapEnv({}));
    auto storage = OpenStorage(old_config);
    REQUIRE(PushWalFile(*storage, old_config, segment).outcome == PushOutcome::kStored);

    // Rotated to key B, without the old key: a wrong-key error naming both ids.
    WriteFile(dir.path() + "/new.toml", "repository = \"memory://rotation\"\nsystem_id = \"" +
                                            std::to_string(kSysId) + "\"\nencryption_key_file = \"" +
                                            dir.path() + "/b.key\"\n");
    const Config new_only = LoadConfig(dir.path() + "/new.toml", MapEnv({}));
    const auto error = walstore::test::ThrownError(
        [&] { FetchWalFile(*storage, new_only, name, dir.path() + "/out1"); });
    REQUIRE(error.has_value());
    CHECK(error->code() == ErrorCode::kWrongKey);
    CHECK(Contains(error->what(), new_only.key->IdHex()));
    CHECK_FALSE(walstore::test::Exists(dir.path() + "/out1"));

    // With the old key listed (file setting), it decodes; the same via the environment.
    WriteFile(dir.path() + "/rotated.toml",
              ReadFile(dir.path() + "/new.toml") + "encryption_old_key_files = [\"" + dir.path() +
                  "/a.key\"]\n");
    const Config rotated = LoadConfig(dir.path() + "/rotated.toml", MapEnv({}));
    REQUIRE(rotated.old_keys.size() == 1);
    CHECK(rotated.ReadKeys().size() == 2);
    CHECK(FetchWalFile(*storage, rotated, name, dir.path() + "/out2").outcome ==
          FetchOutcome::kRestored);
    CHECK(ReadFile(dir.path() + "/out2") == ReadFile(segment));
    const Config by_env = LoadConfig(
        dir.path() + "/new.toml", MapEnv({{"WALSTORE_ENCRYPTION_OLD_KEY_FILES", dir.path() + "/a.key"}}));
    CHECK(FetchWalFile(*storage, by_env, name, dir.path() + "/out3").outcome ==
          FetchOutcome::kRestored);

    // New objects are written with the current key only.
    const std::string name4 = "000000010000000000000004";
    WriteFile(dir.path() + "/" + name4, MakeSegment(1, 4, kSegSize, kSysId));
    REQUIRE(PushWalFile(*storage, rotated, dir.path() + "/" + name4).outcome == PushOutcome::kStored);
    CHECK(FetchWalFile(*storage, new_only, name4, dir.path() + "/out4").outcome ==
          FetchOutcome::kRestored);
  }

  TEST_CASE("encryption_old_key_files must be a list of readable 0600 key files") {
    TempDir dir;
    WriteFile(dir.path() + "/c.toml", "encryption_old_key_files = \"x\"\n");
    CHECK(walstore::test::ThrownCode([&] { LoadConfig(dir.path() + "/c.toml", MapEnv({})); }) ==
          std::string("kConfig"));
    WriteFile(dir.path() + "/open.key", kKeyA + "\n", 0644);
    WriteFile(dir.path() + "/d.toml",
              "encryption_old_key_files = [\"" + dir.path() + "/open.key\"]\n");
    CHECK(walstore::test::ThrownCode([&] { LoadConfig(dir.path() + "/d.toml", MapEnv({})); }) ==
          std::string("kConfig"));
  }

  TEST_CASE("walctl reads backup objects written under a rotated-out key") {
    TempDir dir;
    ResetMemoryStorage("rotation-walctl");
    WriteFile(dir.path() + "/a.key", kKeyA + "\n");
    WriteFile(dir.path() + "/b.key", kKeyB + "\n");
    const std::string base = "repository = \"memory://rotation-walctl\"\nsystem_id = \"" +
                             std::to_string(kSysId) + "\"\n";
    WriteFile(dir.path() + "/old.toml", base + "encryption_key_file = \"" + dir.path() + "/a.key\"\n");
    WriteFile(dir.path() + "/new.toml", base + "encryption_key_file = \"" + dir.path() + "/b.key\"\n");
    WriteFile(dir.path() + "/rotated.toml", ReadFile(dir.path() + "/new.toml") +
                                                "encryption_old_key_files = [\"" + dir.path() +
                                                "/a.key\"]\n");
    const Config old_config = LoadConfig(dir.path() + "/old.toml", MapEnv({}));
    auto storage = OpenStorage(old_config);
    const std::string key = std::to_string(kSysId) + "/backup/b1/backup_manifest";
    const std::string manifest = "a manifest written before the key rotation";
    walstore::backup::WriteSmallObject(*storage, old_config, key, manifest);

    const Config new_only = LoadConfig(dir.path() + "/new.toml", MapEnv({}));
    const auto error = walstore::test::ThrownError(
        [&] { walstore::backup::ReadSmallObject(*storage, new_only, key); });
    REQUIRE(error.has_value());
    CHECK(error->code() == ErrorCode::kWrongKey);

    const Config rotated = LoadConfig(dir.path() + "/rotated.toml", MapEnv({}));
    const auto text = walstore::backup::ReadSmallObject(*storage, rotated, key);
    REQUIRE(text.has_value());
    CHECK(*text == manifest);
  }
}
