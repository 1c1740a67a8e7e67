// A tiny HTTP/1.1 server on loopback for unit tests of the HTTP client and
// of the S3 backend: each request is answered by a handler with raw bytes.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace walstore::http::test {

struct ServerRequest {
  std::string head;  // request line and headers
  std::string body;
};

// What the server does with a request: the bytes to send back, and whether to
// reset the connection after sending them.
struct ServerReply {
  std::string bytes;
  bool reset = false;
  int stall_ms = 0;  // sleep after sending, before the next read
};

class TestServer {
 public:
  // One connection at a time by default (a client's next connection waits in
  // the backlog); `concurrent` serves each on a thread of its own, for
  // clients that send several requests at once.
  explicit TestServer(std::function<ServerReply(const ServerRequest&)> handler,
                      bool concurrent = false)
      : handler_(std::move(handler)), concurrent_(concurrent) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    REQUIRE(listen(listener_, 8) == 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    stopping_ = true;
    shutdown(connection_, SHUT_RDWR);  // a client may still hold its connection open
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
    {
      std::lock_guard lock(mutex_);
      for (const int fd : open_) shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& thread : connection_threads_) thread.join();
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return connections_; }

 private:
  void Serve() {
    while (true) {
      const int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      ++connections_;
      if (concurrent_) {
        std::lock_guard lock(mutex_);
        open_.push_back(fd);
        connection_threads_.emplace_back([this, fd] {
          ServeConnection(fd);
          std::lock_guard lock(mutex_);
          std::erase(open_, fd);
          close(fd);
        });
        continue;
      }
      connection_ = fd;
      if (!stopping_) ServeConnection(fd);
      connection_ = -1;
      close(fd);
    }
  }

  void ServeConnection(int fd) {
    std::string buffer;
    char chunk[65536];
    while (true) {
      size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0) return;
        buffer.append(chunk, n);
      }
      ServerRequest request{buffer.substr(0, end + 4), {}};
      buffer.erase(0, end + 4);
      size_t length = 0;
      if (size_t at = request.head.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(request.head.substr(at + 16));
      }
      while (buffer.size() < length) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0) return;
        buffer.append(chunk, n);
      }
      request.body = buffer.substr(0, length);
      buffer.erase(0, length);
      const ServerReply reply = handler_(request);
      for (size_t sent = 0; sent < reply.bytes.size();) {
        const ssize_t n = write(fd, reply.bytes.data() + sent, reply.bytes.size() - sent);
        if (n <= 0) return;
        sent += n;
      }
      if (reply.stall_ms) std::this_thread::sleep_for(std::chrono::milliseconds(reply.stall_ms));
      if (reply.reset) {
        linger hard{1, 0};  // RST instead of FIN
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        return;
      }
    }
  }

  std::function<ServerReply(const ServerRequest&)> handler_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> connection_{-1};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  bool concurrent_;
  std::mutex mutex_;
  std::vector<int> open_;  // connections being served (concurrent)
  std::vector<std::thread> connection_threads_;
};

}  // namespace walstore::http::test
