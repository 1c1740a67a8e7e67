#include "storage/posix/posix_storage.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/error.h>

#include <algorithm>
#include <filesystem>
#include <cstring>
#include <cerrno>
#include <fcntl.h>
#include <vector>

#include "common/file_util.h"

namespace walstore {
namespace {

class PosixWriter : public ObjectWriter {
 public:
  explicit PosixWriter(const std::string& path) : file_(path, 0640, true) {}
  void Write(Bytes data) override { file_.Write(data); }
  CommitResult Commit() override {
    return file_.Publish(false) ? CommitResult::kCreated : CommitResult::kAlreadyExists;
  }
  void RewriteHead(Bytes head) override { file_.RewriteHead(head); }

 private:
  AtomicFileWriter file_;
};

// ".", ".." and AtomicFileWriter's hidden temp files (".<name>.walstore-tmp.*").
bool IsSkippedName(const char* name) {
  return std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0 ||
         (name[0] == '.' && std::strstr(name, kTempMarker) != nullptr);
}

class PosixStorage : public Storage {
 public:
  explicit PosixStorage(std::string root) : root_(std::move(root)) {}

  std::optional<ObjectInfo> Stat(const std::string& key) override {
    ValidateKey(key);
    struct stat st {};
    if (stat(PathOf(key).c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      FailErrno(errno, fmt::format("could not stat \"{}\"", PathOf(key)));
    }
    if (!S_ISREG(st.st_mode)) return std::nullopt;
    return ObjectInfo{key, static_cast<uint64_t>(st.st_size), st.st_mtime, {}};
  }

  std::unique_ptr<ReadStream> OpenRead(const std::string& key) override {
    ValidateKey(key);
    const std::string path = PathOf(key);
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return nullptr;
      FailErrno(errno, fmt::format("could not open \"{}\"", path));
    }
    auto reader = std::make_unique<FileReader>(fd, path);
    struct stat st {};
    if (fstat(fd, &st) != 0) FailErrno(errno, fmt::format("could not stat \"{}\"", path));
    if (!S_ISREG(st.st_mode)) return nullptr;  // a directory is not an object
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return reader;
  }

  std::unique_ptr<ObjectWriter> Create(const std::string& key, const WriteOptions&) override {
    ValidateKey(key);
    return std::make_unique<PosixWriter>(PathOf(key));
  }

  void List(const std::string& prefix, const std::function<void(const ObjectInfo&)>& visit) override {
    // Walk the deepest directory the prefix fully names, keep matching keys.
    const size_t slash = prefix.rfind('/');
    const std::string dir_key = slash == std::string::npos ? "" : prefix.substr(0, slash);
    std::vector<ObjectInfo> found;
    Walk(dir_key, prefix, found);
    std::sort(found.begin(), found.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    for (const auto& info : found) visit(info);
  }

  bool Remove(const std::string& key) override {
    ValidateKey(key);
    if (unlink(PathOf(key).c_str()) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return false;
      FailErrno(errno, fmt::format("could not remove \"{}\"", PathOf(key)));
    }
    return true;
  }

  std::optional<std::vector<Leftover>> ListLeftovers(int64_t min_age_seconds) override {
    std::vector<std::string> dirs = {root_};
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) dirs.push_back(it->path().string());
    }
    std::vector<Leftover> leftovers;
    for (const auto& dir : dirs) {
      for (const auto& file : FindStaleTempFiles(dir, min_age_seconds)) {
        leftovers.push_back({file.path, file.size, file.modified, file.path, ""});
      }
    }
    return leftovers;
  }

  bool RemoveLeftover(const Leftover& leftover) override {
    if (!TempFileOwner(BaseName(leftover.location))) {
      Fail(ErrorCode::kInternal, "\"{}\" is not a temp file", leftover.location);
    }
    if (unlink(leftover.location.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    FailErrno(errno, fmt::format("could not remove \"{}\"", leftover.location));
  }

  std::string Describe() const override { return "file://" + root_; }

 private:
  std::string PathOf(const std::string& key) const { return root_ + "/" + key; }

  void Walk(const std::string& dir_key, const std::string& prefix, std::vector<ObjectInfo>& out) {
    const std::string dir = dir_key.empty() ? root_ : PathOf(dir_key);
    DIR* handle = opendir(dir.c_str());
    if (handle == nullptr) {
      if (errno == ENOENT || errno == ENOTDIR) return;
      FailErrno(errno, fmt::format("could not list \"{}\"", dir));
    }
    std::vector<std::pair<std::string, bool>> entries;
    while (dirent* entry = readdir(handle)) {
      if (IsSkippedName(entry->d_name)) continue;
      const std::string key = dir_key.empty() ? entry->d_name : dir_key + "/" + entry->d_name;
      struct stat st {};
      if (fstatat(dirfd(handle), entry->d_name, &st, 0) != 0) continue;  // raced with a remove
      if (S_ISDIR(st.st_mode)) {
        // Descend only where keys below can still match the prefix.
        const std::string sub = key + "/";
        if (sub.compare(0, std::min(sub.size(), prefix.size()), prefix, 0,
                        std::min(sub.size(), prefix.size())) == 0) {
          entries.emplace_back(key, true);
        }
      } else if (S_ISREG(st.st_mode) && key.compare(0, prefix.size(), prefix) == 0) {
        out.push_back(ObjectInfo{key, static_cast<uint64_t>(st.st_size), st.st_mtime, {}});
      }
    }
    closedir(handle);
    for (const auto& [key, is_dir] : entries) Walk(key, prefix, out);
  }

  std::string root_;
};

}  // namespace

std::unique_ptr<Storage> OpenPosixStorage(const std::string& root) {
  return std::make_unique<PosixStorage>(root);
}

}  // namespace walstore
