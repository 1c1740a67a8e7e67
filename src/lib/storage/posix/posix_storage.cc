#include "storage/posix/posix_storage.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/error.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <mutex>
#include <vector>

#include "common/file_util.h"

namespace walstore {
namespace {

class PosixWriter : public ObjectWriter {
 public:
  PosixWriter(const std::string& path, const std::optional<FileOwner>& owner, bool replace)
      : file_(path, 0640, false), replace_(replace) {
    if (owner) file_.SetOwner(*owner);
  }
  void Write(Bytes data) override { file_.Write(data); }
  CommitResult Commit() override {
    return file_.Publish(replace_) ? CommitResult::kCreated : CommitResult::kAlreadyExists;
  }
  void RewriteHead(Bytes head) override { file_.RewriteHead(head); }

 private:
  AtomicFileWriter file_;
  bool replace_;
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
      FailUnlessVerifiedAbsence(fmt::format("could not stat \"{}\"", PathOf(key)), PathOf(key));
      return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) FailNotAnObject(key);
    return ObjectInfo{key, static_cast<uint64_t>(st.st_size), st.st_mtime, {}};
  }

  std::unique_ptr<ReadStream> OpenRead(const std::string& key) override {
    ValidateKey(key);
    const std::string path = PathOf(key);
    // O_NONBLOCK: a FIFO (or a device) placed at a key must not hang the
    // caller in open(); it is refused below.
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      FailUnlessVerifiedAbsence(fmt::format("could not open \"{}\"", path), path);
      return nullptr;
    }
    auto reader = std::make_unique<FileReader>(fd, path);
    struct stat st {};
    if (fstat(fd, &st) != 0) FailErrno(errno, fmt::format("could not stat \"{}\"", path));
    if (!S_ISREG(st.st_mode)) FailNotAnObject(key);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
      FailErrno(errno, fmt::format("could not use \"{}\"", path));
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return reader;
  }

  std::unique_ptr<ObjectWriter> Create(const std::string& key,
                                       const WriteOptions& options) override {
    ValidateKey(key);
    PrepareForWrites();
    // The root may have gone since (unmounted): never make a new one.
    if (!MakeDirectoriesBelow(root_, DirName(PathOf(key)), owner_)) FailMissingRoot();
    return std::make_unique<PosixWriter>(PathOf(key), owner_, options.replace_existing);
  }

  void PrepareForWrites() override {
    if (prepared_) return;
    AdoptRoot();
    prepared_ = true;
  }

  InitResult Initialize(bool create_parents) override {
    bool created = mkdir(root_.c_str(), 0750) == 0;
    if (created) {
      SyncDirectory(DirName(root_));
    } else if (errno == ENOENT && create_parents) {
      MakeDirectories(root_);
      created = true;
    } else if (errno == ENOENT) {
      throw Error(ErrorCode::kLocalIo,
                  fmt::format("could not create the repository \"{}\": its parent \"{}\" does "
                              "not exist",
                              root_, DirName(root_)),
                  "if it lives on another file system (NFS, a mounted disk), mount it; else "
                  "create the parent, or let walctl init create it (--parents)");
    } else if (errno != EEXIST) {
      FailErrno(errno, fmt::format("could not create the repository \"{}\"", root_));
    }
    const bool made_here = AdoptRoot();
    prepared_ = true;
    return created || made_here ? InitResult::kCreated : InitResult::kAlreadyRepository;
  }

  std::vector<std::string> ListChildren(const std::string& prefix, size_t limit) override {
    if (!prefix.empty()) ValidateKey(prefix.substr(0, prefix.size() - 1));
    VerifyRepository();  // an empty answer must mean an empty repository
    const std::string dir = prefix.empty() ? root_ : PathOf(prefix.substr(0, prefix.size() - 1));
    std::vector<std::string> names;
    DIR* handle = opendir(dir.c_str());
    if (handle == nullptr) {
      FailUnlessVerifiedAbsence(fmt::format("could not list \"{}\"", dir), dir);
      return names;
    }
    while (dirent* entry = readdir(handle)) {
      if (IsSkippedName(entry->d_name) || (prefix.empty() && IsFormatFile(entry->d_name))) continue;
      names.emplace_back(entry->d_name);
    }
    closedir(handle);
    std::sort(names.begin(), names.end());
    if (names.size() > limit) names.resize(limit);
    return names;
  }

  void List(const std::string& prefix, const std::function<void(const ObjectInfo&)>& visit) override {
    for (const auto& info : ListObjectsAfter(prefix, "", SIZE_MAX)) visit(info);
  }

  // AnyBelow is Storage's: ListObjectsAfter(prefix, "", 1), a walk that
  // stops at the first object.
  std::vector<ObjectInfo> ListObjectsAfter(const std::string& prefix, const std::string& after,
                                           size_t limit) override {
    // Walk the deepest directory the prefix fully names, keep matching keys.
    const size_t slash = prefix.rfind('/');
    const std::string dir_key = slash == std::string::npos ? "" : prefix.substr(0, slash);
    VerifyRepository();  // an empty answer must mean the repository lacks them
    std::vector<ObjectInfo> found;
    Walk(dir_key, prefix, found, limit, after);  // in key order
    return found;
  }

  bool Remove(const std::string& key) override {
    ValidateKey(key);
    if (unlink(PathOf(key).c_str()) != 0) {
      FailUnlessVerifiedAbsence(fmt::format("could not remove \"{}\"", PathOf(key)), PathOf(key));
      return false;
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
  std::string FormatFilePath() const { return root_ + "/" + kRepositoryFormatFile; }
  static bool IsFormatFile(const char* name) { return std::strcmp(name, kRepositoryFormatFile) == 0; }

  // After a call on `path` below the root failed (errno): returns for a
  // verified absence (ENOENT in a verified repository, with no symbolic link
  // on the way to `path` whose target is missing); throws kNotARepository
  // when the repository, or a part of it linked from elsewhere, is not there,
  // and "<what>: <error>" for anything else (ENOTDIR: a file where a
  // directory belongs, EACCES, EIO).
  void FailUnlessVerifiedAbsence(std::string_view what, const std::string& path) {
    const int error = errno;  // before VerifyRepository() makes calls of its own
    if (error == ENOENT || error == ENOTDIR) VerifyRepository();
    if (error != ENOENT) FailErrno(error, what);
    if (const auto link = DanglingLinkOnTheWay(path)) {
      char target[4096];
      const ssize_t n = readlink(link->c_str(), target, sizeof target - 1);
      throw Error(ErrorCode::kNotARepository,
                  fmt::format("{}: \"{}\" is a symbolic link to \"{}\", which does not exist",
                              what, *link, n > 0 ? std::string(target, static_cast<size_t>(n)) : "?"),
                  "a part of the repository lives on another file system that is not there: "
                  "check that it is mounted, or remove the link");
    }
  }

  // The first path on the way from the root to `path` (below the root) that
  // is a symbolic link whose target does not exist (a directory of the
  // repository linked to an unmounted file system); nullopt when a
  // component is plainly absent.  ENOENT through such a link is no absence.
  std::optional<std::string> DanglingLinkOnTheWay(const std::string& path) const {
    for (size_t end = path.find('/', root_.size() + 1);; end = path.find('/', end + 1)) {
      const std::string part = path.substr(0, end);
      struct stat st {};
      if (lstat(part.c_str(), &st) != 0) return std::nullopt;
      if (S_ISLNK(st.st_mode) && stat(part.c_str(), &st) != 0) return part;
      if (end == std::string::npos) return std::nullopt;
    }
  }

  [[noreturn]] void FailNotAnObject(const std::string& key) const {
    Fail(ErrorCode::kStorage, "\"{}\" is not a regular file, so not a walstore object",
         PathOf(key));
  }

  // Makes the existing root a repository (PrepareForWrites()); true when
  // this call did, writing the format file into an empty directory.
  bool AdoptRoot() {
    CheckRootIsDirectory();
    bool adopted_empty = false;
    if (!ReadFormatFile()) {
      adopted_empty = IsEmptyRoot();
      // Read again: a concurrent first writer may have made it one meanwhile.
      if (!adopted_empty && !HasEarlierLayout() && !ReadFormatFile()) {
        throw Error(ErrorCode::kNotARepository,
                    fmt::format("\"{}\" is not a walstore repository: it is not empty and has "
                                "no {} and no <system-id>/wal or <system-id>/backup directory",
                                root_, kRepositoryFormatFile),
                    fmt::format("check the repository setting; walstore makes a repository only "
                                "of an empty or new directory: name one inside this one, e.g. "
                                "{}/walstore, and create it with walctl init",
                                root_));
      }
      AtomicFileWriter file(FormatFilePath(), 0640, false);
      if (owner_) file.SetOwner(*owner_);
      const std::string text =
          nlohmann::json{{"walstore_repository_format", kRepositoryFormatVersion}}.dump() + "\n";
      file.Write(AsBytes(text));
      file.Publish(false);  // a concurrent first writer may have won: same content
    }
    VerifyRepository();
    return adopted_empty;
  }

  // Nothing in the root but ".", "..", temp files and the format file (a
  // concurrent first writer's).
  bool IsEmptyRoot() const {
    DIR* handle = opendir(root_.c_str());
    if (handle == nullptr) FailErrno(errno, fmt::format("could not list \"{}\"", root_));
    bool empty = true;
    for (dirent* entry; empty && (entry = readdir(handle)) != nullptr;) {
      empty = IsSkippedName(entry->d_name) || IsFormatFile(entry->d_name);
    }
    closedir(handle);
    return empty;
  }

  std::string NotThereHint() const {
    return fmt::format(
        "check the repository setting and, if the repository lives on another file system "
        "(NFS, a mounted disk), mount it; walpush and walctl backup never create it: create a "
        "new repository with walctl init --repo file://{0} (or install -d -m 0750 {0})",
        root_);
  }

  [[noreturn]] void FailMissingRoot() const {
    throw Error(ErrorCode::kNotARepository,
                fmt::format("repository \"{}\" does not exist", root_), NotThereHint());
  }

  // Throws kNotARepository when the root is missing or not a directory.
  void CheckRootIsDirectory() {
    struct stat st {};
    if (stat(root_.c_str(), &st) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) {
        FailErrno(errno, fmt::format("could not stat the repository \"{}\"", root_));
      }
      FailMissingRoot();
    }
    if (!S_ISDIR(st.st_mode)) {
      throw Error(ErrorCode::kNotARepository,
                  fmt::format("repository \"{}\" is not a directory", root_), NotThereHint());
    }
    // Everything in a repository belongs to the repository's owner: what
    // root writes (walctl backup from root's crontab) into a repository of
    // postgres' stays readable and extendable for walpush, which PostgreSQL
    // runs as postgres.
    if (geteuid() == 0 && st.st_uid != 0) owner_ = FileOwner{st.st_uid, st.st_gid};
  }

  // Throws kNotARepository unless the root is a walstore repository: a
  // directory holding the format file, or the layout of an earlier build.
  // Once verified, stays verified for the life of this object.
  void VerifyRepository() {
    if (verified_) return;
    // Readers on several threads (walfetch's read-ahead fetches two segments
    // at a time) may all find a miss at once: one verifies, and sets owner_.
    const std::lock_guard lock(verify_mutex_);
    if (verified_) return;
    CheckRootIsDirectory();
    if (!ReadFormatFile() && !HasEarlierLayout()) {
      throw Error(ErrorCode::kNotARepository,
                  fmt::format("\"{}\" is not a walstore repository: it has no {} and no "
                              "<system-id>/wal or <system-id>/backup directory",
                              root_, kRepositoryFormatFile),
                  NotThereHint());
    }
    verified_ = true;
  }

  // true when the format file is there; throws when it is damaged or newer
  // than this build.
  bool ReadFormatFile() const {
    const std::string path = FormatFilePath();
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return false;
      FailErrno(errno, fmt::format("could not open \"{}\"", path));
    }
    FileReader reader(fd, path);
    char buffer[4096];
    const size_t n = reader.Read(MutableBytes(reinterpret_cast<uint8_t*>(buffer), sizeof buffer));
    const auto json = nlohmann::json::parse(std::string_view(buffer, n), nullptr, false);
    const auto version = json.is_object() ? json.find("walstore_repository_format") : json.end();
    if (!json.is_object() || version == json.end() || !version->is_number_integer()) {
      throw Error(ErrorCode::kNotARepository,
                  fmt::format("\"{}\" is damaged: no walstore_repository_format", path),
                  fmt::format("if this is a walstore repository, write {{\"walstore_repository_"
                              "format\": {}}} into it",
                              kRepositoryFormatVersion));
    }
    if (version->get<int>() > kRepositoryFormatVersion) {
      Fail(ErrorCode::kUnsupportedFormat,
           "repository \"{}\" has format {}; this build knows up to {}: upgrade walstore", root_,
           version->get<int>(), kRepositoryFormatVersion);
    }
    return true;
  }

  // A repository of a build before the format file: "<digits>/wal/" or
  // "<digits>/backup/" directly under the root.
  bool HasEarlierLayout() const {
    DIR* handle = opendir(root_.c_str());
    if (handle == nullptr) FailErrno(errno, fmt::format("could not list \"{}\"", root_));
    bool found = false;
    for (dirent* entry; !found && (entry = readdir(handle)) != nullptr;) {
      const std::string name(entry->d_name);
      if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
      for (const char* sub : {"/wal", "/backup"}) {
        struct stat st {};
        found = found || (fstatat(dirfd(handle), (name + sub).c_str(), &st, 0) == 0 &&
                          S_ISDIR(st.st_mode));
      }
    }
    closedir(handle);
    return found;
  }

  // Appends, in key order, the objects below `dir_key` whose keys start
  // with `prefix` and sort after `after` to `out`; stops once `out` holds
  // `limit` of them.  Nothing is stat'ed that sorts wholly at or before
  // `after` (a directory's keys all sort before its key + "0", '/' + 1).
  void Walk(const std::string& dir_key, const std::string& prefix, std::vector<ObjectInfo>& out,
            size_t limit = SIZE_MAX, const std::string& after = "") {
    if (out.size() >= limit) return;
    const std::string dir = dir_key.empty() ? root_ : PathOf(dir_key);
    DIR* handle = opendir(dir.c_str());
    if (handle == nullptr) {
      FailUnlessVerifiedAbsence(fmt::format("could not list \"{}\"", dir), dir);
      return;
    }
    struct Entry {
      std::string order;  // the key, with a '/' after a directory's: how its keys sort
      bool is_dir;
      ObjectInfo object;
    };
    std::vector<Entry> entries;
    while (dirent* entry = readdir(handle)) {
      if (IsSkippedName(entry->d_name) || (dir_key.empty() && IsFormatFile(entry->d_name))) {
        continue;
      }
      const std::string key = dir_key.empty() ? entry->d_name : dir_key + "/" + entry->d_name;
      if (!after.empty() && key + "0" <= after) continue;
      struct stat st {};
      if (fstatat(dirfd(handle), entry->d_name, &st, 0) != 0) {
        const int error = errno;
        const std::string path = dir + "/" + entry->d_name;
        // Raced with a remove; a link to what is not there (an unmounted
        // file system) is no removed object.
        if (error == ENOENT && !DanglingLinkOnTheWay(path)) continue;
        closedir(handle);  // frees `entry`
        errno = error;
        const std::string what = fmt::format("could not stat \"{}\"", path);
        if (error == ENOENT) FailUnlessVerifiedAbsence(what, path);  // throws
        FailErrno(error, what);
      }
      if (S_ISDIR(st.st_mode)) {
        // Descend only where keys below can still match the prefix.
        const std::string sub = key + "/";
        if (sub.compare(0, std::min(sub.size(), prefix.size()), prefix, 0,
                        std::min(sub.size(), prefix.size())) == 0) {
          entries.push_back({sub, true, {}});
        }
      } else if (S_ISREG(st.st_mode) && key.compare(0, prefix.size(), prefix) == 0 && key > after) {
        entries.push_back({key, false, {key, static_cast<uint64_t>(st.st_size), st.st_mtime, {}}});
      }
    }
    closedir(handle);
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.order < b.order; });
    for (Entry& entry : entries) {
      if (out.size() >= limit) return;
      if (entry.is_dir) {
        Walk(entry.order.substr(0, entry.order.size() - 1), prefix, out, limit, after);
      } else {
        out.push_back(std::move(entry.object));
      }
    }
  }

  std::string root_;
  std::optional<FileOwner> owner_;  // set when root writes into another user's repository
  std::atomic<bool> verified_{false};  // VerifyRepository() passed
  std::mutex verify_mutex_;            // held while VerifyRepository() runs
  std::atomic<bool> prepared_{false};  // PrepareForWrites() passed
};

}  // namespace

std::unique_ptr<Storage> OpenPosixStorage(const std::string& root) {
  return std::make_unique<PosixStorage>(root);
}

}  // namespace walstore
