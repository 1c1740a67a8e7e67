#include "storage/memory/memory_storage.h"

#include <walstore/error.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <mutex>
#include <set>

namespace walstore {
namespace {

struct Object {
  std::string data;
  std::map<std::string, std::string> metadata;
  std::time_t modified = 0;
};

struct Store {
  std::mutex mutex;
  std::map<std::string, Object> objects;
};

std::mutex g_stores_mutex;
std::map<std::string, std::shared_ptr<Store>>& Stores() {
  static auto* stores = new std::map<std::string, std::shared_ptr<Store>>();
  return *stores;
}

std::shared_ptr<Store> StoreNamed(const std::string& name) {
  std::lock_guard lock(g_stores_mutex);
  auto& store = Stores()[name];
  if (!store) store = std::make_shared<Store>();
  return store;
}

class MemoryReader : public ReadStream {
 public:
  explicit MemoryReader(std::string data) : data_(std::move(data)), stream_(data_) {}
  size_t Read(MutableBytes out) override { return stream_.Read(out); }

 private:
  std::string data_;
  MemoryReadStream stream_;
};

class MemoryWriter : public ObjectWriter {
 public:
  MemoryWriter(std::shared_ptr<Store> store, std::string key, WriteOptions options)
      : store_(std::move(store)), key_(std::move(key)), options_(std::move(options)) {}
  void Write(Bytes data) override { buffer_.Write(data); }
  void RewriteHead(Bytes head) override {
    if (head.size() > buffer_.data().size()) Fail(ErrorCode::kInternal, "rewrite past the end");
    std::copy(head.begin(), head.end(), buffer_.data().begin());
  }
  CommitResult Commit() override {
    std::lock_guard lock(store_->mutex);
    auto [it, inserted] = store_->objects.try_emplace(key_);
    if (!inserted && !options_.replace_existing) return CommitResult::kAlreadyExists;
    it->second = Object{std::move(buffer_.data()), options_.metadata, std::time(nullptr)};
    return CommitResult::kCreated;
  }

 private:
  std::shared_ptr<Store> store_;
  std::string key_;
  WriteOptions options_;
  StringWriteStream buffer_;
};

class MemoryStorage : public Storage {
 public:
  MemoryStorage(std::string name, std::shared_ptr<Store> store)
      : name_(std::move(name)), store_(std::move(store)) {}

  std::optional<ObjectInfo> Stat(const std::string& key) override {
    ValidateKey(key);
    std::lock_guard lock(store_->mutex);
    auto it = store_->objects.find(key);
    if (it == store_->objects.end()) return std::nullopt;
    return Info(it->first, it->second, true);
  }
  std::unique_ptr<ReadStream> OpenRead(const std::string& key) override {
    ValidateKey(key);
    std::lock_guard lock(store_->mutex);
    auto it = store_->objects.find(key);
    if (it == store_->objects.end()) return nullptr;
    return std::make_unique<MemoryReader>(it->second.data);
  }
  std::unique_ptr<ObjectWriter> Create(const std::string& key, const WriteOptions& options) override {
    ValidateKey(key);
    return std::make_unique<MemoryWriter>(store_, key, options);
  }
  void List(const std::string& prefix, const std::function<void(const ObjectInfo&)>& visit) override {
    std::vector<ObjectInfo> found;
    {
      std::lock_guard lock(store_->mutex);
      for (auto it = store_->objects.lower_bound(prefix);
           it != store_->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
        found.push_back(Info(it->first, it->second, false));
      }
    }
    for (const auto& info : found) visit(info);
  }
  bool AnyBelow(const std::string& prefix) override {
    std::lock_guard lock(store_->mutex);
    const auto it = store_->objects.lower_bound(prefix);
    return it != store_->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0;
  }
  std::vector<std::string> ListChildren(const std::string& prefix, size_t limit) override {
    std::set<std::string> names;
    std::lock_guard lock(store_->mutex);
    for (auto it = store_->objects.lower_bound(prefix);
         it != store_->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      const std::string rest = it->first.substr(prefix.size());
      names.insert(rest.substr(0, rest.find('/')));
    }
    std::vector<std::string> first(names.begin(), names.end());
    if (first.size() > limit) first.resize(limit);
    return first;
  }
  bool Remove(const std::string& key) override {
    ValidateKey(key);
    std::lock_guard lock(store_->mutex);
    return store_->objects.erase(key) > 0;
  }
  std::string Describe() const override { return "memory://" + name_; }

 private:
  static ObjectInfo Info(const std::string& key, const Object& object, bool with_metadata) {
    ObjectInfo info{key, object.data.size(), object.modified, {}};
    if (with_metadata) info.metadata = object.metadata;
    return info;
  }
  std::string name_;
  std::shared_ptr<Store> store_;
};

}  // namespace

std::unique_ptr<Storage> OpenMemoryStorage(const std::string& name) {
  return std::make_unique<MemoryStorage>(name, StoreNamed(name));
}

void RegisterMemoryStorage() {
  RegisterStorageScheme("memory", [](const std::string& name) { return OpenMemoryStorage(name); });
}

void ResetMemoryStorage(const std::string& name) {
  auto store = StoreNamed(name);
  std::lock_guard lock(store->mutex);
  store->objects.clear();
}

}  // namespace walstore
