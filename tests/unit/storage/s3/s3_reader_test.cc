// Tests for src/lib/storage/s3/s3_reader.cc (through the Storage interface)
// against a fake S3 endpoint on loopback (tests/unit/http/test_server.h):
// when an answer is absence and when it is an error.
#include "storage/s3/s3_reader.h"

#include <doctest/doctest.h>
#include <walstore/config.h>
#include <walstore/error.h>

#include <atomic>
#include <functional>
#include <string>

#include "http/test_server.h"
#include "storage/s3/s3_test_server.h"
#include "test_util.h"

using namespace walstore;
using walstore::http::test::ServerReply;
using walstore::http::test::ServerRequest;
using walstore::http::test::TestServer;
using walstore::s3::test::OpenAt;
using walstore::s3::test::Reply;
using walstore::s3::test::S3Error;
using walstore::test::Contains;
using walstore::test::ThrownMessage;

namespace {

constexpr const char* kKey = "7312/wal/0000000100000000/000000010000000000000001";

const std::string kHtml404 = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>";
const std::string kEmptyListing =
    "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>"
    "</ListBucketResult>";

bool IsListing(const ServerRequest& request) {
  return request.head.find("list-type=2") != std::string::npos;
}

}  // namespace

TEST_SUITE("s3_reader") {
  TEST_CASE("GET 404 is absence only with the S3 error code NoSuchKey") {
    std::string get_reply;
    TestServer server([&](const ServerRequest&) { return ServerReply{get_reply}; });
    auto s = OpenAt(server);

    get_reply = Reply("404 Not Found", S3Error("NoSuchKey"));
    CHECK(s->OpenRead(kKey) == nullptr);

    get_reply = Reply("404 Not Found", kHtml404);  // a web server or proxy, not S3
    CHECK_CODE(s->OpenRead(kKey), ErrorCode::kStorage);
    CHECK(Contains(ThrownMessage([&] { s->OpenRead(kKey); }), "without an S3 error document"));

    get_reply = Reply("404 Not Found", S3Error("NoSuchBucket"));
    CHECK_CODE(s->OpenRead(kKey), ErrorCode::kStorage);
    CHECK(Contains(ThrownMessage([&] { s->OpenRead(kKey); }), "bucket b does not exist"));

    get_reply = Reply("404 Not Found", "");
    CHECK_CODE(s->OpenRead(kKey), ErrorCode::kStorage);
  }

  TEST_CASE("HEAD 404 is absence only once the bucket answered a listing, asked once") {
    std::atomic<int> listings{0};
    std::string listing_reply;
    TestServer server([&](const ServerRequest& request) {
      if (IsListing(request)) {
        ++listings;
        return ServerReply{listing_reply};
      }
      return ServerReply{"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"};
    });

    SUBCASE("a bucket that lists") {
      listing_reply = Reply("200 OK", kEmptyListing);
      auto s = OpenAt(server);
      CHECK_FALSE(s->Stat(kKey).has_value());
      CHECK_FALSE(s->Stat("7312/wal/00000002.history").has_value());
      CHECK_FALSE(s->Remove(kKey));
      CHECK(listings == 1);
    }
    SUBCASE("no such bucket") {
      listing_reply = Reply("404 Not Found", S3Error("NoSuchBucket"));
      auto s = OpenAt(server);
      CHECK_CODE(s->Stat(kKey), ErrorCode::kStorage);
      CHECK_CODE(s->Remove(kKey), ErrorCode::kStorage);
    }
    SUBCASE("an HTML 404 for everything") {
      listing_reply = Reply("404 Not Found", kHtml404);
      auto s = OpenAt(server);
      CHECK_CODE(s->Stat(kKey), ErrorCode::kStorage);
      CHECK(listings == 1);
      CHECK_CODE(s->Stat(kKey), ErrorCode::kStorage);  // not remembered as confirmed
      CHECK(listings == 2);
    }
    SUBCASE("a 200 that is not a listing") {
      listing_reply = Reply("200 OK", "<html><body>Welcome</body></html>");
      auto s = OpenAt(server);
      CHECK_CODE(s->Stat(kKey), ErrorCode::kStorage);
    }
  }

  TEST_CASE("a listing that repeats a continuation token is an error, not an endless loop") {
    std::atomic<int> pages{0};
    TestServer server([&](const ServerRequest&) {
      ++pages;
      return ServerReply{Reply(
          "200 OK",
          "<ListBucketResult><Contents><Key>p/7312/wal/x" + std::to_string(pages.load()) +
              "</Key><Size>1</Size></Contents><IsTruncated>true</IsTruncated>"
              "<NextContinuationToken>" +
              (pages == 1 ? std::string("first") : std::string("again")) +
              "</NextContinuationToken></ListBucketResult>")};
    });
    auto s = OpenAt(server);
    int visited = 0;
    const std::string message = ThrownMessage([&] {
      s->List("7312/", [&](const ObjectInfo&) { ++visited; });
    });
    CHECK(Contains(message, "continuation token it had already returned"));
    CHECK_CODE(s->List("", [](const ObjectInfo&) {}), ErrorCode::kStorage);
    CHECK(visited == 3);  // "first", "again", "again": stopped at the repeat
  }

  TEST_CASE("AnyBelow is one listing without delimiter, max-keys 1") {
    std::string request_line;
    std::string reply = Reply("200 OK", "<ListBucketResult><Contents><Key>p/7312/wal/0000000100000000/x</Key>"
                       "<Size>1</Size></Contents><IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>");
    int requests = 0;
    TestServer server([&](const ServerRequest& request) {
      ++requests;
      request_line = request.head.substr(0, request.head.find("\r\n"));
      return ServerReply{reply};
    });
    auto s = OpenAt(server);
    CHECK(s->AnyBelow("7312/"));
    CHECK(requests == 1);
    CHECK_FALSE(Contains(request_line, "delimiter"));
    const bool one_key = Contains(request_line, "max-keys=1&") || Contains(request_line, "max-keys=1 ");
    CHECK(one_key);
    CHECK(Contains(request_line, "prefix=p%2F7312%2F"));
    reply = Reply("200 OK", "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
    CHECK_FALSE(s->AnyBelow("8/"));
    reply = Reply("404 Not Found", S3Error("NoSuchBucket"));
    CHECK_CODE(s->AnyBelow("8/"), ErrorCode::kStorage);
  }

  TEST_CASE("ListChildren is one delimiter listing, limited") {
    std::string request_line;
    TestServer server([&](const ServerRequest& request) {
      request_line = request.head.substr(0, request.head.find("\r\n"));
      return ServerReply{Reply(
          "200 OK",
          "<ListBucketResult><Contents><Key>p/9</Key><Size>1</Size></Contents>"
          "<CommonPrefixes><Prefix>p/7312/</Prefix></CommonPrefixes>"
          "<CommonPrefixes><Prefix>p/8/</Prefix></CommonPrefixes>"
          "<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>"
          "</ListBucketResult>")};
    });
    auto s = OpenAt(server);
    CHECK(walstore::test::Join(s->ListChildren("", 10)) == "7312,8,9");
    CHECK(Contains(request_line, "delimiter=%2F"));
    CHECK(Contains(request_line, "max-keys=10"));
    CHECK(Contains(request_line, "prefix=p%2F"));
    CHECK(walstore::test::Join(s->ListChildren("", 2)) == "7312,8");
  }

  TEST_CASE("ListObjectsAfter is one listing with start-after (under the repository prefix)") {
    std::string request_line;
    int requests = 0;
    TestServer server([&](const ServerRequest& request) {
      ++requests;
      request_line = request.head.substr(0, request.head.find("\r\n"));
      // An endpoint that ignored start-after would list from the start: "a" is dropped.
      return ServerReply{Reply("200 OK",
                               "<ListBucketResult><Contents><Key>p/7312/a</Key><Size>1</Size></Contents>"
                               "<Contents><Key>p/7312/c</Key><Size>1</Size></Contents>"
                               "<Contents><Key>p/7312/d</Key><Size>1</Size></Contents>"
                               "<IsTruncated>false</IsTruncated></ListBucketResult>")};
    });
    auto s = OpenAt(server);
    CHECK(s->ListObjectsAfter("7312/", "7312/b", 5).size() == 2);
    CHECK(requests == 1);
    CHECK(Contains(request_line, "start-after=p%2F7312%2Fb"));
    CHECK(Contains(request_line, "max-keys=5"));
    CHECK(Contains(request_line, "prefix=p%2F7312%2F"));
    CHECK_FALSE(Contains(request_line, "delimiter"));
    CHECK(s->ListObjectsAfter("7312/", "7312/b", 1).at(0).key == "7312/c");
  }
}
