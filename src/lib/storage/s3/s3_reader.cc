#include "storage/s3/s3_reader.h"

#include <walstore/error.h>

#include <algorithm>
#include <ctime>
#include <set>

namespace walstore::s3 {

namespace {

std::time_t ParseHttpDate(const std::string& text) {
  std::tm tm{};
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return 0;
  return timegm(&tm);
}

// A streamed GET.  A transfer that fails midway is resumed from the current
// offset with a Range request pinned to the object's ETag.
class ObjectReadStream : public ReadStream {
 public:
  ObjectReadStream(RequestSender& requests, std::string key, ClientPool::Lease client,
                   uint64_t size, std::string etag)
      : requests_(requests),
        key_(std::move(key)),
        client_(std::move(client)),
        size_(size),
        etag_(std::move(etag)) {}

  size_t Read(MutableBytes out) override {
    size_t n = 0;
    requests_.Retry("GET " + key_, [&] {
      if (!streaming_) {
        if (offset_ >= size_) return;  // failed after the last byte: nothing to resume
        Resume();
      }
      streaming_ = false;
      n = client_->ReadBody(out);
      streaming_ = true;
    });
    offset_ += n;
    return n;
  }

 private:
  void Resume() {
    Call call{"GET",
              requests_.FullKey(key_),
              {},
              {{"range", fmt::format("bytes={}-", offset_)}, {"if-match", etag_}}};
    const http::Response response = client_->Start(requests_.Build(call, std::string(kEmptySha256)));
    // A store that ignores Range sends everything: fine only from the start.
    if (response.status == 206 || (response.status == 200 && offset_ == 0)) {
      streaming_ = true;
      return;
    }
    http::Response error = response;
    error.body = client_->ReadRestOfBody();
    requests_.ThrowIfTransient(error, "GET " + key_);
    if (response.status == 412) {
      Fail(ErrorCode::kStorage, "{} changed on {} while being read", key_, requests_.Describe());
    }
    requests_.FailResponse(error, "GET " + key_);
  }

