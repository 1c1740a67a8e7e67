#include "backup/extract.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <walstore/error.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backup/checksum.h"
#include "backup/tar_reader.h"

namespace walstore::backup {
namespace {

// -1 unknown, 0 no (ENOSYS or filtered), 1 yes.
std::atomic<int> openat2_works{-1};
std::atomic<bool> force_walk{false};

// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

[[noreturn]] void FailOutside(const std::string& root, const std::string& rel,
                              const std::string& why) {
  throw Error(ErrorCode::kCorrupt,
              fmt::format("refusing to write \"{}\" beneath \"{}\": {}", rel, root, why),
              "the backup in the repository is damaged or was tampered with; nothing was "
              "written outside the target directory. Restore another backup");
}

// Why opening `name` in `dir` failed with `err`, for a path component that
// must be a directory.
[[noreturn]] void FailComponent(int dir, const std::string& name, int err, const std::string& root,
                                const std::string& rel) {
  struct stat st {};
  if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) FailOutside(root, rel, "\"" + name + "\" is a symbolic link");
    if (!S_ISDIR(st.st_mode)) FailOutside(root, rel, "\"" + name + "\" is not a directory");
  }
  FailErrno(err, fmt::format("could not open \"{}\" beneath \"{}\"", rel, root));
}

void WriteFully(int fd, const uint8_t* data, size_t size, const std::string& what) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno(errno, fmt::format("could not write \"{}\"", what));
    data += n;
    size -= static_cast<size_t>(n);
  }
}

int OpenDirNoFollow(int dir, const std::string& name) {
  return openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) of directory `rel`;
// -1 with errno set when it fails, errno ENOSYS when the kernel lacks it.
int OpenBeneath(int root, const std::string& rel) {
  if (force_walk.load() || openat2_works.load() == 0) {
    errno = ENOSYS;
    return -1;
  }
  struct open_how how {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  const int fd = static_cast<int>(syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
  if (fd >= 0) {
    openat2_works.store(1);
  } else if (errno == ENOSYS || errno == EPERM || errno == E2BIG) {
    openat2_works.store(0);  // old kernel, or a seccomp filter: walk instead
    errno = ENOSYS;
  }
  return fd;
}

// The entries of directory `dir` (names and lstat), read before any is
// changed.
std::vector<std::pair<std::string, struct stat>> ListEntries(int dir, const std::string& shown) {
  const int dup = fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) FailErrno(errno, "could not duplicate a descriptor");
  DIR* stream = fdopendir(dup);
  if (!stream) {
    const int err = errno;
    close(dup);
    FailErrno(err, fmt::format("could not read \"{}\"", shown));
  }
  rewinddir(stream);  // the duplicate shares its offset with `dir`, which may have been read
  std::vector<std::pair<std::string, struct stat>> entries;
  while (const dirent* entry = readdir(stream)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone since
    entries.emplace_back(name, st);
  }
  closedir(stream);
  return entries;
}

void Walk(int dir, const std::string& prefix, const std::string& shown, const WalkVisitor& visit,
          const WalkLeave& leave) {
  for (const auto& [name, st] : ListEntries(dir, shown)) {
    const std::string rel = prefix.empty() ? name : prefix + "/" + name;
    if (visit(dir, name, rel, st) != WalkStep::kDescend || !S_ISDIR(st.st_mode)) continue;
    {
      Fd sub(OpenDirNoFollow(dir, name));
      if (sub.fd < 0) FailErrno(errno, fmt::format("could not open \"{}/{}\"", shown, rel));
      Walk(sub.fd, rel, shown, visit, leave);
    }
    if (leave) leave(dir, name, rel);
  }
}

// Removes everything in directory `dir` (never following a link), in one
// walk (a directory once it is empty), then nothing else: the caller
// removes the directory itself.
void RemoveContents(int dir, const std::string& what) {
  const auto remove = [&](int parent, const std::string& name, const std::string& rel,
                          int flags) {
    if (unlinkat(parent, name.c_str(), flags) != 0) {
      FailErrno(errno, fmt::format("could not remove \"{}/{}\"", what, rel));
    }
  };
  WalkBeneath(
      dir, what,
      [&](int parent, const std::string& name, const std::string& rel, const struct stat& st) {
        if (S_ISDIR(st.st_mode)) return WalkStep::kDescend;  // removed when the walk leaves it
        remove(parent, name, rel, 0);
        return WalkStep::kSkip;
      },
      [&](int parent, const std::string& name, const std::string& rel) {
        remove(parent, name, rel, AT_REMOVEDIR);
      });
}

}  // namespace

