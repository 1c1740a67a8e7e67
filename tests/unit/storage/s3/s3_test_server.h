// Helpers for the unit tests of the S3 backend against a fake endpoint on
// loopback (tests/unit/http/test_server.h).
#pragma once

#include <walstore/config.h>
#include <walstore/storage.h>

#include <functional>
#include <memory>
#include <string>

#include "http/test_server.h"
#include "storage/s3/s3_storage.h"

namespace walstore::s3::test {

// A raw HTTP/1.1 reply; `extra_headers` are "Name: value\r\n" lines.
inline std::string Reply(const std::string& status, const std::string& body,
                         const std::string& extra_headers = "") {
  return "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + body;
}

inline std::string S3Error(const std::string& code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code +
         "</Code><Message>m</Message></Error>";
}

// An S3 backend for bucket "b", prefix "p", at `server`; one attempt per
// request.  `adjust` may change the settings first.
inline std::unique_ptr<Storage> OpenAt(const http::test::TestServer& server,
                                       const std::function<void(S3Settings&)>& adjust = {}) {
  Config config;
  config.s3.endpoint = server.Url("");
  config.s3.path_style = true;
  config.s3.access_key_id = "AKIDEXAMPLE";
  config.s3.secret_access_key = "secret";
  config.s3.max_attempts = 1;
  config.s3.retry_total_seconds = 5;
  if (adjust) adjust(config.s3);
  return OpenS3Storage(config, "b", "p");
}

}  // namespace walstore::s3::test
