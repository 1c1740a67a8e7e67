// Tests for src/lib/storage/s3/s3_writer.cc (through the Storage interface)
// against a fake S3 endpoint on loopback: what a single PUT and a multipart
// upload send, that an existing object is never replaced, and that an
// abandoned multipart upload is aborted.
#include "storage/s3/s3_writer.h"

#include <doctest/doctest.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <algorithm>
#include <map>
#include <thread>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "http/test_server.h"
#include "storage/s3/s3_test_server.h"
#include "test_util.h"

using namespace walstore;
using walstore::http::test::ServerReply;
using walstore::http::test::ServerRequest;
using walstore::http::test::TestServer;
using walstore::s3::test::OpenAt;
using walstore::s3::test::Reply;
using walstore::test::Contains;

namespace {

constexpr const char* kKey = "7312/wal/0000000100000000/000000010000000000000001";
// Every reply closes its connection: the writer's background HEAD and the
// upload may use two connections, and the test server serves one at a time.
const std::string kClose = "Connection: close\r\n";

// A fake endpoint that records every request and answers HEAD with
// `head_status` and a PUT of the object (no partNumber) with `put_status`.
class FakeBucket {
 public:
  std::string head_status = "404 Not Found";
  std::string put_status = "200 OK";
  // When set: HEAD's answer once part 1 of a multipart upload has arrived (another writer's
  // object appearing during the upload).
  std::string head_status_after_part1;

  ServerReply Answer(const ServerRequest& request) {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    const std::string& head = request.head;
    if (head.starts_with("PUT ") && Contains(head, "partNumber=1&")) part1_seen_ = true;
    if (head.starts_with("HEAD ")) {
      const bool later = part1_seen_ && !head_status_after_part1.empty();
      return {Reply(later ? head_status_after_part1 : head_status, "", kClose)};
    }
    if (head.starts_with("POST ") && Contains(head, "?uploads")) {
      return {Reply("200 OK",
                    "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                    "</InitiateMultipartUploadResult>",
                    kClose)};
    }
    if (head.starts_with("PUT ") && Contains(head, "partNumber=")) {
      const std::string number = head.substr(head.find("partNumber=") + 11, 1);
      return {Reply("200 OK", "", "ETag: \"e" + number + "\"\r\n" + kClose)};
    }
    if (head.starts_with("PUT ")) return {Reply(put_status, "", kClose)};
    if (head.starts_with("POST ")) {
      return {Reply("200 OK", "<CompleteMultipartUploadResult/>", kClose)};
    }
    if (head.starts_with("DELETE ")) return {Reply("204 No Content", "", kClose)};
    return {Reply("400 Bad Request", "", kClose)};
  }

  // The requests other than HEAD (all with `with_head`), as "METHOD query" (query without
  // the key).
  std::vector<std::string> Calls(bool with_head = false) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> calls;
    for (const ServerRequest& request : requests_) {
      const std::string line = request.head.substr(0, request.head.find(" HTTP/1.1"));
      if (line.starts_with("HEAD ") && !with_head) continue;
      std::string call = line.substr(0, line.find(' '));
      const size_t query = line.find('?');
      if (query != std::string::npos) call.append(" ").append(line, query + 1);
      calls.push_back(call);
    }
    return calls;
  }
  ServerRequest Request(size_t i) {
    std::lock_guard lock(mutex_);
    return requests_.at(i);
  }
  // The first request whose request line starts with `start`.
  ServerRequest Find(const std::string& start) {
    std::lock_guard lock(mutex_);
    for (const ServerRequest& request : requests_) {
      if (request.head.starts_with(start)) return request;
    }
    FAIL("no request starting with " << start);
    return {};
  }

 private:
  std::mutex mutex_;
  std::vector<ServerRequest> requests_;
  bool part1_seen_ = false;
};

// A FakeBucket behind a test server.
struct FakeEndpoint {
  FakeBucket bucket;
  TestServer server{[this](const ServerRequest& request) { return bucket.Answer(request); }};
};