void WriteFullyAt(int fd, const uint8_t* data, size_t size, uint64_t offset,
                  const std::string& what) {
  while (size > 0) {
    const ssize_t n = pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno(errno, fmt::format("could not write \"{}\"", what));
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

size_t ReadFullyAt(int fd, uint8_t* data, size_t size, uint64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno(errno, fmt::format("could not read \"{}\"", what));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void WalkBeneath(int dir, const std::string& shown, const WalkVisitor& visit,
                 const WalkLeave& leave) {
  Walk(dir, "", shown, visit, leave);
}

void RemoveDirectoryTree(int parent, const std::string& name, const std::string& shown) {
  Fd dir(OpenDirNoFollow(parent, name));
  if (dir.fd < 0) FailErrno(errno, fmt::format("could not open \"{}\"", shown));
  struct stat top {};
  if (fstat(dir.fd, &top) != 0) FailErrno(errno, fmt::format("could not stat \"{}\"", shown));
  struct stat above {};
  if (fstat(parent, &above) != 0) FailErrno(errno, fmt::format("could not stat above \"{}\"", shown));
  const auto refuse_mount = [&](const std::string& what) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} is a mount point the backup does not hold: restore --delta "
                            "does not delete another file system", what),
                "unmount it (or move it out of the data directory) and run the restore again");
  };
  // st_dev tells another file system; the mount id also a bind mount of
  // the same one (nullopt where the kernel does not report it).
  const auto mount_id = [&](int at, const char* path, const std::string& what) {
    struct statx sx {};
    if (statx(at, path, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) != 0) {
      FailErrno(errno, fmt::format("could not stat \"{}\"", what));
    }
    return (sx.stx_mask & STATX_MNT_ID) != 0 ? std::optional<uint64_t>(sx.stx_mnt_id)
                                             : std::nullopt;
  };
  const std::optional<uint64_t> top_mount = mount_id(dir.fd, "", shown);
  if (top.st_dev != above.st_dev || top_mount != mount_id(parent, "", shown + "/..")) {
    refuse_mount(shown);
  }
  WalkBeneath(dir.fd, shown, [&](int at, const std::string& name, const std::string& rel,
                                 const struct stat& st) {
    if (S_ISDIR(st.st_mode) && (st.st_dev != top.st_dev ||
                                mount_id(at, name.c_str(), shown + "/" + rel) != top_mount)) {
      refuse_mount(shown + "/" + rel);
    }
    return WalkStep::kDescend;
  });
  RemoveContents(dir.fd, shown);
  if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0) {
    FailErrno(errno, fmt::format("could not remove \"{}\"", shown));
  }
}

std::string MemberPathProblem(const std::string& path) {
  if (path.empty()) return "empty path";
  if (path[0] == '/') return "absolute path";
  size_t pos = 0;
  for (;;) {
    const size_t end = std::min(path.find('/', pos), path.size());
    const std::string_view part(path.data() + pos, end - pos);
    if (part.empty()) return "empty path component";
    if (part == "." || part == "..") return fmt::format("\"{}\" path component", part);
    if (end == path.size()) return {};
    pos = end + 1;
  }
}

TargetDir::TargetDir(const std::string& root) : root_(root) {
  fd_ = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) FailErrno(errno, fmt::format("could not open directory \"{}\"", root));
}

TargetDir::~TargetDir() {
  if (fd_ >= 0) close(fd_);
}

void TargetDir::ForceWalkForTesting(bool force) { force_walk.store(force); }

