// The libcurl client against a tiny HTTP/1.1 server on loopback.
#include "http/http_client.h"

#include "http/test_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <walstore/error.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace walstore::http {
namespace {

using test::ServerReply;
using test::ServerRequest;
using test::TestServer;

std::string Ok(const std::string& body, const std::string& extra_headers = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + body;
}

std::string Pattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return data;
}

// Runs `body` and returns the Error it throws (fails the test if none).
Error Caught(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& error) {
    return error;
  }
  FAIL("no error thrown");
  return Error(ErrorCode::kInternal, "unreachable");
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("status, lower-cased headers and body; one connection for many requests") {
    TestServer server([](const ServerRequest& request) {
      const bool head = request.head.starts_with("HEAD ");
      return ServerReply{head ? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                              : Ok("hello", "X-Amz-Meta-Walstore-Sha256: abc\r\nETag: \"e\"\r\n")};
    });
    Client client(ClientOptions{});
    for (int i = 0; i < 3; ++i) {
      const Response response = client.Perform({"GET", server.Url("/b/k"), {{"x-test", "1"}}});
      CHECK(response.status == 200);
      CHECK(response.body == "hello");
      CHECK(response.Header("x-amz-meta-walstore-sha256") == "abc");
      CHECK(response.Header("etag") == "\"e\"");
      CHECK_FALSE(response.Header("missing"));
    }
    CHECK(client.Perform({"HEAD", server.Url("/b/k")}).status == 404);
    CHECK(server.connections() == 1);
  }

  TEST_CASE("a request body is streamed from a ReadStream, without Expect: 100-continue") {
    std::string received_head, received_body;
    TestServer server([&](const ServerRequest& request) {
      received_head = request.head;
      received_body = request.body;
      return ServerReply{Ok("")};
    });
    const std::string data = Pattern(3 << 20);
    MemoryReadStream source(data);
    Request request{"PUT", server.Url("/b/big"), {{"Host", "example:1"}}, &source, data.size()};
    CHECK(Client(ClientOptions{}).Perform(request).status == 200);
    CHECK(received_body == data);
    CHECK(received_head.starts_with("PUT /b/big HTTP/1.1\r\n"));
    CHECK(Contains(received_head, "Host: example:1\r\n"));
    CHECK_FALSE(Contains(received_head, "Expect:"));
  }

  TEST_CASE("a response body is pulled piece by piece") {
    const std::string data = Pattern(5 << 20);
    TestServer server([&](const ServerRequest&) { return ServerReply{Ok(data)}; });
    Client client(ClientOptions{});
    const Response response = client.Start({"GET", server.Url("/b/k")});
    CHECK(response.status == 200);
    CHECK(response.body.empty());
    std::string read;
    uint8_t buffer[1000];
    size_t largest = 0;
    while (size_t n = client.ReadBody(MutableBytes(buffer, sizeof buffer))) {
      largest = std::max(largest, n);
      read.append(reinterpret_cast<char*>(buffer), n);
    }
    CHECK(largest == sizeof buffer);
    CHECK(read == data);
    // The connection is reused after a streamed response too.
    CHECK(client.Perform({"GET", server.Url("/b/k")}).body.size() == data.size());
    CHECK(server.connections() == 1);
  }

  TEST_CASE("a connection reset midway is a network error") {
    TestServer server([](const ServerRequest&) {
      return ServerReply{"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial", true};
    });
    Client client(ClientOptions{});
    const Error error = Caught([&] {
      client.Start({"GET", server.Url("/b/k")});
      uint8_t buffer[4096];
      while (client.ReadBody(MutableBytes(buffer, sizeof buffer))) {
      }
    });
    CHECK(error.code() == ErrorCode::kNetwork);
    CHECK(error.retryable());
    CHECK(Contains(error.what(), "127.0.0.1"));
  }

  TEST_CASE("a stalled transfer hits the low-speed limit") {
    TestServer server([](const ServerRequest&) {
      return ServerReply{"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nx", false, 2500};
    });
    ClientOptions options;
    options.low_speed_seconds = 1;
    // The server keeps the connection open for 2.5 s: "timed out" (not a
    // closed connection) shows that the client gave up on its own.
    const Error error = Caught([&] { Client(options).Perform({"GET", server.Url("/k")}); });
    CHECK(error.code() == ErrorCode::kNetwork);
    CHECK(Contains(error.what(), "timed out"));
  }

  TEST_CASE("connection refused, unknown host and TLS failures say what to fix") {
    int port;
    {
      TestServer closed([](const ServerRequest&) { return ServerReply{}; });
      port = std::stoi(closed.Url("").substr(17));
    }
    Error error = Caught([&] {
      Client(ClientOptions{}).Perform({"GET", "http://127.0.0.1:" + std::to_string(port) + "/"});
    });
    CHECK(error.code() == ErrorCode::kNetwork);
    CHECK(Contains(error.what(), "could not connect to 127.0.0.1:"));

    error = Caught([] {
      Client(ClientOptions{}).Perform({"GET", "http://nonexistent.invalid/b"});
    });
    CHECK(error.code() == ErrorCode::kNetwork);
    CHECK(Contains(error.what(), "could not resolve host nonexistent.invalid: check the endpoint"));

    // TLS to a server that speaks plain HTTP.
    TestServer plain([](const ServerRequest&) { return ServerReply{Ok("")}; });
    ClientOptions options;
    options.ca_bundle = "/nonexistent/ca.pem";
    error = Caught([&] { Client(options).Perform({"GET", "https" + plain.Url("/").substr(4)}); });
    CHECK(error.code() == ErrorCode::kTls);
    CHECK_FALSE(error.retryable());
    CHECK(Contains(error.what(), "TLS failure talking to 127.0.0.1:"));
    CHECK(Contains(error.hint(), "ca_bundle (/nonexistent/ca.pem)"));
    CHECK(Contains(error.hint(), "verify_tls"));
  }

  TEST_CASE("PerformNoThrow reports a transport failure as nullopt") {
    int port;
    {
      TestServer closed([](const ServerRequest&) { return ServerReply{}; });
      port = std::stoi(closed.Url("").substr(17));
    }
    Client client(ClientOptions{});
    CHECK_FALSE(
        client.PerformNoThrow({"DELETE", "http://127.0.0.1:" + std::to_string(port) + "/"}));
    TestServer server(
        [](const ServerRequest&) { return ServerReply{"HTTP/1.1 204 No Content\r\n\r\n"}; });
    const auto response = client.PerformNoThrow({"DELETE", server.Url("/b/k?uploadId=1")});
    REQUIRE(response);
    CHECK(response->status == 204);
  }

  TEST_CASE("a body read into memory is capped; a streamed body is not") {
    const std::string big(5000, 'x');
    TestServer server([&](const ServerRequest& request) {
      const bool error = request.head.find("/error") != std::string::npos;
      return ServerReply{"HTTP/1.1 " + std::string(error ? "404 Not Found" : "200 OK") +
                         "\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" + big};
    });
    ClientOptions options;
    options.max_collected_body = 4999;
    {  // the test server serves one connection at a time: this client's goes first
      Client client(options);
      const Error error = Caught([&] { client.Perform({"GET", server.Url("/list")}); });
      CHECK(error.code() == ErrorCode::kStorage);
      CHECK(Contains(error.what(), "more than 4999 bytes"));
      CHECK(Contains(error.what(), "127.0.0.1"));
      CHECK_FALSE(client.PerformNoThrow({"GET", server.Url("/list")}));
      // An error reply after Start(), read whole: the same cap.
      REQUIRE(client.Start({"GET", server.Url("/error")}).status == 404);
      CHECK(Caught([&] { client.ReadRestOfBody(); }).code() == ErrorCode::kStorage);
      // Streamed, the same body is fine, and so is a collected one at the cap.
      REQUIRE(client.Start({"GET", server.Url("/object")}).status == 200);
      std::string streamed;
      uint8_t buffer[1000];
      while (size_t n = client.ReadBody(MutableBytes(buffer, sizeof buffer))) {
        streamed.append(reinterpret_cast<char*>(buffer), n);
      }
      CHECK(streamed == big);
    }
    options.max_collected_body = 5000;
    Client roomy(options);
    CHECK(roomy.Perform({"GET", server.Url("/list")}).body == big);
    REQUIRE(roomy.Start({"GET", server.Url("/error")}).status == 404);
    CHECK(roomy.ReadRestOfBody() == big);
  }
}

}  // namespace walstore::http