// The bodies of the parts uploaded, by part number (index 0 unused).
std::vector<std::string> PartBodies(FakeBucket& bucket) {
  std::vector<std::string> parts(1);
  const size_t count = bucket.Calls(true).size();
  for (size_t i = 0; i < count; ++i) {
    const ServerRequest request = bucket.Request(i);
    const size_t at = request.head.find("partNumber=");
    if (!request.head.starts_with("PUT ") || at == std::string::npos) continue;
    const size_t number = std::stoul(request.head.substr(at + 11));
    if (parts.size() <= number) parts.resize(number + 1);
    parts[number] = request.body;
  }
  return parts;
}

// Multipart above 10 bytes, in parts of 8.
void SmallParts(S3Settings& settings) {
  settings.multipart_threshold = 10;
  settings.part_size = 8;
}

// Parts of 8 bytes, one PUT for a known size up to 100.
void PartsBelowThreshold(S3Settings& settings) {
  settings.multipart_threshold = 100;
  settings.part_size = 8;
}


// A bucket on a server that serves connections concurrently, for part uploads
// in flight together: a part's reply waits until another part is under way
// (at most `hold`), then `linger` more; part `failing_part` is refused.
class ConcurrentBucket {
 public:
  std::chrono::milliseconds hold{400};
  std::chrono::milliseconds linger{60};
  size_t failing_part = 0;
  std::chrono::milliseconds part2_extra{0};  // part 2 answers this much later

  ServerReply Answer(const ServerRequest& request) {
    const std::string& head = request.head;
    const size_t at = head.find("partNumber=");
    if (!head.starts_with("PUT ") || at == std::string::npos) {
      ServerReply reply = bucket_.Answer(request);
      if (head.starts_with("DELETE ")) {
        std::lock_guard lock(mutex_);
        abort_after_parts_ = in_flight_ == 0;
      }
      return reply;
    }
    const size_t number = std::stoul(head.substr(at + 11));
    std::unique_lock lock(mutex_);
    parts_[number] = request.body;
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    changed_.notify_all();
    changed_.wait_for(lock, hold, [this] { return in_flight_ >= 2; });
    lock.unlock();
    std::this_thread::sleep_for(linger + (number == 2 ? part2_extra : std::chrono::milliseconds(0)));
    lock.lock();
    --in_flight_;
    if (number == failing_part) {
      return {Reply("403 Forbidden", walstore::s3::test::S3Error("AccessDenied"), kClose)};
    }
    return {Reply("200 OK", "", "ETag: \"etag" + std::to_string(number) + "\"\r\n" + kClose)};
  }

  size_t max_in_flight() {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
  }
  // Whether the DELETE (abort) came when no part upload was under way.
  bool abort_after_parts() {
    std::lock_guard lock(mutex_);
    return abort_after_parts_;
  }
  std::map<size_t, std::string> parts() {
    std::lock_guard lock(mutex_);
    return parts_;
  }
  FakeBucket& calls() { return bucket_; }

 private:
  FakeBucket bucket_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t in_flight_ = 0;
  size_t max_in_flight_ = 0;
  bool abort_after_parts_ = false;
  std::map<size_t, std::string> parts_;
};

struct ConcurrentEndpoint {
  ConcurrentBucket bucket;
  TestServer server{[this](const ServerRequest& request) { return bucket.Answer(request); },
                    true};
};

}  // namespace