int TargetDir::OpenParent(const std::string& rel, std::string& leaf) {
  if (const std::string problem = MemberPathProblem(rel); !problem.empty()) {
    FailOutside(root_, rel, problem);
  }
  const size_t slash = rel.rfind('/');
  leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (slash == std::string::npos) {
    const int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) FailErrno(errno, "could not duplicate a descriptor");
    return fd;
  }
  const std::string parent = rel.substr(0, slash);
  const int fd = OpenBeneath(fd_, parent);
  if (fd >= 0) return fd;
  if (errno == ELOOP || errno == EXDEV) FailOutside(root_, rel, "it crosses a symbolic link");
  if (errno == ENOTDIR) FailOutside(root_, rel, "a component is not a directory");
  if (errno != ENOENT && errno != ENOSYS) {
    FailErrno(errno, fmt::format("could not open \"{}\" beneath \"{}\"", parent, root_));
  }
  // Missing directories (or no openat2): one component at a time, never
  // following a link, creating what is missing.
  int current = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (current < 0) FailErrno(errno, "could not duplicate a descriptor");
  size_t pos = 0;
  while (pos <= slash) {
    const size_t end = rel.find('/', pos);
    const std::string name = rel.substr(pos, end - pos);
    pos = end + 1;
    Fd dir(current);
    int next = OpenDirNoFollow(dir.fd, name);
    if (next < 0 && errno == ENOENT) {
      if (mkdirat(dir.fd, name.c_str(), 0700) != 0 && errno != EEXIST) {
        FailErrno(errno, fmt::format("could not create \"{}\" beneath \"{}\"", rel, root_));
      }
      next = OpenDirNoFollow(dir.fd, name);
    }
    if (next < 0) FailComponent(dir.fd, name, errno, root_, rel);
    current = next;
  }
  return current;
}

void TargetDir::MakeDirectory(const std::string& rel, mode_t mode) {
  std::string leaf;
  Fd parent(OpenParent(rel, leaf));
  if (mkdirat(parent.fd, leaf.c_str(), 0700) != 0 && errno != EEXIST) {
    FailErrno(errno, fmt::format("could not create \"{}\" beneath \"{}\"", rel, root_));
  }
  Fd dir(OpenDirNoFollow(parent.fd, leaf));
  if (dir.fd < 0) FailComponent(parent.fd, leaf, errno, root_, rel);
  // The owner keeps write access: the rest of the tar goes in there.
  if (fchmod(dir.fd, (mode & 0777) | 0700) != 0) {
    FailErrno(errno, fmt::format("could not chmod \"{}\" beneath \"{}\"", rel, root_));
  }
}

int TargetDir::CreateFile(const std::string& rel, mode_t mode, bool append) {
  return OpenRegular(rel, mode, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
                                    (append ? O_APPEND : O_EXCL));
}

int TargetDir::OpenFileForUpdate(const std::string& rel, mode_t mode) {
  const int fd = OpenRegular(rel, mode, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    FailErrno(err, fmt::format("could not stat \"{}\" beneath \"{}\"", rel, root_));
  }
  if (st.st_nlink <= 1) return fd;
  // A hard link shares its inode with a name elsewhere (a `cp -al` copy, a
  // pg_upgrade --link cluster): written in place, that file would change too.
  close(fd);
  std::string leaf;
  Fd parent(OpenParent(rel, leaf));
  if (unlinkat(parent.fd, leaf.c_str(), 0) != 0) {
    FailErrno(errno, fmt::format("could not remove the hard link \"{}\" beneath \"{}\"", rel,
                                 root_));
  }
  return OpenRegular(rel, mode, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC);
}

int TargetDir::OpenRegular(const std::string& rel, mode_t mode, int flags) {
  std::string leaf;
  Fd parent(OpenParent(!held_back_.empty() && rel == held_back_ ? stand_in_ : rel, leaf));
  const int fd = openat(parent.fd, leaf.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == ELOOP) FailOutside(root_, rel, "it is a symbolic link");
    if (errno == EEXIST) FailOutside(root_, rel, "it exists already (a member given twice)");
    FailErrno(errno, fmt::format("could not create \"{}\" beneath \"{}\"", rel, root_));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    FailOutside(root_, rel, "it is not a regular file");
  }
  return fd;
}

