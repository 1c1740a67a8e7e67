// Tests for src/lib/storage/s3/s3_writer.cc (through the Storage interface)
// against a fake S3 endpoint on loopback: what a single PUT and a multipart
// upload send, that an existing object is never replaced, and that an
// abandoned multipart upload is aborted.
#include "storage/s3/s3_writer.h"

#include <doctest/doctest.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <algorithm>
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
  for (size_t i = 0; i < bucket.Calls(true).size(); ++i) {
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

  TEST_CASE("above the threshold: a multipart upload, part 1 sent last with its head rewritten") {
    FakeEndpoint endpoint;
    FakeBucket& bucket = endpoint.bucket;
    auto s = OpenAt(endpoint.server, SmallParts);
    auto writer = s->Create(kKey, {});
    // 30 bytes of unknown size: parts of 8, 8, 8, 6.
    const std::string data = "0123456789abcdefghijklmnopqrst";
    writer->Write(AsBytes(data));
    writer->RewriteHead(AsBytes("XY"));
    CHECK(writer->Commit() == CommitResult::kCreated);

    CHECK(bucket.Calls() == std::vector<std::string>{"POST uploads=",
                                                     "PUT partNumber=2&uploadId=u1",
                                                     "PUT partNumber=3&uploadId=u1",
                                                     "PUT partNumber=4&uploadId=u1",
                                                     "PUT partNumber=1&uploadId=u1",
                                                     "POST uploadId=u1"});
    std::string parts[5];
    for (size_t i = 0;; ++i) {
      const ServerRequest request = bucket.Request(i);
      const size_t at = request.head.find("partNumber=");
      if (request.head.starts_with("PUT ") && at != std::string::npos) {
        parts[request.head[at + 11] - '0'] = request.body;
      }
      if (request.head.starts_with("POST /b/p/" + std::string(kKey) + "?uploadId=u1")) {
        CHECK(Contains(request.head, "if-none-match: *"));
        CHECK(Contains(request.body, "<PartNumber>1</PartNumber><ETag>\"e1\"</ETag>"));
        CHECK(Contains(request.body, "<PartNumber>4</PartNumber><ETag>\"e4\"</ETag>"));
        break;
      }
    }
    CHECK(parts[1] == "XY234567");
    CHECK(parts[2] == "89abcdef");
    CHECK(parts[3] == "ghijklmn");
    CHECK(parts[4] == "opqrst");
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
    CHECK(calls[calls.size() - 3] == "PUT partNumber=1&uploadId=u1");
    CHECK(calls[calls.size() - 2] == "HEAD");
    CHECK(calls.back() == "POST uploadId=u1");
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
}
