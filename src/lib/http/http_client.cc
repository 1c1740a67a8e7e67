#include "http/http_client.h"

#include "http/curl_api.h"
#include <walstore/error.h>
#include <walstore/number.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <mutex>

#include "http/text.h"

namespace walstore::http {
namespace {

std::string HostOf(std::string_view url) {
  size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  const size_t end = url.find_first_of("/?", start);
  return std::string(url.substr(start, end == std::string_view::npos ? end : end - start));
}

bool IsTlsFailure(CURLcode code) {
  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return true;
    default:
      return false;
  }
}

// Turns a failed transfer into an Error(kNetwork) that says what to fix.
[[noreturn]] void FailTransport(CURLcode code, const std::string& detail, const std::string& url,
                                const ClientOptions& options) {
  const std::string host = HostOf(url);
  const std::string what = detail.empty() ? Curl().easy_strerror(code) : detail;
  if (code == CURLE_COULDNT_RESOLVE_HOST) {
    throw Error(ErrorCode::kNetwork,
                fmt::format("could not resolve host {}: check the endpoint ({})", host, what),
                "set [s3] endpoint or AWS_ENDPOINT_URL to a host name this machine can resolve");
  }
  if (IsTlsFailure(code)) {
    throw Error(
        ErrorCode::kTls, fmt::format("TLS failure talking to {}: {}", host, what),
        options.ca_bundle.empty()
            ? "if the endpoint uses a private CA or a self-signed certificate, set [s3] "
              "ca_bundle to its PEM file, or ca_path to a directory of hashed CA certificates "
              "(verify_tls = false disables the check, for tests only)"
            : fmt::format("check that [s3] ca_bundle ({}) holds the CA that signed {}'s "
                          "certificate (verify_tls = false disables the check, for tests only)",
                          options.ca_bundle, host));
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    Fail(ErrorCode::kNetwork,
         "timed out talking to {} ({}): no connection within {} s or under 1 KiB/s for {} s", host,
         what, options.connect_timeout_seconds, options.low_speed_seconds);
  }
  if (code == CURLE_COULDNT_CONNECT) {
    throw Error(ErrorCode::kNetwork, fmt::format("could not connect to {}: {}", host, what),
                "check that the S3 endpoint is up and its address and port are right");
  }
  Fail(ErrorCode::kNetwork, "request to {} failed: {}", host, what);
}

// A file name as `openssl rehash` makes them: 8 hex digits, '.', a digit.
bool IsHashName(std::string_view name) {
  return name.size() == 10 && name[8] == '.' && name[9] >= '0' && name[9] <= '9' &&
         std::all_of(name.begin(), name.begin() + 8,
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// libcurl's built-in CA directory (CURLINFO_CAPATH) when it holds
// certificates named by subject hash, else "".  Looked up once.
const std::string& SystemCaDirectory(CURL* easy) {
  static const std::string directory = [easy] {
    char* path = nullptr;
    if (Curl().easy_getinfo(easy, CURLINFO_CAPATH, &path) != CURLE_OK || path == nullptr) {
      return std::string();
    }
    DIR* dir = opendir(path);
    if (dir == nullptr) return std::string();
    bool hashed = false;
    while (const dirent* entry = readdir(dir)) {
      if (IsHashName(entry->d_name)) {
        hashed = true;
        break;
      }
    }
    closedir(dir);
    return hashed ? std::string(path) : std::string();
  }();
  return directory;
}

// Set once a certificate failed to verify against the system CA directory:
// from then on the process trusts libcurl's system bundle, as libcurl would.
std::atomic<bool> g_system_ca_directory_failed{false};

}  // namespace

std::optional<std::string> Response::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

struct Client::Impl {
  ClientOptions options;
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  curl_slist* header_list = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};

  // State of the current transfer.
  std::string url;
  bool attached = false;  // easy is in multi
  bool collect = false;   // body goes to response.body instead of pending
  bool headers_done = false;
  bool done = false;
  bool body_too_large = false;  // a collected body went over max_collected_body
  CURLcode result = CURLE_OK;
  Response response;
  std::string pending;  // body bytes not yet handed out by ReadBody
  size_t pending_pos = 0;
  ReadStream* upload = nullptr;
  bool upload_started = false;
  bool system_ca_directory = false;  // verifying against it alone

  static size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    const std::string_view line(data, size * count);
    if (line.starts_with("HTTP/")) {  // a new response (after 100 Continue, redirects)
      self->response.headers.clear();
      // "HTTP/1.1 200 OK": three digits after the first space; 0 (no valid status) otherwise.
      const size_t space = line.find(' ');
      self->response.status =
          space == std::string_view::npos
              ? 0
              : TryParseNumber<long>(line.substr(space + 1, 3)).value_or(0);
    } else if (TrimSpace(line).empty()) {
      if (self->response.status >= 200) self->headers_done = true;
    } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      self->response.headers.emplace_back(AsciiLower(TrimSpace(line.substr(0, colon))),
                                          std::string(TrimSpace(line.substr(colon + 1))));
    }
    return size * count;
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (self->collect && self->response.body.size() + size * count > self->options.max_collected_body) {
      self->body_too_large = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    (self->collect ? self->response.body : self->pending).append(data, size * count);
    return size * count;
  }

