// Tests for src/lib/storage/s3/s3_request.cc: the URL and signed headers of a
// request, what counts as transient, and the error a refusal becomes.
#include "storage/s3/s3_request.h"

#include <doctest/doctest.h>
#include <walstore/config.h>
#include <walstore/error.h>

#include <openssl/evp.h>

#include <ctime>
#include <string>

#include "http/test_server.h"
#include "storage/s3/s3_test_server.h"
#include "storage/s3/s3_xml.h"
#include "test_util.h"

using namespace walstore;
using walstore::http::test::ServerReply;
using walstore::http::test::ServerRequest;
using walstore::http::test::TestServer;
using walstore::s3::test::Reply;
using walstore::s3::test::S3Error;
using walstore::test::Contains;
using walstore::test::ThrownError;

namespace {

S3Settings Settings(const std::string& endpoint) {
  S3Settings settings;
  settings.endpoint = endpoint;
  settings.path_style = true;
  settings.region = "eu-west-1";
  settings.access_key_id = "AKIDEXAMPLE";
  settings.secret_access_key = "secret";
  settings.max_attempts = 1;
  settings.retry_total_seconds = 5;
  return settings;
}

std::string HeaderValue(const http::Request& request, const std::string& name) {
  for (const auto& [header, value] : request.headers) {
    if (header == name) return value;
  }
  return "(absent)";
}

http::Response Response(long status, const std::string& body) {
  http::Response response;
  response.status = status;
  response.body = body;
  return response;
}

}  // namespace

