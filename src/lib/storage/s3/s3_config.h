// Where an S3 repository lives and who we are to it: endpoint, addressing
// style and credentials, resolved from S3Settings.  Internal to the backend.
#pragma once

#include <walstore/config.h>

#include <string>

#include "storage/s3/sigv4.h"

namespace walstore::s3 {

struct Location {
  std::string scheme;       // "https" or "http"
  std::string host;         // Host header value: "s3.eu-west-1.amazonaws.com",
                            // "bucket.s3...", "127.0.0.1:9000"
  std::string path_prefix;  // "/bucket" with path-style addressing, else ""
  std::string region;
  bool path_style = false;

  // "http://127.0.0.1:9000", without a trailing '/'.
  std::string BaseUrl() const { return scheme + "://" + host; }
};

// Endpoint "" means AWS (https://s3.<region>.amazonaws.com).  Path-style
// addressing is used when settings.path_style says so or, when unset, for an
// IP address or localhost endpoint and for bucket names with dots (which do
// not match a wildcard TLS certificate); virtual-hosted otherwise.  Throws
// kConfig for a malformed endpoint.
Location ResolveLocation(const S3Settings& settings, const std::string& bucket);

}  // namespace walstore::s3