  RequestSender& requests_;
  std::string key_;
  ClientPool::Lease client_;
  uint64_t size_;
  std::string etag_;
  uint64_t offset_ = 0;
  bool streaming_ = true;
};

}  // namespace

std::optional<ObjectInfo> HeadObject(RequestSender& requests, const std::string& key) {
  ValidateKey(key);
  const http::Response response = requests.Send({"HEAD", requests.FullKey(key)}, "HEAD " + key);
  if (response.status == 404) return std::nullopt;
  if (response.status != 200) requests.FailResponse(response, "HEAD " + key);
  ObjectInfo info;
  info.key = key;
  info.size = ContentLength(response);
  info.modified = ParseHttpDate(response.Header("last-modified").value_or(""));
  for (const auto& [name, value] : response.headers) {
    if (name.starts_with(kMetadataHeaderPrefix)) {
      info.metadata[name.substr(kMetadataHeaderPrefix.size())] = value;
    }
  }
  return info;
}

BucketReader::BucketReader(RequestSender& requests, int list_page_size)
    : requests_(requests), list_page_size_(list_page_size) {}

std::optional<ObjectInfo> BucketReader::Stat(const std::string& key) {
  std::optional<ObjectInfo> info = HeadObject(requests_, key);
  if (!info) ConfirmBucket();
  return info;
}

std::unique_ptr<ReadStream> BucketReader::OpenRead(const std::string& key) {
  ValidateKey(key);
  std::unique_ptr<ReadStream> reader;
  const std::string what = "GET " + key;
  requests_.Retry(what, [&] {
    ClientPool::Lease client = requests_.AcquireClient();
    http::Response response =
        client->Start(requests_.Build({"GET", requests_.FullKey(key)}, std::string(kEmptySha256)));
    if (response.status == 200) {
      reader = std::make_unique<ObjectReadStream>(requests_, key, std::move(client),
                                                  ContentLength(response),
                                                  response.Header("etag").value_or(""));
      return;
    }
    response.body = client->ReadRestOfBody();
    // Absence only when S3 says so: an HTML 404 from a proxy or a web
    // server, or NoSuchBucket, is an error.
    if (response.status == 404 && ParseErrorBody(response.body).code == "NoSuchKey") {
      bucket_confirmed_ = true;
      return;
    }
    requests_.ThrowIfTransient(response, what);
    requests_.FailResponse(response, what);
  });
  return reader;
}

void BucketReader::List(const std::string& prefix,
                        const std::function<void(const ObjectInfo&)>& visit) {
  const std::string strip = requests_.KeyPrefix();
  std::string token;
  std::set<std::string> tokens_seen;
  do {
    const ListPage page = FetchListPage(prefix, list_page_size_, "", token);
    for (const ListedObject& object : page.objects) {
      if (!object.key.starts_with(strip)) continue;
      visit(ObjectInfo{object.key.substr(strip.size()), object.size, object.modified, {}});
    }
    token = page.next_token;
    if (!token.empty() && !tokens_seen.insert(token).second) {
      throw Error(ErrorCode::kStorage,
                  fmt::format("listing {} at {} returned a continuation token it had already "
                              "returned: the listing would never end",
                              requests_.Describe(), requests_.BaseUrl()),
                  "the S3 endpoint does not implement ListObjectsV2 correctly: check the "
                  "endpoint, or report it to its vendor");
    }
  } while (!token.empty());
}

std::vector<std::string> BucketReader::ListChildren(const std::string& prefix, size_t limit) {
  const std::string full_prefix = requests_.KeyPrefix() + prefix;
  const int max_keys = static_cast<int>(std::clamp<size_t>(limit, 1, kMaxKeysPerRequest));
  const ListPage page = FetchListPage(prefix, max_keys, "/", "");
  std::set<std::string> names;
  for (const std::string& common : page.common_prefixes) {
    if (common.starts_with(full_prefix) && common.size() > full_prefix.size() + 1) {
      names.insert(common.substr(full_prefix.size(), common.size() - full_prefix.size() - 1));
    }
  }
  for (const ListedObject& object : page.objects) {
    if (object.key.starts_with(full_prefix)) names.insert(object.key.substr(full_prefix.size()));
  }
  std::vector<std::string> first(names.begin(), names.end());
  if (first.size() > limit) first.resize(limit);
  return first;
}

std::vector<ObjectInfo> BucketReader::ListObjectsAfter(const std::string& prefix,
                                                      const std::string& after, size_t limit) {
  const std::string strip = requests_.KeyPrefix();
  const int max_keys = static_cast<int>(std::clamp<size_t>(limit, 1, kMaxKeysPerRequest));
  const ListPage page =
      FetchListPage(prefix, max_keys, "", "", after.empty() ? "" : strip + after);
  std::vector<ObjectInfo> found;
  for (const ListedObject& object : page.objects) {
    // An endpoint that ignores start-after lists from the start: drop those.
    if (object.key.starts_with(strip + prefix) && object.key.substr(strip.size()) > after) {
      found.push_back({object.key.substr(strip.size()), object.size, object.modified, {}});
    }
  }
  if (found.size() > limit) found.resize(limit);
  return found;
}

ListPage BucketReader::FetchListPage(const std::string& prefix, int max_keys,
                                     const std::string& delimiter, const std::string& token,
                                     const std::string& start_after) {
  Call call{"GET", "", {{"list-type", "2"}, {"prefix", requests_.KeyPrefix() + prefix}}};
  if (max_keys != kMaxKeysPerRequest) call.query.emplace_back("max-keys", std::to_string(max_keys));
  if (!delimiter.empty()) call.query.emplace_back("delimiter", delimiter);
  if (!token.empty()) call.query.emplace_back("continuation-token", token);
  if (!start_after.empty()) call.query.emplace_back("start-after", start_after);
  const std::string what = "list " + requests_.Describe();
  const http::Response response = requests_.Send(call, what);
  if (response.status != 200) requests_.FailResponse(response, what);
  ListPage page = ParseListPage(response.body);
  bucket_confirmed_ = true;
  return page;
}

void BucketReader::ConfirmBucket() {
  if (!bucket_confirmed_) FetchListPage("", 1, "", "");
}

}  // namespace walstore::s3
