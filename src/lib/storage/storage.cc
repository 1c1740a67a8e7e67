#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/storage.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "common/file_util.h"
#include "storage/posix/posix_storage.h"
#include "storage/s3/s3_storage.h"

namespace walstore {
namespace {

using SchemeOpener = std::function<std::unique_ptr<Storage>(const std::string& rest)>;

std::mutex g_schemes_mutex;
std::map<std::string, SchemeOpener>& RegisteredSchemes() {
  static auto* schemes = new std::map<std::string, SchemeOpener>();
  return *schemes;
}

}  // namespace

void RegisterStorageScheme(const std::string& scheme, SchemeOpener open) {
  std::lock_guard lock(g_schemes_mutex);
  if (open) {
    RegisteredSchemes()[scheme] = std::move(open);
  } else {
    RegisteredSchemes().erase(scheme);
  }
}

void Storage::RemoveMany(const std::vector<std::string>& keys) {
  for (const auto& key : keys) Remove(key);
}

bool Storage::AnyBelow(const std::string& prefix) {
  return !ListObjectsAfter(prefix, "", 1).empty();
}

std::vector<ObjectInfo> Storage::ListObjectsAfter(const std::string& prefix,
                                                  const std::string& after, size_t limit) {
  std::vector<ObjectInfo> found;
  List(prefix, [&](const ObjectInfo& info) {
    if (found.size() < limit && info.key > after) found.push_back(info);
  });
  return found;
}

std::optional<std::vector<Leftover>> Storage::ListLeftovers(int64_t /*min_age_seconds*/) {
  return std::vector<Leftover>{};
}

bool Storage::RemoveLeftover(const Leftover& /*leftover*/) { return false; }

InitResult Storage::Initialize(bool /*create_parents*/) {
  ListChildren("", 1);  // throws unless the location answers
  return InitResult::kNothingToCreate;
}

void ValidateKey(const std::string& key) {
  bool valid = !key.empty() && key.front() != '/' && key.back() != '/' &&
               key.find('\0') == std::string::npos;
  size_t start = 0;
  while (valid && start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    const std::string_view part(key.data() + start, end - start);
    // No ".", "..", and nothing the posix backend would take for one of its
    // hidden temp files (".<name>.walstore-tmp.*"), so no key is ever hidden.
    valid = !part.empty() && part != "." && part != ".." &&
            !(part.front() == '.' && part.find(kTempMarker) != std::string_view::npos);
    start = end + 1;
  }
  if (!valid) Fail(ErrorCode::kInternal, "invalid repository key \"{}\"", key);
}

namespace {

// A repository URL taken apart the one way OpenStorage and
// NormalizeRepositoryUrl both use.
struct RepositoryUrl {
  enum class Kind { kPosix, kS3, kOther, kMalformed } kind = Kind::kMalformed;
  std::string path;    // posix: the absolute path, no trailing '/'
  std::string bucket;  // s3
  std::string prefix;  // s3: without leading or trailing '/'
};

RepositoryUrl ParseRepositoryUrl(const std::string& url) {
  auto strip = [](std::string text) {
    while (!text.empty() && text.front() == '/') text.erase(0, 1);
    while (!text.empty() && text.back() == '/') text.pop_back();
    return text;
  };
  RepositoryUrl parsed;
  if (url.empty()) return parsed;
  if (url.rfind("file://", 0) == 0 || url.front() == '/') {
    parsed.path = url.front() == '/' ? url : url.substr(7);
    if (parsed.path.empty() || parsed.path.front() != '/') return parsed;
    while (parsed.path.size() > 1 && parsed.path.back() == '/') parsed.path.pop_back();
    parsed.kind = RepositoryUrl::Kind::kPosix;
  } else if (url.rfind("s3://", 0) == 0) {
    const std::string rest = url.substr(5);
    const size_t slash = rest.find('/');
    parsed.bucket = rest.substr(0, slash);
    parsed.prefix = slash == std::string::npos ? "" : strip(rest.substr(slash + 1));
    if (!parsed.bucket.empty()) parsed.kind = RepositoryUrl::Kind::kS3;
  } else if (url.find("://") != std::string::npos) {
    parsed.kind = RepositoryUrl::Kind::kOther;
  }
  return parsed;
}

}  // namespace

std::optional<std::string> NormalizeRepositoryUrl(const std::string& url) {
  const RepositoryUrl parsed = ParseRepositoryUrl(url);
  switch (parsed.kind) {
    case RepositoryUrl::Kind::kPosix: {
      std::string path = std::filesystem::path(parsed.path).lexically_normal().string();
      while (path.size() > 1 && path.back() == '/') path.pop_back();
      return "file://" + path;
    }
    case RepositoryUrl::Kind::kS3: {
      std::string prefix;
      size_t start = 0;
      while (start <= parsed.prefix.size()) {
        size_t end = parsed.prefix.find('/', start);
        if (end == std::string::npos) end = parsed.prefix.size();
        if (end > start) prefix += "/" + parsed.prefix.substr(start, end - start);
        start = end + 1;
      }
      return "s3://" + parsed.bucket + prefix;
    }
    case RepositoryUrl::Kind::kOther: {
      std::string text = url;
      while (!text.empty() && text.back() == '/') text.pop_back();
      return text;
    }
    case RepositoryUrl::Kind::kMalformed:
      break;
  }
  return std::nullopt;
}

bool SameRepositoryUrl(const std::string& a, const std::string& b) {
  const auto na = NormalizeRepositoryUrl(a);
  const auto nb = NormalizeRepositoryUrl(b);
  return na && nb ? *na == *nb : a == b;
}

std::unique_ptr<Storage> OpenStorage(const Config& config) {
  const std::string& url = config.repo_url;
  if (url.empty()) {
    throw Error(ErrorCode::kConfig, "no repository configured",
                "set repository in the config file or WALSTORE_REPO, e.g. "
                "file:///var/lib/walstore or s3://bucket/prefix");
  }
  const RepositoryUrl parsed = ParseRepositoryUrl(url);
  if (url.rfind("file://", 0) == 0 || url.front() == '/') {
    if (parsed.kind != RepositoryUrl::Kind::kPosix) {
      Fail(ErrorCode::kConfig, "repository \"{}\": file:// URLs need an absolute path "
           "(file:///var/lib/walstore)", url);
    }
    return OpenPosixStorage(parsed.path);
  }
  if (url.rfind("s3://", 0) == 0) {
    if (parsed.kind != RepositoryUrl::Kind::kS3) {
      Fail(ErrorCode::kConfig, "repository \"{}\" names no bucket", url);
    }
    return OpenS3Storage(config, parsed.bucket, parsed.prefix);
  }
  if (const size_t colon = url.find("://"); colon != std::string::npos) {
    std::lock_guard lock(g_schemes_mutex);
    const auto registered = RegisteredSchemes().find(url.substr(0, colon));
    if (registered != RegisteredSchemes().end()) return registered->second(url.substr(colon + 3));
  }
  Fail(ErrorCode::kConfig, "repository \"{}\": unknown scheme (use file:///path or s3://bucket/prefix)",
       url);
}

}  // namespace walstore