  [[noreturn]] void FailBodyTooLarge() const {
    throw Error(ErrorCode::kStorage,
                fmt::format("{} sent an HTTP {} reply body of more than {} bytes, more than such "
                            "a reply can be; not reading it",
                            HostOf(url), response.status, options.max_collected_body),
                "check that the endpoint is an S3 service (not a web server or proxy page)");
  }

  static size_t OnUpload(char* buffer, size_t size, size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->upload_started = true;
    return self->upload->Read(MutableBytes(reinterpret_cast<uint8_t*>(buffer), size * count));
  }

  void Detach() {
    if (attached) Curl().multi_remove_handle(multi, easy);
    attached = false;
  }

  void Begin(const Request& request, bool collect_body) {
    Detach();
    url = request.url;
    collect = collect_body;
    headers_done = done = body_too_large = false;
    result = CURLE_OK;
    response = Response{};
    pending.clear();
    pending_pos = 0;
    upload = request.body;
    upload_started = false;
    error_buffer[0] = '\0';

    Curl().easy_reset(easy);  // keeps the connection cache
    Curl().slist_free_all(header_list);
    header_list = Curl().slist_append(nullptr, "Expect:");  // no 100-continue round trip
    for (const auto& [name, value] : request.headers) {
      header_list = Curl().slist_append(header_list, fmt::format("{}: {}", name, value).c_str());
    }
    Curl().easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    Curl().easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);  // S3 keys are sent as signed
    Curl().easy_setopt(easy, CURLOPT_HTTPHEADER, header_list);
    Curl().easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    Curl().easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
    Curl().easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
    Curl().easy_setopt(easy, CURLOPT_HEADERDATA, this);
    Curl().easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Impl::OnBody);
    Curl().easy_setopt(easy, CURLOPT_WRITEDATA, this);
    Curl().easy_setopt(easy, CURLOPT_BUFFERSIZE, 256L * 1024);
    Curl().easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    Curl().easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    Curl().easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_timeout_seconds * 1000));
    Curl().easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    Curl().easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>(options.low_speed_seconds)));
    Curl().easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
    Curl().easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
    SetTrust();

    if (request.method == "HEAD") {
      Curl().easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (request.method != "GET") {
      Curl().easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    if (request.body != nullptr) {
      Curl().easy_setopt(easy, CURLOPT_UPLOAD, 1L);  // PUT semantics; method set above
      Curl().easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_size));
      Curl().easy_setopt(easy, CURLOPT_READFUNCTION, &Impl::OnUpload);
      Curl().easy_setopt(easy, CURLOPT_READDATA, this);
    }
    Curl().multi_add_handle(multi, easy);
    attached = true;
  }

  // Whom to trust (see ClientOptions).  easy_reset restored libcurl's
  // defaults: its system bundle (CAINFO) and directory (CAPATH).
  void SetTrust() {
    system_ca_directory = false;
    if (!options.ca_bundle.empty()) {
      Curl().easy_setopt(easy, CURLOPT_CAINFO, options.ca_bundle.c_str());
    }
    if (!options.ca_path.empty()) {
      Curl().easy_setopt(easy, CURLOPT_CAPATH, options.ca_path.c_str());
      if (options.ca_bundle.empty()) Curl().easy_setopt(easy, CURLOPT_CAINFO, nullptr);
    }
    if (options.ca_bundle.empty() && options.ca_path.empty() && options.verify_tls &&
        !g_system_ca_directory_failed && !SystemCaDirectory(easy).empty()) {
      // The directory alone: OpenSSL opens the few CA files a chain needs
      // instead of parsing the whole bundle.
      Curl().easy_setopt(easy, CURLOPT_CAINFO, nullptr);
      system_ca_directory = true;
    }
  }

  // After a transfer failed: true when it failed to verify the peer against
  // the system CA directory alone before sending any body, so it may be sent
  // again as it was, now trusting the system bundle.
  bool RetryWithSystemBundle() {
    if (!system_ca_directory || result != CURLE_PEER_FAILED_VERIFICATION || upload_started) {
      return false;
    }
    g_system_ca_directory_failed = true;
    return true;
  }

  // Lets curl make progress; returns after some progress or up to 1 s idle.
  void Drive() {
    const size_t before = pending.size() + response.body.size();
    const bool had_headers = headers_done;
    int running = 0;
    Curl().multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* message = Curl().multi_info_read(multi, &queued)) {
      if (message->msg == CURLMSG_DONE) {
        done = true;
        result = message->data.result;
      }
    }
    if (done || had_headers != headers_done || before != pending.size() + response.body.size()) {
      return;
    }
    Curl().multi_poll(multi, nullptr, 0, 1000, nullptr);
  }

  // Sends `request`, collecting the body, and runs it to the end, once more
  // when RetryWithSystemBundle() says so; false on a transport failure.
  bool Run(const Request& request) {
    Begin(request, true);
    if (RunToEnd()) return true;
    if (!RetryWithSystemBundle()) return false;
    Begin(request, true);
    return RunToEnd();
  }

  // Runs the current transfer to its end; false on a transport failure.
  bool RunToEnd() {
    while (!done) Drive();
    Detach();
    return result == CURLE_OK;
  }

  [[noreturn]] void FailCurrent() {
    Detach();
    if (body_too_large) FailBodyTooLarge();
    FailTransport(result, error_buffer, url, options);
  }
};