TEST_SUITE("s3_request") {
  TEST_CASE("Build: the key under the prefix, encoded once, the query sorted, signed headers") {
    S3Settings settings = Settings("http://127.0.0.1:9000");
    s3::RequestSender requests(settings, "b", "p/q");
    CHECK(requests.Describe() == "s3://b/p/q");
    CHECK(requests.KeyPrefix() == "p/q/");
    CHECK(requests.FullKey("7312/a b") == "p/q/7312/a b");

    const http::Request request =
        requests.Build({"PUT", requests.FullKey("7312/a b"), {{"uploadId", "u+1"}, {"partNumber", "2"}},
                        {{"if-none-match", "*"}}},
                       std::string(s3::kUnsignedPayload));
    CHECK(request.method == "PUT");
    CHECK(request.url == "http://127.0.0.1:9000/b/p/q/7312/a%20b?partNumber=2&uploadId=u%2B1");
    CHECK(HeaderValue(request, "host") == "127.0.0.1:9000");
    CHECK(HeaderValue(request, "if-none-match") == "*");
    CHECK(HeaderValue(request, "x-amz-content-sha256") == s3::kUnsignedPayload);
    CHECK(HeaderValue(request, "x-amz-date").size() == 16);  // 20150830T123600Z
    CHECK(HeaderValue(request, "x-amz-security-token") == "(absent)");
    const std::string authorization = HeaderValue(request, "authorization");
    CHECK(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" +
                                    HeaderValue(request, "x-amz-date").substr(0, 8) +
                                    "/eu-west-1/s3/aws4_request"));
    CHECK(Contains(authorization, "SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date"));

    settings.session_token = "token";
    s3::RequestSender temporary(settings, "b", "");
    CHECK(temporary.Describe() == "s3://b");
    CHECK(temporary.FullKey("k") == "k");
    const http::Request signed_request = temporary.Build({"GET", "k"}, std::string(s3::kEmptySha256));
    CHECK(HeaderValue(signed_request, "x-amz-security-token") == "token");
    CHECK(Contains(HeaderValue(signed_request, "authorization"), "x-amz-security-token"));
  }

  TEST_CASE("transient: 5xx but 501, 429, 408, RequestTimeout, ConditionalRequestConflict") {
    s3::RequestSender requests(Settings("http://127.0.0.1:9000"), "b", "p");
    auto code = [&](long status, const std::string& body) {
      return walstore::test::ThrownCode([&] { requests.ThrowIfTransient(Response(status, body), "GET k"); });
    };
    const std::string transient = walstore::test::CodeName(ErrorCode::kStorageTransient);
    CHECK(code(500, "") == transient);
    CHECK(code(503, S3Error("SlowDown")) == transient);
    CHECK(code(429, "") == transient);
    CHECK(code(408, "") == transient);
    CHECK(code(400, S3Error("RequestTimeout")) == transient);
    CHECK(code(409, S3Error("ConditionalRequestConflict")) == transient);
    CHECK(code(501, "") == "no exception");
    CHECK(code(400, S3Error("InvalidArgument")) == "no exception");
    CHECK(code(404, S3Error("NoSuchKey")) == "no exception");
    CHECK(Contains(walstore::test::ThrownMessage([&] {
                     requests.ThrowIfTransient(Response(503, S3Error("SlowDown")), "GET k");
                   }),
                   "GET k on s3://b/p: HTTP 503 SlowDown"));
  }

  TEST_CASE("FailResponse: the error and hint a refusal becomes") {
    s3::RequestSender requests(Settings("http://127.0.0.1:9000"), "b", "p");
    auto error = [&](long status, const std::string& body) {
      return ThrownError([&] { requests.FailResponse(Response(status, body), "PUT k"); });
    };
    auto missing = error(404, S3Error("NoSuchBucket"));
    REQUIRE(missing);
    CHECK(missing->code() == ErrorCode::kStorage);
    CHECK(std::string(missing->what()) == "bucket b does not exist at endpoint http://127.0.0.1:9000");

    auto denied = error(403, S3Error("SignatureDoesNotMatch"));
    REQUIRE(denied);
    CHECK(denied->code() == ErrorCode::kAuth);
    CHECK(std::string(denied->what()) == "S3 refused PUT k on s3://b/p (HTTP 403 SignatureDoesNotMatch)");
    CHECK(denied->hint() == "the secret access key is wrong");
    CHECK(error(403, S3Error("RequestTimeTooSkewed"))->hint() ==
          "this machine's clock is off: sync it (NTP)");
    CHECK(Contains(error(401, "")->what(), "(HTTP 401 Forbidden)"));
    CHECK(Contains(error(403, "")->hint(), "may read, write, list and delete in bucket b"));

    auto not_s3 = error(404, "<html>nginx</html>");
    REQUIRE(not_s3);
    CHECK(not_s3->code() == ErrorCode::kStorage);
    CHECK(Contains(not_s3->what(), "PUT k on s3://b/p failed: HTTP 404 without an S3 error document"));

    auto other = error(400, S3Error("InvalidArgument"));
    REQUIRE(other);
    CHECK(other->code() == ErrorCode::kStorage);
    CHECK(std::string(other->what()) == "PUT k on s3://b/p failed: HTTP 400 InvalidArgument m");
  }

  TEST_CASE("Send: an <Error> inside a 200 reply is a failure, retried like a 500") {
    int requests_seen = 0;
    TestServer server([&](const ServerRequest&) {
      ++requests_seen;
      return ServerReply{Reply("200 OK", S3Error("InternalError"))};
    });
    S3Settings settings = Settings(server.Url(""));
    settings.max_attempts = 2;
    settings.retry_total_seconds = 30;
    s3::RequestSender requests(settings, "b", "p");
    const std::string body = "<CompleteMultipartUpload/>";
    CHECK_CODE(requests.Send({"POST", "p/k", {{"uploadId", "u"}}, {}, &body}, "PUT k"),
               ErrorCode::kStorageTransient);
    CHECK(requests_seen == 2);
  }

  TEST_CASE("Build signs with the provider's key id and session token, refreshed ones too") {
    int fetched = 0;
    s3::CredentialSource source{"test source", [&] {
                                  ++fetched;
                                  // Valid 10 s: inside the refresh margin, so
                                  // every Build asks again.
                                  return s3::SourceResult{
                                      s3::TimedCredentials{{"ASIATEMP" + std::to_string(fetched),
                                                            "tempsecret",
                                                            "session-" + std::to_string(fetched)},
                                                           std::time(nullptr) + 10},
                                      ""};
                                }};
    S3Settings settings = Settings("http://127.0.0.1:9000");
    settings.access_key_id.clear();
    s3::RequestSender requests(settings, "b", "", {source});
    const http::Request first = requests.Build({"GET", "k"}, std::string(s3::kEmptySha256));
    CHECK(HeaderValue(first, "x-amz-security-token") == "session-2");
    CHECK(HeaderValue(first, "authorization").starts_with("AWS4-HMAC-SHA256 Credential=ASIATEMP2/"));
    CHECK(Contains(HeaderValue(first, "authorization"), "x-amz-security-token"));
    // The signature is the one of those credentials.
    s3::SigningRequest signing{"GET", "/b/k", {}, {}, std::string(s3::kEmptySha256)};
    for (const auto& [name, value] : first.headers) {
      if (name != "authorization") signing.headers.emplace_back(name, value);
    }
    const s3::SignResult expected =
        s3::Sign(signing, {"ASIATEMP2", "tempsecret", "session-2"}, "eu-west-1", "s3",
                 HeaderValue(first, "x-amz-date"));
    CHECK(HeaderValue(first, "authorization") == expected.authorization);

    const http::Request second = requests.Build({"GET", "k"}, std::string(s3::kEmptySha256));
    CHECK(HeaderValue(second, "x-amz-security-token") == "session-3");
    CHECK(HeaderValue(second, "authorization").starts_with("AWS4-HMAC-SHA256 Credential=ASIATEMP3/"));
  }

  TEST_CASE("a bucket in another region: the error names its region") {
    s3::RequestSender requests(Settings("http://127.0.0.1:9000"), "b", "p");
    http::Response moved = Response(301, "");
    moved.headers.emplace_back("x-amz-bucket-region", "ap-south-1");
    auto error = ThrownError([&] { requests.FailResponse(moved, "HEAD k"); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kConfig);
    CHECK(std::string(error->what()) ==
          "bucket b is in region ap-south-1, not eu-west-1: HEAD k on s3://b/p was refused "
          "(HTTP 301 PermanentRedirect)");
    CHECK(error->hint() == "set region = \"ap-south-1\" in [s3] (or AWS_REGION=ap-south-1)");

    // Without the header: the error document's <Endpoint>.
    error = ThrownError([&] {
      requests.FailResponse(
          Response(301, "<Error><Code>PermanentRedirect</Code><Message>m</Message>"
                        "<Endpoint>b.s3.ap-south-1.amazonaws.com</Endpoint></Error>"),
          "GET k");
    });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kConfig);
    CHECK(Contains(error->what(), "is in region (endpoint b.s3.ap-south-1.amazonaws.com)"));
    CHECK(Contains(error->hint(), "set the bucket's region ([s3] region or AWS_REGION)"));

    // A request signed for the wrong region: <Region> names the right one.
    error = ThrownError([&] {
      requests.FailResponse(
          Response(400, "<Error><Code>AuthorizationHeaderMalformed</Code><Message>m</Message>"
                        "<Region>us-west-2</Region></Error>"),
          "GET k");
    });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kConfig);
    CHECK(Contains(error->what(), "bucket b is in region us-west-2, not eu-west-1"));
  }

  TEST_CASE("a wrong-region HEAD through the backend names the region") {
    TestServer server([&](const ServerRequest&) {
      return ServerReply{Reply("301 Moved Permanently", "", "x-amz-bucket-region: eu-central-1\r\n")};
    });
    auto storage = s3::test::OpenAt(server);
    const std::string message = walstore::test::ThrownMessage([&] { storage->Stat("k"); });
    CHECK(Contains(message, "bucket b is in region eu-central-1, not us-east-1"));
  }

  TEST_CASE("DeleteObjects carries the Content-MD5 of its body") {
    std::string md5;
    std::string body;
    TestServer server([&](const ServerRequest& request) {
      if (request.head.starts_with("POST ")) {
        body = request.body;
        const size_t at = request.head.find("content-md5: ");
        md5 = at == std::string::npos
                  ? "(absent)"
                  : request.head.substr(at + 13, request.head.find("\r\n", at) - at - 13);
      }
      return ServerReply{Reply("200 OK", "<DeleteResult/>")};
    });
    auto storage = s3::test::OpenAt(server);
    storage->RemoveMany({"a", "b"});
    REQUIRE_FALSE(body.empty());
    CHECK(Contains(body, "<Key>p/a</Key>"));
    // MD5 of the body as sent, base64, computed independently here.
    unsigned char digest[16];
    unsigned int length = 0;
    EVP_Digest(body.data(), body.size(), digest, &length, EVP_md5(), nullptr);
    unsigned char encoded[32];
    EVP_EncodeBlock(encoded, digest, 16);
    CHECK(md5 == std::string(reinterpret_cast<char*>(encoded)));
  }
}
