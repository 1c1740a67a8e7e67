// Tests for src/lib/storage/memory: the shared storage contract plus sharing by name.
#include <doctest/doctest.h>

#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/storage.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>

#include "storage/memory/memory_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::ListKeys;
using walstore::test::ObjectContent;
using walstore::test::PutObject;

namespace {
std::string UniqueName(const char* base) {
  static std::atomic<int> n{0};
  return std::string(base) + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}
}  // namespace

TEST_SUITE("storage_memory") {
  TEST_CASE("storage contract") {
    const std::string name = UniqueName("contract");
    ResetMemoryStorage(name);
    walstore::test::RunStorageContract([&] { return OpenMemoryStorage(name); });
    ResetMemoryStorage(name);
  }

  TEST_CASE("stores are shared by name and isolated between names") {
    const std::string a = UniqueName("shared");
    const std::string b = UniqueName("other");
    auto s1 = OpenMemoryStorage(a);
    auto s2 = OpenMemoryStorage(a);
    auto s3 = OpenMemoryStorage(b);
    REQUIRE(PutObject(*s1, "k", "v1") == CommitResult::kCreated);
    CHECK(ObjectContent(*s2, "k") == "v1");
    CHECK_FALSE(s3->Stat("k").has_value());
    CHECK(PutObject(*s2, "k", "v2") == CommitResult::kAlreadyExists);
    // A store outlives its Storage objects.
    s1.reset();
    s2.reset();
    auto s4 = OpenMemoryStorage(a);
    CHECK(ObjectContent(*s4, "k") == "v1");
    ResetMemoryStorage(a);
    CHECK_FALSE(s4->Stat("k").has_value());
    CHECK(ListKeys(*s4, "").empty());
    ResetMemoryStorage(b);
  }

  TEST_CASE("metadata given at Create comes back from Stat") {
    const std::string name = UniqueName("meta");
    auto s = OpenMemoryStorage(name);
    WriteOptions o;
    o.metadata = {{"walstore-sha256", "abc"}, {"walstore-size", "3"}};
    auto w = s->Create("m/k", o);
    w->Write(AsBytes("xyz"));
    REQUIRE(w->Commit() == CommitResult::kCreated);
    auto info = s->Stat("m/k");
    REQUIRE(info.has_value());
    CHECK(info->metadata.size() == 2);
    CHECK(info->metadata == std::map<std::string, std::string>{{"walstore-sha256", "abc"}, {"walstore-size", "3"}});
    ResetMemoryStorage(name);
  }

  TEST_CASE("a reader keeps its content when the object is removed") {
    const std::string name = UniqueName("reader");
    auto s = OpenMemoryStorage(name);
    const std::string content = walstore::test::RandomString(10000, 2);
    REQUIRE(PutObject(*s, "k", content) == CommitResult::kCreated);
    auto in = s->OpenRead("k");
    REQUIRE(in != nullptr);
    CHECK(s->Remove("k"));
    CHECK(walstore::test::ReadAll(*in, 333) == content);
    ResetMemoryStorage(name);
  }

  TEST_CASE("OpenStorage with memory:// URLs") {
    const std::string name = UniqueName("url");
    Config c;
    c.repo_url = "memory://" + name;
    auto s = OpenStorage(c);
    REQUIRE(s != nullptr);
    REQUIRE(PutObject(*s, "x/y", "z") == CommitResult::kCreated);
    CHECK(ObjectContent(*OpenMemoryStorage(name), "x/y") == "z");
    CHECK(walstore::test::Contains(s->Describe(), name));
    ResetMemoryStorage(name);
  }

  TEST_CASE("concurrent creates of distinct and identical keys") {
    const std::string name = UniqueName("threads");
    auto s = OpenMemoryStorage(name);
    std::atomic<int> created{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          PutObject(*s, "distinct/" + std::to_string(t) + "/" + std::to_string(i), "x");
          if (PutObject(*s, "same/" + std::to_string(i), std::to_string(t)) == CommitResult::kCreated) ++created;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(ListKeys(*s, "distinct/").size() == 200);
    CHECK(created == 50);
    CHECK(ListKeys(*s, "same/").size() == 50);
    ResetMemoryStorage(name);
  }
}
