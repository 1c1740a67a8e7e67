// Exercises the S3 Storage driver against a live S3 server (s3rver and Ceph RGW in
// the integration tests): metadata, no-overwrite commits, multipart uploads and
// their abort, streamed reads, paginated listing, batch delete, concurrency.
//
// Usage: s3_storage_check   (repository and S3 settings from WALSTORE_CONFIG /
// WALSTORE_REPO / AWS_*; use a throwaway prefix).  Prints one line per check
// and "s3_storage_check: N checks passed, M failed".
#include <fmt/format.h>
#include <walstore/cli.h>
#include <walstore/config.h>
#include <walstore/error.h>

#include <functional>
#include <thread>
#include <vector>

#include "storage/s3/s3_storage.h"

namespace walstore {
namespace {

int passed = 0, failed = 0;

void Check(bool ok, const std::string& what) {
  ++(ok ? passed : failed);
  fmt::print("{} - {}\n", ok ? "ok  " : "FAIL", what);
}

std::string Pattern(size_t size, int seed) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((i * 7919 + seed * 31 + i / 997) & 0xff);
  return data;
}

// Writes `data` in uneven pieces and commits.
CommitResult Put(Storage& storage, const std::string& key, const std::string& data,
                 const WriteOptions& options = {}) {
  auto writer = storage.Create(key, options);
  for (size_t at = 0, step = 1; at < data.size(); at += step, step = step * 3 + 1) {
    writer->Write(AsBytes(std::string_view(data).substr(at, step)));
  }
  return writer->Commit();
}

std::string ReadAll(Storage& storage, const std::string& key, size_t piece) {
  auto reader = storage.OpenRead(key);
  if (!reader) return "<missing>";
  StringWriteStream out;
  Copy(*reader, out, piece);
  return out.data();
}

std::vector<std::string> Keys(Storage& storage, const std::string& prefix) {
  std::vector<std::string> keys;
  storage.List(prefix, [&](const ObjectInfo& info) { keys.push_back(info.key); });
  return keys;
}

int Run() {
  Config config = LoadConfig(std::nullopt, ProcessEnvironment());
  const std::string rest = config.repo_url.substr(5);  // after "s3://"
  const std::string bucket = rest.substr(0, rest.find('/'));
  const std::string prefix =
      rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/') + 1);
  // Parts of AWS's minimum size (5 MiB but the last), which RGW enforces as AWS does.
  config.s3.multipart_threshold = 1 << 20;
  config.s3.part_size = 5 << 20;
  auto storage = OpenS3Storage(config, bucket, prefix, S3Tuning{7, 10});

  // Small object with metadata.
  const std::string small = Pattern(1000, 1);
  WriteOptions options;
  options.metadata = {{"walstore-sha256", "abc123"}, {"walstore-size", "1000"}};
  Check(Put(*storage, "small/a", small, options) == CommitResult::kCreated, "small object created");
  auto info = storage->Stat("small/a");
  Check(info && info->size == 1000, "Stat gives the size");
  Check(info && info->metadata == options.metadata, "Stat gives the metadata back");
  Check(ReadAll(*storage, "small/a", 100) == small, "small object reads back");

  // No overwrite.
  Check(Put(*storage, "small/a", Pattern(10, 2)) == CommitResult::kAlreadyExists,
        "a second commit on the same key reports kAlreadyExists");
  Check(ReadAll(*storage, "small/a", 4096) == small, "and the first object is untouched");

  // Absence is a value.
  Check(!storage->Stat("small/missing"), "Stat of a missing key is nullopt");
  Check(storage->OpenRead("small/missing") == nullptr, "OpenRead of a missing key is nullptr");
  Check(!storage->Remove("small/missing"), "Remove of a missing key is false");
  const std::vector<std::string> children = storage->ListChildren("small/", 10);
  Check(children == std::vector<std::string>{"a"}, "ListChildren names the one level below");
  // start-after (walfetch's hole check): only keys after it, in order, at most `limit`.
  for (const char* key : {"after/1/a", "after/1/b", "after/2/a", "after/3"}) {
    Put(*storage, key, "x");
  }
  const auto keys_after = [&](const std::string& after, size_t limit) {
    std::vector<std::string> keys;
    for (const ObjectInfo& object : storage->ListObjectsAfter("after/", after, limit)) {
      keys.push_back(object.key);
      if (object.modified == 0 || object.size != 1) keys.push_back("(no size or time)");
    }
    return keys;
  };
  Check(keys_after("after/1/a", 10) == std::vector<std::string>{"after/1/b", "after/2/a", "after/3"},
        "ListObjectsAfter lists only the keys after start-after, with size and time");
  Check(keys_after("after/1/b", 1) == std::vector<std::string>{"after/2/a"},
        "ListObjectsAfter stops at its limit");
  Check(keys_after("after/3", 10).empty(), "nothing after the last key");
  for (const char* key : {"after/1/a", "after/1/b", "after/2/a", "after/3"}) storage->Remove(key);
  // ...but only with the bucket there: a missing bucket is an error, never absence.
  {
    auto missing = OpenS3Storage(config, bucket + "-missing", prefix, S3Tuning{7, 10});
    auto code_of = [](const std::function<void()>& call) {
      try {
        call();
      } catch (const Error& error) {
        return error.code();
      }
      return ErrorCode::kInternal;
    };
    Check(code_of([&] { missing->Stat("small/a"); }) == ErrorCode::kStorage,
          "Stat in a missing bucket is an error");
    Check(code_of([&] { missing->OpenRead("small/a"); }) == ErrorCode::kStorage,
          "OpenRead in a missing bucket is an error");
  }

  // Nothing visible before Commit; an abandoned writer leaves nothing.
  {
    auto writer = storage->Create("small/uncommitted");
    writer->Write(AsBytes(small));
    Check(!storage->Stat("small/uncommitted"), "nothing visible before Commit");
  }
  Check(!storage->Stat("small/uncommitted"), "a writer destroyed without Commit leaves nothing");

  // Multipart: 1 MiB threshold, 5 MiB parts: four parts.
  const std::string large = Pattern((15 << 20) + 12345, 3);
  Check(Put(*storage, "large/m", large, options) == CommitResult::kCreated,
        "large object created through a multipart upload");
  info = storage->Stat("large/m");
  Check(info && info->size == large.size(), "multipart object has the full size");
  Check(info && info->metadata == options.metadata, "multipart object keeps its metadata");
  Check(ReadAll(*storage, "large/m", 1000) == large, "multipart object streams back intact");
  Check(Put(*storage, "large/m", large) == CommitResult::kAlreadyExists,
        "multipart commit onto an existing key reports kAlreadyExists");
  {
    auto writer = storage->Create("large/abandoned");
    writer->Write(AsBytes(large));  // parts are uploaded now
  }
  Check(!storage->Stat("large/abandoned"), "an abandoned multipart upload leaves no object");

  // Listing with 7 keys a page, batch delete with 10 keys a request.
  std::vector<std::string> keys;
  for (int i = 0; i < 23; ++i) keys.push_back(fmt::format("list/{:03}", i));
  for (const auto& key : keys) Put(*storage, key, key);
  Check(Keys(*storage, "list/") == keys, "List over 4 pages returns all 23 keys in order");
  Check(Keys(*storage, "list/01").size() == 10, "List with a narrower prefix");
  std::vector<std::string> all_keys;
  std::vector<ObjectInfo> infos;
  storage->List("", [&](const ObjectInfo& i) { infos.push_back(i); });
  Check(infos.size() == 25 && infos[0].key == "large/m" && infos[0].size == large.size(),
        "List of the whole prefix gives keys relative to it, with sizes");
  std::vector<std::string> to_remove = keys;
  to_remove.push_back("list/never-existed");
  storage->RemoveMany(to_remove);
  Check(Keys(*storage, "list/").empty(), "RemoveMany deleted 23 keys in 3 requests");

  // Concurrent use from several threads.
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = fmt::format("threads/{}", t);
      const std::string data = Pattern(200000 + t, t);
      if (Put(*storage, key, data) == CommitResult::kCreated &&
          ReadAll(*storage, key, 777) == data) {
        ++good;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  Check(good == 4, "four threads write and read through one Storage");

  Check(storage->Remove("small/a") && !storage->Stat("small/a"), "Remove deletes an object");
  storage->RemoveMany({"large/m", "threads/0", "threads/1", "threads/2", "threads/3"});
  Check(Keys(*storage, "").empty(), "the test prefix is empty again");

  // Leftover multipart uploads (walctl verify / prune): servers without
  // ListMultipartUploads must be reported as "cannot tell", not fail.
  std::string leftovers_said;
  try {
    const auto leftovers = storage->ListLeftovers(0);
    leftovers_said = leftovers ? fmt::format("{} uploads listed", leftovers->size())
                               : "the server cannot list uploads";
  } catch (const std::exception& e) {
    leftovers_said = std::string("error: ") + e.what();
  }
  Check(leftovers_said.rfind("error", 0) != 0,
        "ListLeftovers answers without an error (" + leftovers_said + ")");

  fmt::print("s3_storage_check: {} checks passed, {} failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace
}  // namespace walstore

int main() { return walstore::RunMain("s3_storage_check", false, walstore::Run); }
