#include "http/curl_api.h"

#include <dlfcn.h>
#include <walstore/error.h>

#include <mutex>

namespace walstore::http {
namespace {

constexpr const char* kLibrary = "libcurl.so.4";

template <typename F>
void Load(void* library, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(library, name));
  if (out == nullptr) Fail(ErrorCode::kConfig, "{} has no symbol {}: libcurl too old", kLibrary, name);
}

CurlApi LoadCurl() {
  void* library = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    throw Error(ErrorCode::kConfig,
                fmt::format("s3:// repositories need {}, which could not be loaded: {}", kLibrary,
                            why ? why : "unknown error"),
                "install it: apt-get install libcurl4");
  }
  CurlApi api{};
  Load(library, "curl_global_init", api.global_init);
  Load(library, "curl_easy_init", api.easy_init);
  Load(library, "curl_easy_cleanup", api.easy_cleanup);
  Load(library, "curl_easy_reset", api.easy_reset);
  Load(library, "curl_easy_setopt", api.easy_setopt);
  Load(library, "curl_easy_strerror", api.easy_strerror);
  Load(library, "curl_easy_getinfo", api.easy_getinfo);
  Load(library, "curl_multi_init", api.multi_init);
  Load(library, "curl_multi_cleanup", api.multi_cleanup);
  Load(library, "curl_multi_add_handle", api.multi_add_handle);
  Load(library, "curl_multi_remove_handle", api.multi_remove_handle);
  Load(library, "curl_multi_perform", api.multi_perform);
  Load(library, "curl_multi_poll", api.multi_poll);
  Load(library, "curl_multi_info_read", api.multi_info_read);
  Load(library, "curl_slist_append", api.slist_append);
  Load(library, "curl_slist_free_all", api.slist_free_all);
  api.global_init(CURL_GLOBAL_DEFAULT);
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const CurlApi& Curl() {
  static const CurlApi api = LoadCurl();  // a failed load throws and is tried again next time
  return api;
}

}  // namespace walstore::http
