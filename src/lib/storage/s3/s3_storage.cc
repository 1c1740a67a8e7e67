// The Storage interface over S3: reading in s3_reader.cc, writing in
// s3_writer.cc, requests in s3_request.cc; removal is here.
#include "storage/s3/s3_storage.h"

#include <openssl/evp.h>
#include <walstore/error.h>

#include <algorithm>

#include "storage/s3/s3_reader.h"
#include "storage/s3/s3_request.h"
#include "storage/s3/s3_writer.h"
#include "storage/s3/s3_xml.h"

namespace walstore {
namespace {

// The Content-MD5 header value of `data` (DeleteObjects requires one).
std::string Md5Base64(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  unsigned char encoded[64];
  const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(length));
  return std::string(reinterpret_cast<char*>(encoded), n);
}

class S3Storage : public Storage {
 public:
  S3Storage(const Config& config, std::string bucket, std::string prefix, const S3Tuning& tuning)
      : requests_(config.s3, std::move(bucket), std::move(prefix)),
        reader_(requests_, tuning.list_page_size),
        delete_batch_size_(static_cast<size_t>(std::max(1, tuning.delete_batch_size))) {}

  std::optional<ObjectInfo> Stat(const std::string& key) override { return reader_.Stat(key); }

  std::unique_ptr<ReadStream> OpenRead(const std::string& key) override {
    return reader_.OpenRead(key);
  }

  std::unique_ptr<ObjectWriter> Create(const std::string& key,
                                       const WriteOptions& options) override {
    return s3::CreateObjectWriter(requests_, key, options);
  }

  void List(const std::string& prefix,
            const std::function<void(const ObjectInfo&)>& visit) override {
    reader_.List(prefix, visit);
  }

  std::vector<std::string> ListChildren(const std::string& prefix, size_t limit) override {
    return reader_.ListChildren(prefix, limit);
  }

  std::vector<ObjectInfo> ListObjectsAfter(const std::string& prefix, const std::string& after,
                                           size_t limit) override {
    return reader_.ListObjectsAfter(prefix, after, limit);
  }

  bool Remove(const std::string& key) override {
    if (!Stat(key)) return false;
    const http::Response response =
        requests_.Send({"DELETE", requests_.FullKey(key)}, "DELETE " + key);
    if (response.status != 204 && response.status != 200) {
      requests_.FailResponse(response, "DELETE " + key);
    }
    return true;
  }

  void RemoveMany(const std::vector<std::string>& keys) override {
    for (size_t start = 0; start < keys.size(); start += delete_batch_size_) {
      std::vector<std::string> full;
      for (size_t i = start; i < std::min(keys.size(), start + delete_batch_size_); ++i) {
        ValidateKey(keys[i]);
        full.push_back(requests_.FullKey(keys[i]));
      }
      const std::string body = s3::DeleteRequestBody(full);
      const std::string what = fmt::format("delete {} objects from {}", full.size(), Describe());
      const http::Response response = requests_.Send(
          {"POST", "", {{"delete", ""}}, {{"content-md5", Md5Base64(body)}}, &body}, what);
      if (response.status != 200) requests_.FailResponse(response, what);
      const std::vector<std::string> errors = s3::ParseDeleteErrors(response.body);
      if (!errors.empty()) {
        Fail(ErrorCode::kStorage, "{}: {} keys not deleted, e.g. {}", what, errors.size(),
             errors.front());
      }
    }
  }

  std::optional<std::vector<Leftover>> ListLeftovers(int64_t min_age_seconds) override {
    return s3::ListIncompleteUploads(requests_, min_age_seconds);
  }

  bool RemoveLeftover(const Leftover& leftover) override {
    return s3::AbortIncompleteUpload(requests_, leftover);
  }

  std::string Describe() const override { return requests_.Describe(); }

 private:
  // Declared first: the reader and every stream and writer refer to it.
  s3::RequestSender requests_;
  s3::BucketReader reader_;
  size_t delete_batch_size_;
};

}  // namespace

std::unique_ptr<Storage> OpenS3Storage(const Config& config, const std::string& bucket,
                                       const std::string& prefix, const S3Tuning& tuning) {
  if (bucket.empty()) Fail(ErrorCode::kConfig, "s3:// repository URL without a bucket name");
  return std::make_unique<S3Storage>(config, bucket, prefix, tuning);
}

std::unique_ptr<Storage> OpenS3Storage(const Config& config, const std::string& bucket,
                                       const std::string& prefix) {
  return OpenS3Storage(config, bucket, prefix, S3Tuning{});
}

}  // namespace walstore