Client::Client(const ClientOptions& options) : impl_(std::make_unique<Impl>()) {
    impl_->options = options;
  impl_->easy = Curl().easy_init();
  impl_->multi = Curl().multi_init();
  if (impl_->easy == nullptr || impl_->multi == nullptr) {
    Fail(ErrorCode::kInternal, "could not initialise libcurl");
  }
}

Client::~Client() {
  impl_->Detach();
  Curl().multi_cleanup(impl_->multi);
  Curl().easy_cleanup(impl_->easy);
  Curl().slist_free_all(impl_->header_list);
}

Response Client::Perform(const Request& request) {
  if (!impl_->Run(request)) impl_->FailCurrent();
  return std::move(impl_->response);
}

std::optional<Response> Client::PerformNoThrow(const Request& request) noexcept {
  if (!impl_->Run(request)) return std::nullopt;
  return std::move(impl_->response);
}

Response Client::Start(const Request& request) {
  for (int attempt = 0;; ++attempt) {
    impl_->Begin(request, false);
    while (!impl_->headers_done && !impl_->done) impl_->Drive();
    if (!impl_->done || impl_->result == CURLE_OK) break;
    if (attempt > 0 || !impl_->RetryWithSystemBundle()) impl_->FailCurrent();
  }
  return impl_->response;
}

std::string Client::ReadRestOfBody() {
  std::string body;
  uint8_t buffer[16384];
  while (size_t n = ReadBody(MutableBytes(buffer, sizeof buffer))) {
    if (body.size() + n > impl_->options.max_collected_body) {
      impl_->Detach();  // abandons the rest of the transfer and its connection
      impl_->FailBodyTooLarge();
    }
    body.append(reinterpret_cast<char*>(buffer), n);
  }
  return body;
}

size_t Client::ReadBody(MutableBytes out) {
  Impl& s = *impl_;
  while (s.pending_pos == s.pending.size()) {
    s.pending.clear();
    s.pending_pos = 0;
    if (s.done) {
      if (s.result != CURLE_OK) s.FailCurrent();
      s.Detach();
      return 0;
    }
    s.Drive();
  }
  const size_t n = std::min(out.size(), s.pending.size() - s.pending_pos);
  std::memcpy(out.data(), s.pending.data() + s.pending_pos, n);
  s.pending_pos += n;
  return n;
}

}  // namespace walstore::http