TEST_SUITE("s3_writer") {
  TEST_CASE("a small object is one conditional PUT with its metadata, head rewritten") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, [](S3Settings& settings) { settings.storage_class = "STANDARD_IA"; });
    WriteOptions options;
    options.metadata = {{"walstore-size", "11"}};
    auto writer = s->Create(kKey, options);
    writer->Write(AsBytes("hello world"));
    writer->RewriteHead(AsBytes("HE"));
    writer->SetMetadata({{"walstore-size", "11"}, {"walstore-sha256", "abc"}});
    CHECK(writer->Commit() == CommitResult::kCreated);

    CHECK(bucket.Calls() == std::vector<std::string>{"PUT"});
    const ServerRequest put = bucket.Find("PUT ");
    CHECK(Contains(put.head, "PUT /b/p/" + std::string(kKey) + " HTTP/1.1"));
    CHECK(put.body == "HEllo world");
    CHECK(Contains(put.head, "if-none-match: *"));
    CHECK(Contains(put.head, "x-amz-meta-walstore-sha256: abc"));
    CHECK(Contains(put.head, "x-amz-meta-walstore-size: 11"));
    CHECK(Contains(put.head, "x-amz-storage-class: STANDARD_IA"));
  }

  TEST_CASE("an existing object is never replaced: HEAD 200 sends nothing, a 412 is kAlreadyExists") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server);
    SUBCASE("HEAD finds it") {
      bucket.head_status = "200 OK";
      auto writer = s->Create(kKey, {});
      writer->Write(AsBytes("new content"));
      CHECK(writer->Commit() == CommitResult::kAlreadyExists);
      CHECK(bucket.Calls().empty());
    }
    SUBCASE("the conditional PUT finds it") {
      bucket.put_status = "412 Precondition Failed";
      auto writer = s->Create(kKey, {});
      writer->Write(AsBytes("new content"));
      CHECK(writer->Commit() == CommitResult::kAlreadyExists);
      CHECK(bucket.Calls() == std::vector<std::string>{"PUT"});
    }
  }

  TEST_CASE("replace_existing: no HEAD and no If-None-Match, single PUT and multipart alike") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    bucket.head_status = "200 OK";  // the damaged object is there
    WriteOptions replace;
    replace.replace_existing = true;
    SUBCASE("single PUT") {
      auto s = OpenAt(endpoint.server);
      auto writer = s->Create(kKey, replace);
      writer->Write(AsBytes("replacement"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      CHECK(bucket.Calls(true) == std::vector<std::string>{"PUT"});
      CHECK_FALSE(Contains(bucket.Find("PUT ").head, "if-none-match"));
    }
    SUBCASE("multipart") {
      auto s = OpenAt(endpoint.server, SmallParts);
      auto writer = s->Create(kKey, replace);
      writer->Write(AsBytes("a replacement of several parts"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      for (const std::string& call : bucket.Calls(true)) CHECK_FALSE(call.starts_with("HEAD"));
      CHECK_FALSE(Contains(bucket.Find("POST /b/p/" + std::string(kKey) + "?uploadId").head,
                           "if-none-match"));
    }
  }

  TEST_CASE("above the threshold: a multipart upload, part 1 sent at the end with its head rewritten") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, SmallParts);
    auto writer = s->Create(kKey, {});
    // 30 bytes of unknown size: parts of 8, 8, 8, 6.
    const std::string data = "0123456789abcdefghijklmnopqrst";
    writer->Write(AsBytes(data));
    writer->RewriteHead(AsBytes("XY"));
    CHECK(writer->Commit() == CommitResult::kCreated);

    std::vector<std::string> calls = bucket.Calls();
    REQUIRE(calls.size() == 6);
    CHECK(calls.front() == "POST uploads=");
    CHECK(calls.back() == "POST uploadId=u1");
    // Part 1 goes with the last part, after RewriteHead: it is never among the first two.
    CHECK(calls[1] != "PUT partNumber=1&uploadId=u1");
    CHECK(calls[2] != "PUT partNumber=1&uploadId=u1");
    std::sort(calls.begin() + 1, calls.end() - 1);
    CHECK(std::vector<std::string>(calls.begin() + 1, calls.end() - 1) ==
          std::vector<std::string>{"PUT partNumber=1&uploadId=u1", "PUT partNumber=2&uploadId=u1",
                                   "PUT partNumber=3&uploadId=u1", "PUT partNumber=4&uploadId=u1"});
    const ServerRequest complete = bucket.Find("POST /b/p/" + std::string(kKey) + "?uploadId=u1");
    CHECK(Contains(complete.head, "if-none-match: *"));
    CHECK(Contains(complete.body, "<PartNumber>1</PartNumber><ETag>\"e1\"</ETag>"));
    CHECK(Contains(complete.body, "<PartNumber>4</PartNumber><ETag>\"e4\"</ETag>"));
    CHECK(PartBodies(bucket) == std::vector<std::string>{"", "XY234567", "89abcdef", "ghijklmn", "opqrst"});
  }

  TEST_CASE("head_final: part 1 goes as soon as it is full, not held until Commit") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, SmallParts);
    auto writer = s->Create(kKey, WriteOptions{.head_final = true});
    writer->Write(AsBytes("0123456789abcdefghijklmnopqrst"));
    CHECK_CODE(writer->RewriteHead(AsBytes("XY")), ErrorCode::kInternal);
    CHECK(writer->Commit() == CommitResult::kCreated);
    const std::vector<std::string> calls = bucket.Calls();
    REQUIRE(calls.size() == 6);
    CHECK(calls.front() == "POST uploads=");
    // Part 1 is among the first two parts sent (held back, it would come last).
    CHECK((calls[1] == "PUT partNumber=1&uploadId=u1" || calls[2] == "PUT partNumber=1&uploadId=u1"));
    CHECK(std::count(calls.begin(), calls.end(), "PUT partNumber=1&uploadId=u1") == 1);
    CHECK(PartBodies(bucket) ==
          std::vector<std::string>{"", "01234567", "89abcdef", "ghijklmn", "opqrst"});
  }

  TEST_CASE("after a multipart upload, HEAD again once every part is sent, then complete") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, SmallParts);
    auto writer = s->Create(kKey, {});
    writer->Write(AsBytes(std::string(30, 'x')));
    CHECK(writer->Commit() == CommitResult::kCreated);
    const std::vector<std::string> calls = bucket.Calls(true);
    REQUIRE(calls.size() >= 3);
    CHECK(calls[calls.size() - 2] == "HEAD");
    CHECK(calls.back() == "POST uploadId=u1");
    CHECK(std::count(calls.begin(), calls.end() - 2, "PUT partNumber=1&uploadId=u1") == 1);
  }

  TEST_CASE("an object that appears while the parts upload is never replaced by the complete") {
    // Stores that ignore If-None-Match on CompleteMultipartUpload (s3rver, Ceph RGW 16.2) would
    // replace it; the HEAD after the last part sees it.
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    bucket.head_status_after_part1 = "200 OK";
    auto s = OpenAt(endpoint.server, SmallParts);
    {
      auto writer = s->Create(kKey, {});
      writer->Write(AsBytes(std::string(30, 'x')));
      CHECK(writer->Commit() == CommitResult::kAlreadyExists);
    }
    const std::vector<std::string> calls = bucket.Calls();
    CHECK(std::find(calls.begin(), calls.end(), "POST uploadId=u1") == calls.end());
    CHECK(calls.back() == "DELETE uploadId=u1");
  }

  TEST_CASE("a multipart writer destroyed without Commit aborts its upload") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, SmallParts);
    {
      auto writer = s->Create(kKey, {});
      writer->Write(AsBytes(std::string(20, 'x')));
    }
    const std::vector<std::string> calls = bucket.Calls();
    REQUIRE(!calls.empty());
    CHECK(calls.front() == "POST uploads=");
    CHECK(calls.back() == "DELETE uploadId=u1");
    CHECK(Contains(bucket.Find("DELETE ").head, "DELETE /b/p/" + std::string(kKey) + "?uploadId=u1 "));
  }

  TEST_CASE("parts are the buffer as filled: cut at their size across writes, no empty part") {
    // Written 3 bytes at a time, 24 bytes end exactly at a part boundary: three parts of 8,
    // and no empty part 4 follows.
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, SmallParts);
    auto writer = s->Create(kKey, {});
    const std::string data = "0123456789abcdefghijklmn";
    for (size_t at = 0; at < data.size(); at += 3) writer->Write(AsBytes(data.substr(at, 3)));
    writer->RewriteHead(AsBytes("HEAD"));  // after several parts: part 1 is still held
    CHECK(writer->Commit() == CommitResult::kCreated);
    CHECK(PartBodies(bucket) == std::vector<std::string>{"", "HEAD4567", "89abcdef", "ghijklmn"});
    const std::string complete = bucket.Find("POST /b/p/" + std::string(kKey) + "?uploadId=u1").body;
    CHECK(Contains(complete, "<PartNumber>3</PartNumber><ETag>\"e3\"</ETag>"));
    CHECK(!Contains(complete, "<PartNumber>4</PartNumber>"));
  }

  TEST_CASE("unknown size: the multipart upload starts once a part is full and more comes") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, PartsBelowThreshold);
    SUBCASE("more than one part: the upload is under way before Commit") {
      auto writer = s->Create(kKey, {});
      writer->Write(AsBytes("01234567"));
      CHECK(bucket.Calls().empty());  // one full part may still be the whole object
      writer->Write(AsBytes("8"));
      CHECK(bucket.Calls() == std::vector<std::string>{"POST uploads="});
      writer->Write(AsBytes("9abcdefgh"));
      writer->RewriteHead(AsBytes("X"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      CHECK(PartBodies(bucket) == std::vector<std::string>{"", "X1234567", "89abcdef", "gh"});
    }
    SUBCASE("exactly one part is one PUT") {
      auto writer = s->Create(kKey, {});
      writer->Write(AsBytes("01234567"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      CHECK(bucket.Calls() == std::vector<std::string>{"PUT"});
    }
  }

  TEST_CASE("a known size up to multipart_threshold stays one PUT, however many parts it spans") {
    // walpush gives the segment size: a segment costs one PUT, never a multipart upload.
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, PartsBelowThreshold);
    const std::string data(100, 's');
    WriteOptions options;
    options.size_hint = data.size();
    SUBCASE("size as hinted") {
      auto writer = s->Create(kKey, options);
      for (size_t at = 0; at < data.size(); at += 7) writer->Write(AsBytes(data.substr(at, 7)));
      CHECK(writer->Commit() == CommitResult::kCreated);
      CHECK(bucket.Calls() == std::vector<std::string>{"PUT"});
      CHECK(bucket.Find("PUT ").body == data);
    }
    SUBCASE("a hint above the threshold goes in parts") {
      options.size_hint = 101;
      auto writer = s->Create(kKey, options);
      writer->Write(AsBytes(data + "x"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      const std::vector<std::string> parts = PartBodies(bucket);
      CHECK(parts.size() == 1 + 13);
      CHECK(parts[1] == data.substr(0, 8));
    }
    SUBCASE("more than the hint said, past the threshold: the buffer becomes part 1") {
      options.size_hint = 50;
      auto writer = s->Create(kKey, options);
      writer->Write(AsBytes(data + "0123456789"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      CHECK(PartBodies(bucket) == std::vector<std::string>{"", data, "01234567", "89"});
    }
  }

  TEST_CASE("parts upload two at a time; ETags go into the complete in part order") {
    ConcurrentEndpoint endpoint;
    ConcurrentBucket& bucket = endpoint.bucket;
    bucket.part2_extra = std::chrono::milliseconds(150);  // part 3 finishes before part 2
    auto s = OpenAt(endpoint.server, PartsBelowThreshold);
    std::string data;
    for (char c = 'a'; c < 'a' + 6; ++c) data += std::string(8, c);  // six parts of 8
    SUBCASE("committed") {
      auto writer = s->Create(kKey, {});
      for (size_t at = 0; at < data.size(); at += 5) writer->Write(AsBytes(data.substr(at, 5)));
      writer->RewriteHead(AsBytes("A"));
      CHECK(writer->Commit() == CommitResult::kCreated);
      CHECK(bucket.max_in_flight() == 2);  // never one at a time, never more than two
      const std::map<size_t, std::string> parts = bucket.parts();
      REQUIRE(parts.size() == 6);
      CHECK(parts.at(1) == "Aaaaaaaa");
      for (size_t n = 2; n <= 6; ++n) CHECK(parts.at(n) == data.substr((n - 1) * 8, 8));
      const std::string complete =
          bucket.calls().Find("POST /b/p/" + std::string(kKey) + "?uploadId=u1").body;
      size_t previous = 0;
      for (size_t n = 1; n <= 6; ++n) {
        const size_t at = complete.find(fmt::format(
            "<Part><PartNumber>{}</PartNumber><ETag>\"etag{}\"</ETag></Part>", n, n));
        REQUIRE(at != std::string::npos);
        CHECK(at > previous);
        previous = at;
      }
    }
    SUBCASE("destroyed without Commit: the abort waits for the parts in flight") {
      {
        auto writer = s->Create(kKey, {});
        writer->Write(AsBytes(data));  // parts 2..5 sent, 6 being filled
      }
      CHECK(bucket.max_in_flight() == 2);
      const std::vector<std::string> calls = bucket.calls().Calls();
      REQUIRE(!calls.empty());
      CHECK(calls.back() == "DELETE uploadId=u1");
      CHECK(bucket.abort_after_parts());
      CHECK(std::find(calls.begin(), calls.end(), "POST uploadId=u1") == calls.end());
    }
  }

  TEST_CASE("a part that fails fails the object: its error surfaces, nothing is completed") {
    ConcurrentEndpoint endpoint;
    ConcurrentBucket& bucket = endpoint.bucket;
    bucket.failing_part = 3;
    auto s = OpenAt(endpoint.server, PartsBelowThreshold);
    std::optional<Error> failure;
    {
      auto writer = s->Create(kKey, {});
      try {
        for (int i = 0; i < 8; ++i) writer->Write(AsBytes(std::string(8, 'p')));
        writer->Commit();
      } catch (const Error& error) {
        failure = error;
      }
      REQUIRE(failure);
      CHECK(failure->code() == ErrorCode::kAuth);
      CHECK(Contains(failure->what(), "upload part 3 of"));
      // Every later call fails the same way: nothing goes on without part 3.
      CHECK_THROWS_WITH_AS(writer->Write(AsBytes("more")), doctest::Contains("upload part 3 of"),
                           Error);
      CHECK_THROWS_WITH_AS(writer->Commit(), doctest::Contains("upload part 3 of"), Error);
    }
    const std::vector<std::string> calls = bucket.calls().Calls();
    CHECK(std::find(calls.begin(), calls.end(), "POST uploadId=u1") == calls.end());
    CHECK(calls.back() == "DELETE uploadId=u1");
    CHECK(bucket.abort_after_parts());
  }

  TEST_CASE("after every 1000 parts the part size doubles: 10000 parts hold a large object") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, [](S3Settings& settings) { settings.part_size = 1; });
    auto writer = s->Create(kKey, {});
    std::string data;
    for (int i = 0; i < 1003; ++i) data += static_cast<char>('a' + i % 26);
    writer->Write(AsBytes(data));
    CHECK(writer->Commit() == CommitResult::kCreated);
    const std::vector<std::string> parts = PartBodies(bucket);
    REQUIRE(parts.size() == 1 + 1002);
    CHECK(parts[1000] == data.substr(999, 1));
    CHECK(parts[1001] == data.substr(1000, 2));  // parts 1001..2000 have two bytes
    CHECK(parts[1002] == data.substr(1002));
  }
}