void TargetDir::RemoveIfOtherType(const std::string& rel, bool want_directory) {
  std::string leaf;
  Fd parent(OpenParent(rel, leaf));
  struct stat st {};
  if (fstatat(parent.fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    FailErrno(errno, fmt::format("could not stat \"{}\" beneath \"{}\"", rel, root_));
  }
  const bool other = want_directory ? S_ISREG(st.st_mode) : S_ISDIR(st.st_mode);
  if (!other) return;
  if (S_ISDIR(st.st_mode)) {
    // Never across a mount point (kUsage naming it), like RemoveUnlisted.
    RemoveDirectoryTree(parent.fd, leaf, root_ + "/" + rel);
    return;
  }
  if (unlinkat(parent.fd, leaf.c_str(), 0) != 0) {
    FailErrno(errno, fmt::format("could not remove \"{}\" beneath \"{}\"", rel, root_));
  }
}

void TargetDir::MakeSymlink(const std::string& rel, const std::string& target) {
  std::string leaf;
  Fd parent(OpenParent(rel, leaf));
  if (symlinkat(target.c_str(), parent.fd, leaf.c_str()) != 0) {
    if (errno == EEXIST) FailOutside(root_, rel, "it exists already (a member given twice)");
    FailErrno(errno, fmt::format("could not create the link \"{}\" beneath \"{}\"", rel, root_));
  }
}

void TargetDir::HoldBack(const std::string& rel, const std::string& stand_in) {
  held_back_ = rel;
  stand_in_ = stand_in;
}

void TargetDir::PublishHeldBack() {
  if (held_back_.empty()) return;
  std::string leaf, stand_in_leaf;
  Fd parent(OpenParent(held_back_, leaf));
  Fd stand_in_parent(OpenParent(stand_in_, stand_in_leaf));
  if (renameat(stand_in_parent.fd, stand_in_leaf.c_str(), parent.fd, leaf.c_str()) != 0) {
    if (errno == ENOENT && faccessat(stand_in_parent.fd, stand_in_leaf.c_str(), F_OK,
                                     AT_SYMLINK_NOFOLLOW) != 0) {
      held_back_.clear();  // never written: the manifest check decides whether it had to be
      return;
    }
    FailErrno(errno, fmt::format("could not rename \"{}\" to \"{}\" beneath \"{}\"", stand_in_,
                                 held_back_, root_));
  }
  if (fsync(parent.fd) != 0) {
    FailErrno(errno, fmt::format("could not fsync the directory of \"{}\" beneath \"{}\"",
                                 held_back_, root_));
  }
  held_back_.clear();
}

void TargetDir::WriteFile(const std::string& rel, const std::string& text, bool append) {
  Fd fd(CreateFile(rel, 0600, append));
  WriteFully(fd.fd, reinterpret_cast<const uint8_t*>(text.data()), text.size(), root_ + "/" + rel);
}

BackupExtractor::BackupExtractor(ManifestChecker& checker, std::function<void(uint64_t)> on_bytes)
    : checker_(checker), on_bytes_(std::move(on_bytes)), buffer_(1 << 20) {}

void BackupExtractor::Extract(ReadStream& tar_stream, TargetDir* target,
                              const std::string& manifest_prefix,
                              const std::map<std::string, std::string>& links,
                              const std::string& what) {
  TarReader tar(tar_stream, what);
  while (auto entry = tar.Next()) {
    // PostgreSQL writes "./pg_wal/archive_status": a leading "./" is the
    // directory itself.  A "." anywhere else is refused below.
    while (entry->path.size() > 2 && entry->path.compare(0, 2, "./") == 0) {
      entry->path.erase(0, 2);
    }
    if (const std::string problem = MemberPathProblem(entry->path); !problem.empty()) {
      Fail(ErrorCode::kCorrupt, "{}: refusing member \"{}\": {}", what, entry->path, problem);
    }
    switch (entry->type) {
      case TarEntry::Type::kDirectory:
        if (listed_) listed_->directories.insert(entry->path);
        if (target && listed_) target->RemoveIfOtherType(entry->path, /*want_directory=*/true);
        if (target) target->MakeDirectory(entry->path, entry->mode);
        break;
      case TarEntry::Type::kSymlink: {
        const auto link = links.find(entry->path);
        if (link == links.end()) {
          Fail(ErrorCode::kCorrupt,
               "{}: refusing symbolic link \"{}\" -> \"{}\": a data directory has links only "
               "at pg_tblspc/<oid> for the tablespaces of its backup",
               what, entry->path, entry->link_target);
        }
        if (target) target->MakeSymlink(entry->path, link->second);
        break;
      }
      case TarEntry::Type::kFile: {
        const std::string manifest_path = manifest_prefix + entry->path;
        const ManifestFile* expected = checker_.Find(manifest_path);
        if (!expected) {
          Fail(ErrorCode::kCorrupt, "{} is in the backup but not in its manifest", manifest_path);
        }
        auto checksum = MakeFileChecksum(expected->algorithm);
        if (target && listed_) target->RemoveIfOtherType(entry->path, /*want_directory=*/false);
        Fd fd(!target   ? -1
              : listed_ ? target->OpenFileForUpdate(entry->path, 0600)
                        : target->CreateFile(entry->path, 0600));
        uint64_t size = 0;
        while (const size_t n = tar.Read(MutableBytes(buffer_.data(), buffer_.size()))) {
          if (checksum) checksum->Update(Bytes(buffer_.data(), n));
          if (fd.fd >= 0 && listed_) {
            WriteChangedBlocks(fd.fd, n, size, entry->path);
          } else if (fd.fd >= 0) {
            WriteFully(fd.fd, buffer_.data(), n, entry->path);
            written_ += n;
          }
          size += n;
          on_bytes_(n);
        }
        if (fd.fd >= 0 && listed_) {
          struct stat st {};
          if (fstat(fd.fd, &st) != 0) FailErrno(errno, "could not stat \"" + entry->path + "\"");
          if (static_cast<uint64_t>(st.st_size) != size &&
              ftruncate(fd.fd, static_cast<off_t>(size)) != 0) {
            FailErrno(errno, fmt::format("could not truncate \"{}\"", entry->path));
          }
          listed_->files[entry->path] = size;
        }
        if (fd.fd >= 0 && entry->mode && fchmod(fd.fd, entry->mode & 0777) != 0) {
          FailErrno(errno, fmt::format("could not chmod \"{}\"", entry->path));
        }
        checker_.Check(*expected, size, checksum ? checksum->FinalHex() : "");
        ++files_;
        bytes_ += size;
        break;
      }
      case TarEntry::Type::kHardLink:
        Fail(ErrorCode::kCorrupt, "{}: refusing hard link \"{}\" -> \"{}\": PostgreSQL's base "
             "backups have none", what, entry->path, entry->link_target);
      default:
        Fail(ErrorCode::kUnsupportedFormat, "{}: unsupported tar member \"{}\" (type '{}')", what,
             entry->path, entry->typeflag);
    }
  }
}

void BackupExtractor::UpdateInPlace(DeltaContents& listed) {
  listed_ = &listed;
  existing_.resize(buffer_.size());
}

void BackupExtractor::WriteChangedBlocks(int fd, size_t n, uint64_t offset,
                                         const std::string& path) {
  const size_t have = ReadFullyAt(fd, existing_.data(), n, offset, path);
  // Windows end on 8 KiB boundaries of the file, wherever the chunk the tar
  // gave starts: one changed page is at most 8 KiB written.
  for (size_t at = 0, len = 0; at < n; at += len) {
    len = std::min(kDeltaBlockSize - (offset + at) % kDeltaBlockSize, n - at);
    if (at + len <= have && std::memcmp(existing_.data() + at, buffer_.data() + at, len) == 0) {
      continue;
    }
    WriteFullyAt(fd, buffer_.data() + at, len, offset + at, path);
    written_ += len;
  }
}

}  // namespace walstore::backup
