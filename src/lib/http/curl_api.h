// libcurl, loaded on first use.  Internal.
//
// walpush and walfetch start once per WAL file, and most of them talk to a
// filesystem repository: linking libcurl (and through it GnuTLS, Kerberos,
// LDAP, ...) would cost every one of them about 5 ms of start-up.  So the
// binaries do not link it; the HTTP client loads libcurl.so.4 with dlopen()
// the first time an s3:// repository needs it.
#pragma once

#include <curl/curl.h>

namespace walstore::http {

struct CurlApi {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_reset) easy_reset;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_multi_init) multi_init;
  decltype(&::curl_multi_cleanup) multi_cleanup;
  decltype(&::curl_multi_add_handle) multi_add_handle;
  decltype(&::curl_multi_remove_handle) multi_remove_handle;
  decltype(&::curl_multi_perform) multi_perform;
  decltype(&::curl_multi_poll) multi_poll;
  decltype(&::curl_multi_info_read) multi_info_read;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};

// Loads libcurl once (thread-safe) and calls curl_global_init.  Throws
// Error(kConfig) naming the library when it cannot be loaded.
const CurlApi& Curl();

}  // namespace walstore::http
