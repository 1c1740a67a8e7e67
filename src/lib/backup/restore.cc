#include <walstore/backup/restore.h>

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/object_format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <vector>

#include <walstore/backup/base_backup.h>
#include "backup/checksum.h"
#include "common/file_util.h"
#include "backup/delta.h"
#include "backup/extract.h"
#include "backup/manifest.h"
#include "backup/pipeline.h"
#include "backup/progress_reporter.h"
#include <walstore/backup/util.h>

namespace walstore::backup {

namespace fs = std::filesystem;

namespace {

// True when one of the two directories is the other or lies inside it.
bool Overlaps(const fs::path& a, const fs::path& b) {
  const fs::path x = a.lexically_normal(), y = b.lexically_normal();
  auto inside = [](const fs::path& inner, const fs::path& outer) {
    const fs::path rel = inner.lexically_relative(outer);
    return !rel.empty() && *rel.begin() != "..";
  };
  return inside(x, y) || inside(y, x);
}

// A tablespace restored to the place its backup record names: that record
// decides where walctl (often as root) creates and chowns a directory, so it
// must be authenticated (a key configured, no plaintext allowed) and name a
// plain absolute path; otherwise the operator names the place.
void CheckRecordedTablespacePath(const Config& config, const std::string& label,
                                 const BackupObject& archive) {
  const std::string& path = archive.tablespace_path;
  if (!config.key || config.allow_plaintext_objects) {
    throw Error(ErrorCode::kUnauthenticated,
                fmt::format("backup {} puts tablespace {} at \"{}\", but its record is not "
                            "authenticated (no encryption key is configured, or plaintext "
                            "objects are allowed): walctl does not create directories where "
                            "an unauthenticated record says",
                            label, archive.tablespace_oid, path),
                fmt::format("name the place yourself: --tablespace-map \"{}=DIR\"", path));
  }
  const fs::path p(path);
  if (!p.is_absolute() || p.lexically_normal() != p || p.filename().empty() ||
      path.find("/./") != std::string::npos) {
    Fail(ErrorCode::kCorrupt, "backup {} names tablespace {} at \"{}\", which is not a plain "
         "absolute path", label, archive.tablespace_oid, path);
  }
}


// Removes what a failed restore wrote (the directories were empty before).
class CleanupGuard {
 public:
  void Add(const fs::path& dir, bool created) { dirs_.push_back({dir, created}); }
  void Commit() { committed_ = true; }
  ~CleanupGuard() {
    if (committed_) return;
    for (const auto& [dir, created] : dirs_) {
      std::error_code ec;
      if (created) {
        fs::remove_all(dir, ec);
        continue;
      }
      // Best effort, and never a throw from a destructor: increment(ec), not operator++.
      for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
           it.increment(ec)) {
        std::error_code ignored;
        fs::remove_all(it->path(), ignored);
      }
    }
  }

 private:
  std::vector<std::pair<fs::path, bool>> dirs_;
  bool committed_ = false;
};

// Creates `dir` (0700) unless it exists empty; returns true when created.
bool PrepareEmptyDir(const fs::path& dir, const char* what) {
  std::error_code ec;
  if (!IsMissingOrEmptyDir(dir)) {
    const char* problem = fs::is_directory(dir, ec) ? "is not empty" : "is not a directory";
    throw Error(ErrorCode::kUsage, fmt::format("{} {} {}", what, dir.string(), problem),
                "restore into an empty or new directory");
  }
  bool created = fs::create_directories(dir, ec);
  if (ec) FailErrno(ec.value(), "create " + dir.string());
  if (chmod(dir.c_str(), 0700) != 0) FailErrno(errno, "chmod " + dir.string());
  return created;
}

using TablespaceTargets = std::map<uint32_t, std::unique_ptr<TargetDir>>;

// Where the tablespace of `archive` is restored (its directory), or, when
// only checking, the path its record names.
TargetDir* TablespaceTarget(const TablespaceTargets& targets, const BackupRecord& backup,
                            const BackupObject& archive) {
  const auto it = targets.find(archive.tablespace_oid);
  if (it == targets.end()) {
    Fail(ErrorCode::kCorrupt, "backup {} has tablespace {}, which the restored backup has not",
         backup.label, archive.tablespace_oid);
  }
  return it->second.get();
}

// The only symbolic links a data directory has: pg_tblspc/<oid> of this
// backup's tablespaces, to where each is restored.
std::map<std::string, std::string> TablespaceLinks(const BackupRecord& backup, bool restoring,
                                                   const TablespaceTargets& targets) {
  std::map<std::string, std::string> links;
  for (const auto& archive : backup.archives) {
    if (archive.tablespace_oid == 0) continue;
    links[fmt::format("pg_tblspc/{}", archive.tablespace_oid)] =
        restoring ? TablespaceTarget(targets, backup, archive)->root() : archive.tablespace_path;
  }
  return links;
}

// Decodes one archive object of `backup` into `consume` (reading ahead on a
// thread) and checks its SHA-256 against the record once it was read whole.
// `jobs`: the decoder's threads, resolved once per run (RestoreOptions::jobs).
// A block map (16 bytes per 8 KiB of data) decodes on the calling thread
// and its read-ahead thread only: no decoder threads for it.
constexpr int kBlockMapJobs = 1;

void DecodeArchive(Storage& storage, const Config& config, const BackupRecord& backup,
                   const BackupObject& archive, int jobs,
                   const std::function<void(ReadStream&)>& consume) {
  const std::string key = BackupObjectKey(backup.system_id, backup.label, archive.name);
  auto in = storage.OpenRead(key);
  if (!in) Fail(ErrorCode::kCorrupt, "{} is missing from the repository", key);
  DecodeOptions options = DecodeOptionsFor(config);  // keys rotated out too
  options.threads = jobs;
  ObjectDecoder decoder(*in, options, key);
  // Decoding (decrypt, decompress, SHA-256) overlaps with extracting.
  PrefetchReader prefetch(decoder);
  consume(prefetch);
  // Drain to the end so the decoder verifies the object's size and SHA-256.
  uint8_t rest[4096];
  while (prefetch.Read(MutableBytes(rest, sizeof rest)) > 0) {
  }
  if (ToHex(decoder.plaintext_sha256()) != archive.sha256) {
    Fail(ErrorCode::kCorrupt, "{}: SHA-256 differs from the backup record", key);
  }
}

// Decodes every tar of full backup `backup` through `extractor` (into
// `root` and the tablespace directories, or only checking when `root` is
// null) and checks each object's SHA-256 against the record and the
// manifest's coverage.
void ExtractArchives(Storage& storage, const Config& config, const BackupRecord& backup,
                     BackupExtractor& extractor, TargetDir* root,
                     const TablespaceTargets& tablespaces, int jobs) {
  const auto links = TablespaceLinks(backup, root != nullptr, tablespaces);
  for (const auto& archive : backup.archives) {
    const std::string key = BackupObjectKey(backup.system_id, backup.label, archive.name);
    DecodeArchive(storage, config, backup, archive, jobs, [&](ReadStream& data) {
      if (archive.tablespace_oid == 0) {
        extractor.Extract(data, root, "", links, key);
      } else {
        TargetDir* dir = root ? TablespaceTarget(tablespaces, backup, archive) : nullptr;
        extractor.Extract(data, dir, fmt::format("pg_tblspc/{}/", archive.tablespace_oid), {},
                          key);
      }
    });
  }
  auto unseen = extractor.checker().Unseen();
  if (!unseen.empty()) {
    Fail(ErrorCode::kCorrupt, "{} files of the manifest are missing from backup {} (first: {})",
         unseen.size(), backup.label, unseen.front());
  }
}

// What the delta archives of one backup list, by tablespace OID (0: base).
using ChainContents = std::map<uint32_t, DeltaContents>;

// The manifest path of member `path` of the archive of tablespace `oid`.
std::string ManifestPath(uint32_t oid, const std::string& path) {
  return oid == 0 ? path : fmt::format("pg_tblspc/{}/{}", oid, path);
}

// verify --full of a diff / incr: every block its delta archives store must
// hash to the backup's own block map (read alongside, in the same order),
// and every block they omit must be the reference's block at that index
// (ScanArchive's rule), so the block maps account for what a restore of the
// chain reassembles.
class BlockMapCrossCheck : public DeltaVisitor {
 public:
  BlockMapCrossCheck(BlockMapReader& own, const BlockMap* reference, const std::string& label)
      : own_(own), reference_(reference), label_(label) {}
  void SetArchive(uint32_t oid) { prefix_ = ManifestPath(oid, ""); }
  void File(const std::string& path, uint64_t size) override {
    path_ = prefix_ + path;
    const auto file = own_.NextFile();
    if (!file || file->path != path_ || file->size != size) {
      Fail(ErrorCode::kCorrupt,
           "backup {}: its block map does not list {} ({} bytes) where its delta archive does",
           label_, path_, size);
    }
    blocks_ = file->blocks;
    next_ = 0;
    old_ = nullptr;
    if (reference_) {
      const auto it = reference_->find(path_);
      if (it != reference_->end()) old_ = &it->second;
    }
  }
  void Block(uint64_t index, Bytes data) override {
    Omitted(index);
    if (HashBlock(data) != own_.NextHash()) {
      Fail(ErrorCode::kCorrupt, "backup {}: block {} of {} in its delta archive differs from its "
           "block map", label_, index, path_);
    }
    next_ = index + 1;
  }
  void EndFile() override { Omitted(blocks_); }
  // Nothing may be left in the block map.
  void Finish() {
    if (own_.NextFile()) {
      Fail(ErrorCode::kCorrupt, "backup {}: its block map lists files its delta archives do not",
           label_);
    }
  }

 private:
  // Blocks next_ .. until-1 are not stored: unchanged since the reference.
  void Omitted(uint64_t until) {
    for (; next_ < until; ++next_) {
      const BlockHash hash = own_.NextHash();
      if (!reference_) continue;  // the missing reference is a problem of its own
      if (!old_ || next_ >= old_->hashes.size() || old_->hashes[next_] != hash) {
        Fail(ErrorCode::kCorrupt,
             "backup {}: block {} of {} is not in its delta archive, but its block map says it "
             "differs from the reference's",
             label_, next_, path_);
      }
    }
  }

  BlockMapReader& own_;
  const BlockMap* reference_;
  std::string label_;
  std::string prefix_;
  std::string path_;
  const FileBlocks* old_ = nullptr;
  uint64_t blocks_ = 0;
  uint64_t next_ = 0;
};

// Applies the delta archives of diff / incr `backup` (onto the restored
// state of its reference beneath `root`, or only checking when null),
// showing them to `check` when given.
ChainContents ApplyDeltaArchives(Storage& storage, const Config& config,
                                 const BackupRecord& backup, int jobs, TargetDir* root,
                                 const TablespaceTargets& tablespaces,
                                 const std::function<void(uint64_t)>& on_bytes,
                                 BlockMapCrossCheck* check = nullptr) {
  const auto links = TablespaceLinks(backup, root != nullptr, tablespaces);
  ChainContents contents;
  for (const auto& archive : backup.archives) {
    const std::string key = BackupObjectKey(backup.system_id, backup.label, archive.name);
    TargetDir* dir = archive.tablespace_oid == 0 ? root
                     : root ? TablespaceTarget(tablespaces, backup, archive)
                            : nullptr;
    if (check) check->SetArchive(archive.tablespace_oid);
    DecodeArchive(storage, config, backup, archive, jobs, [&](ReadStream& data) {
      contents[archive.tablespace_oid] = ApplyDelta(
          data, dir, archive.tablespace_oid == 0 ? links : std::map<std::string, std::string>{},
          key, on_bytes, check);
    });
  }
  return contents;
}

// The block map object of diff / incr (or full) `backup`.
const BackupObject& BlockMapOf(const BackupRecord& backup) {
  if (backup.blockmap.name.empty()) {
    Fail(ErrorCode::kCorrupt, "{} backup {} has no block map", ToString(backup.type), backup.label);
  }
  return backup.blockmap;
}

// A delta must list exactly the files of its backup's manifest, at their size.
void CheckDeltaCoversManifest(const ChainContents& contents, const BackupManifest& manifest,
                              const std::string& label) {
  std::map<std::string, uint64_t> listed;
  for (const auto& [oid, archive] : contents) {
    for (const auto& [path, size] : archive.files) listed[ManifestPath(oid, path)] = size;
  }
  for (const auto& file : manifest.files) {
    const auto it = listed.find(file.path);
    if (it == listed.end()) {
      Fail(ErrorCode::kCorrupt, "backup {}: {} of its manifest is missing from its delta archives",
           label, file.path);
    }
    if (it->second != file.size) {
      Fail(ErrorCode::kCorrupt, "backup {}: {} has {} bytes in its delta archives, {} in its manifest",
           label, file.path, it->second, file.size);
    }
    listed.erase(it);
  }
  if (!listed.empty()) {
    Fail(ErrorCode::kCorrupt, "{} is in backup {} but not in its manifest", listed.begin()->first,
         label);
  }
}

// What RemoveUnlisted leaves in the data directory although no backup holds
// it: walctl's own lock (restore --delta) and the held-back pg_control.
const std::set<std::string> kKeptInDataDirectory = {"postmaster.pid", kPgControlStandIn};

// Removes what the chain's older backups left beneath `dir` (the restored
// directory of one archive) that the delta just applied does not list: files
// and directories deleted since (directories holding a listed file stay).
// Symbolic links are left (pg_tblspc/<oid>), and so are the files `keep`
// names.

void RemoveUnlisted(int dir, const std::string& shown, const DeltaContents& contents,
                    const std::set<std::string>& keep = {}) {
  std::set<std::string> ancestors;
  for (const auto& [path, size] : contents.files) {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      ancestors.insert(path.substr(0, slash));
    }
  }
  WalkBeneath(dir, shown, [&](int parent, const std::string& name, const std::string& rel,
                              const struct stat& st) {
    if (S_ISREG(st.st_mode) && !contents.files.contains(rel) && !keep.contains(rel)) {
      if (unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT) {
        FailErrno(errno, fmt::format("could not remove {}/{}", shown, rel));
      }
    }
    if (!S_ISDIR(st.st_mode)) return WalkStep::kSkip;
    if (contents.directories.contains(rel) || ancestors.contains(rel)) return WalkStep::kDescend;
    RemoveDirectoryTree(parent, name, shown + "/" + rel);
    return WalkStep::kSkip;
  });
}

constexpr char kDeltaLockTag[] = "walctl restore --delta";

// The contents of walctl's postmaster.pid: PostgreSQL reads the first line as
// the PID holding the directory and refuses to start while it lives.
std::string DeltaLockText(pid_t pid) { return fmt::format("{}\n{}\n", pid, kDeltaLockTag); }

// The first bytes of `dir_fd`'s postmaster.pid (nullopt: none, or a link).
std::optional<std::string> ReadPostmasterPid(int dir_fd) {
  const int fd = openat(dir_fd, "postmaster.pid", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[256];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  if (n < 0) return std::nullopt;
  return std::string(buffer, static_cast<size_t>(n));
}

// Removes the postmaster.pid a killed walctl restore --delta left (its PID
// is gone); false when postmaster.pid is anything else.
bool RemoveStaleDeltaLock(const fs::path& root) {
  const int dir_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return false;
  const auto text = ReadPostmasterPid(dir_fd);
  close(dir_fd);
  if (!text) return false;
  const size_t newline = text->find('\n');
  const auto pid = TryParseNumber<int>(std::string_view(*text).substr(0, newline));
  if (!pid || *pid <= 0 || *text != DeltaLockText(*pid)) return false;
  if (kill(*pid, 0) == 0 || errno != ESRCH) return false;
  Log(LogLevel::kNotice, "removing the postmaster.pid of a restore --delta (PID {}) that was "
      "killed", *pid);
  if (unlink((root / "postmaster.pid").c_str()) != 0 && errno != ENOENT) {
    FailErrno(errno, "could not remove " + (root / "postmaster.pid").string());
  }
  return true;
}

// The database system identifier in `root`'s global/pg_control (the first
// field of PostgreSQL's ControlFileData, a uint64 in host byte order), if
// the file is there.
std::optional<uint64_t> ReadPgControlSystemId(const fs::path& root) {
  const fs::path path = root / "global" / "pg_control";
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    FailErrno(errno, "could not open " + path.string());
  }
  uint64_t id = 0;
  const ssize_t n = pread(fd, &id, sizeof id, 0);
  const int err = errno;
  close(fd);
  if (n < 0) FailErrno(err, "could not read " + path.string());
  if (n != sizeof id) Fail(ErrorCode::kUsage, "{} is too short for a pg_control", path.string());
  return id;
}

// walctl restore --delta holds the directory with a postmaster.pid of its
// own (O_EXCL), so no server starts in it until the restore is done;
// released (removed) last, or on failure, only while it is still the file
// walctl created.
class DeltaLock {
 public:
  explicit DeltaLock(const TargetDir& target) : target_(target), text_(DeltaLockText(getpid())) {
    const int fd = openat(target.fd(), "postmaster.pid",
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("could not create postmaster.pid in {}: {} (a server started "
                              "there?)", target.root(), std::strerror(errno)),
                  "stop the server and run the restore again");
    }
    const ssize_t rc = write(fd, text_.data(), text_.size());
    struct stat st {}, dir {};
    // Owned as the directory is, so a server started after a kill can take it over.
    const bool ok = rc == static_cast<ssize_t>(text_.size()) && fstat(target.fd(), &dir) == 0 &&
                    (geteuid() != 0 || fchown(fd, dir.st_uid, dir.st_gid) == 0) &&
                    fstat(fd, &st) == 0 && fsync(fd) == 0;
    const int err = errno;
    close(fd);
    if (!ok) {
      unlinkat(target.fd(), "postmaster.pid", 0);
      FailErrno(err, "could not write postmaster.pid in " + target.root());
    }
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    held_ = true;
  }
  DeltaLock(const DeltaLock&) = delete;
  DeltaLock& operator=(const DeltaLock&) = delete;
  ~DeltaLock() {
    if (held_ && StillOurs()) unlinkat(target_.fd(), "postmaster.pid", 0);
  }
  // Fails unless postmaster.pid is still the file walctl created.
  void Check() const {
    if (!StillOurs()) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("postmaster.pid in {} is no longer the one walctl restore --delta "
                              "created: something else (a server?) is using the directory",
                              target_.root()),
                  "stop whatever started in the directory, then run the restore again");
    }
  }
  // Removes postmaster.pid, durably.
  void Release() {
    Check();
    if (unlinkat(target_.fd(), "postmaster.pid", 0) != 0) {
      FailErrno(errno, "could not remove postmaster.pid in " + target_.root());
    }
    held_ = false;
    if (fsync(target_.fd()) != 0) FailErrno(errno, "fsync " + target_.root());
  }

 private:
  bool StillOurs() const {
    struct stat st {};
    if (fstatat(target_.fd(), "postmaster.pid", &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        st.st_dev != dev_ || st.st_ino != ino_) {
      return false;
    }
    const auto text = ReadPostmasterPid(target_.fd());
    return text && *text == text_;
  }

  const TargetDir& target_;
  std::string text_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  bool held_ = false;
};

// walctl restore --delta: whether `root` holds a data directory to update in
// place (false: missing or empty, restored as without --delta); refuses one
// that may not be.
bool CheckDeltaTarget(const fs::path& root, const BackupRecord& backup) {
  if (IsMissingOrEmptyDir(root.string())) return false;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    Fail(ErrorCode::kUsage, "data directory {} is not a directory", root.string());
  }
  if (fs::symlink_status(root / "postmaster.pid", ec).type() != fs::file_type::not_found &&
      !RemoveStaleDeltaLock(root)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("data directory {} holds postmaster.pid: a server is running in it, "
                            "or one crashed there; restore --delta does not touch it",
                            root.string()),
                fmt::format("stop the server (pg_ctl -D {} stop); if none runs (pg_ctl status "
                            "says so), remove postmaster.pid and run the restore again",
                            root.string()));
  }
  if (const auto id = ReadPgControlSystemId(root); id && *id != backup.system_id) {
    throw Error(ErrorCode::kUsage,
                fmt::format("data directory {} belongs to database system {}, backup {} to {}: "
                            "restore --delta only updates the cluster the backup was taken from",
                            root.string(), *id, backup.label, backup.system_id),
                "check the directory; to replace another cluster, restore into an empty or new "
                "directory without --delta");
  }
  if (!fs::is_regular_file(fs::symlink_status(root / "PG_VERSION", ec))) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} is not a PostgreSQL data directory (no PG_VERSION): restore "
                            "--delta only updates one", root.string()),
                "give a data directory, or an empty or new directory for a full restore");
  }
  for (const auto& archive : backup.archives) {
    if (archive.tablespace_oid != 0) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("backup {} has tablespaces (OID {}): restore --delta does not "
                              "update tablespaces", backup.label, archive.tablespace_oid),
                  "restore into an empty or new directory without --delta");
    }
  }
  if (backup.blockmap.name.empty()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("backup {} has no block map (an older walctl took it): restore "
                            "--delta cannot check the updated directory against it",
                            backup.label),
                "restore into an empty or new directory without --delta");
  }
  return true;
}

// Removes everything beneath `root` that is neither a regular file nor a
// directory (a symbolic link is removed, never followed): a data directory
// restored without tablespaces has none.
void RemoveSpecialEntries(int dir, const std::string& shown) {
  WalkBeneath(dir, shown, [&](int parent, const std::string& name, const std::string& rel,
                              const struct stat& st) {
    if (S_ISDIR(st.st_mode)) return WalkStep::kDescend;
    if (!S_ISREG(st.st_mode) && unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT) {
      FailErrno(errno, fmt::format("could not remove {}/{}", shown, rel));
    }
    return WalkStep::kSkip;
  });
}

// A delta restore that fails removes global/pg_control again, so the
// directory is never started half-updated.
class PgControlGuard {
 public:
  explicit PgControlGuard(TargetDir* target) : target_(target) {}
  void Remove() const {
    if (target_ && unlinkat(target_->fd(), "global/pg_control", 0) != 0 && errno != ENOENT) {
      FailErrno(errno, "could not remove global/pg_control in " + target_->root());
    }
  }
  void Commit() { target_ = nullptr; }
  ~PgControlGuard() {
    if (target_) unlinkat(target_->fd(), "global/pg_control", 0);
  }

 private:
  TargetDir* target_;
};

// Where the file of manifest path `path` was restored (ManifestPath's inverse).
fs::path RestoredPath(const std::string& path, const fs::path& root,
                      const std::map<uint32_t, fs::path>& tablespace_dirs) {
  if (path == kPgControlPath) return root / kPgControlStandIn;  // held back until the end
  if (!path.starts_with("pg_tblspc/")) return root / path;
  const size_t slash = path.find('/', 10);
  const auto oid = TryParseNumber<uint32_t>(std::string_view(path).substr(10, slash - 10));
  const auto it = oid ? tablespace_dirs.find(*oid) : tablespace_dirs.end();
  if (slash == std::string::npos || it == tablespace_dirs.end()) {
    Fail(ErrorCode::kCorrupt, "{} of the backup is in none of its tablespaces", path);
  }
  return it->second / path.substr(slash + 1);
}

// Reads up to one block; fewer bytes only at the end of the file.
size_t ReadBlock(int fd, std::vector<uint8_t>& block, const fs::path& path) {
  size_t done = 0;
  while (done < block.size()) {
    const ssize_t n = read(fd, block.data() + done, block.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno(errno, "could not read " + path.string());
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// Reads every file of diff / incr `backup` back from the restored
// directories, in the order of the backup's own block map (streamed: one
// block in memory), and checks each 8 KiB block's hash and the size against
// it, and the size and checksum against the manifest.  The block map was
// computed from the very bytes BASE_BACKUP sent, so this holds whatever the
// manifest's checksum algorithm (NONE included).  Returns the bytes read.
uint64_t CheckRestoredFiles(Storage& storage, const Config& config, const BackupRecord& backup,
                            const fs::path& root,
                            const std::map<uint32_t, fs::path>& tablespace_dirs,
                            ManifestChecker& checker, const std::function<void(uint64_t)>& on_bytes) {
  const std::string key = BackupObjectKey(backup.system_id, backup.label, BlockMapOf(backup).name);
  std::vector<uint8_t> block(kDeltaBlockSize);
  uint64_t total = 0;
  DecodeArchive(storage, config, backup, backup.blockmap, kBlockMapJobs, [&](ReadStream& in) {
    BlockMapReader map(in, key);
    while (const auto file = map.NextFile()) {
      const ManifestFile* entry = checker.Find(file->path);
      if (!entry) {
        Fail(ErrorCode::kCorrupt, "{} is in the block map of backup {} but not in its manifest",
             file->path, backup.label);
      }
      const fs::path path = RestoredPath(file->path, root, tablespace_dirs);
      const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        Fail(ErrorCode::kCorrupt, "{} of the backup was not restored ({})", file->path,
             std::strerror(errno));
      }
      struct Closer {
        int fd;
        ~Closer() { close(fd); }
      } closer{fd};
      auto checksum = MakeFileChecksum(entry->algorithm);
      uint64_t size = 0;
      for (uint64_t index = 0;; ++index) {
        const size_t n = ReadBlock(fd, block, path);
        if (n == 0) break;
        const Bytes data(block.data(), n);
        if (index >= file->blocks || HashBlock(data) != map.NextHash()) {
          Fail(ErrorCode::kCorrupt,
               "restored {} differs from the block map of backup {} at block {}: the chain "
               "reassembled other data than the backup took",
               file->path, backup.label, index);
        }
        if (checksum) checksum->Update(data);
        size += n;
        on_bytes(n);
      }
      if (size != file->size) {
        Fail(ErrorCode::kCorrupt, "restored {} has {} bytes, the block map of backup {} says {}",
             file->path, size, backup.label, file->size);
      }
      checker.Check(*entry, size, checksum ? checksum->FinalHex() : "");
      total += size;
    }
  });
  if (const auto unseen = checker.Unseen(); !unseen.empty()) {
    Fail(ErrorCode::kCorrupt, "{} files of the manifest of backup {} are not in its block map "
         "(first: {})", unseen.size(), backup.label, unseen.front());
  }
  return total;
}

BackupManifest LoadManifest(Storage& storage, const Config& config, const BackupRecord& backup,
                            std::string* text_out = nullptr) {
  const std::string key = BackupObjectKey(backup.system_id, backup.label, kManifestName);
  auto text = ReadSmallObject(storage, config, key);
  if (!text) Fail(ErrorCode::kCorrupt, "{} is missing", key);
  BackupManifest manifest = ParseManifest(*text, key);
  if (text_out) *text_out = std::move(*text);
  return manifest;
}

std::string EscapePercent(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

// The owner restored files get when walctl runs as root.
std::optional<std::pair<uid_t, gid_t>> ChooseOwner(const fs::path& dir, const std::string& owner,
                                                   bool delta) {
  if (geteuid() != 0) return std::nullopt;
  if (!owner.empty()) {
    struct passwd* pw = getpwnam(owner.c_str());
    if (!pw) Fail(ErrorCode::kUsage, "unknown user '{}' for --owner", owner);
    return std::make_pair(pw->pw_uid, pw->pw_gid);
  }
  struct stat st {};
  // An existing cluster keeps its owner, whoever that is.
  if (delta && stat(dir.c_str(), &st) == 0) return std::make_pair(st.st_uid, st.st_gid);
  const fs::path parent = fs::path(AbsolutePath(dir)).parent_path();
  if (stat(parent.c_str(), &st) == 0 && st.st_uid != 0) return std::make_pair(st.st_uid, st.st_gid);
  if (struct passwd* pw = getpwnam("postgres")) return std::make_pair(pw->pw_uid, pw->pw_gid);
  return std::nullopt;
}

void ChownTree(int dir, const std::string& shown, uid_t uid, gid_t gid) {
  if (fchown(dir, uid, gid) != 0) FailErrno(errno, "chown " + shown);
  WalkBeneath(dir, shown, [&](int parent, const std::string& name, const std::string& rel,
                              const struct stat& st) {
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      Fail(ErrorCode::kUsage, "{}/{} has another hard link: walctl does not chown a file shared "
           "with a name elsewhere", shown, rel);
    }
    if (fchownat(parent, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
      FailErrno(errno, fmt::format("chown {}/{}", shown, rel));
    }
    return WalkStep::kDescend;
  });
}

void SyncTree(const fs::path& root) {
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) FailErrno(errno, "open " + root.string());
  int rc = syncfs(fd);
  int err = errno;
  close(fd);
  if (rc != 0) FailErrno(err, "syncfs " + root.string());
}

}  // namespace

BlockMap LoadBlockMap(Storage& storage, const Config& config, const BackupRecord& backup) {
  const BackupObject& object = BlockMapOf(backup);
  BlockMap map;
  DecodeArchive(storage, config, backup, object, kBlockMapJobs, [&](ReadStream& in) {
    map = ReadBlockMap(in, BackupObjectKey(backup.system_id, backup.label, object.name));
  });
  return map;
}

void VerifyBlockMap(Storage& storage, const Config& config, const BackupRecord& backup) {
  const BackupObject& object = BlockMapOf(backup);
  DecodeArchive(storage, config, backup, object, kBlockMapJobs, [&](ReadStream& in) {
    BlockMapReader map(in, BackupObjectKey(backup.system_id, backup.label, object.name));
    while (const auto file = map.NextFile()) {
      for (uint64_t i = 0; i < file->blocks; ++i) map.NextHash();
    }
  });
}

uint64_t VerifyBackupContents(Storage& storage, const Config& config, const BackupRecord& backup,
                              const BackupRecord* reference, int jobs) {
  BackupManifest manifest = LoadManifest(storage, config, backup);
  if (backup.type != BackupType::kFull) {
    std::optional<BlockMap> reference_map;
    if (reference) reference_map = LoadBlockMap(storage, config, *reference);
    uint64_t bytes = 0;
    ChainContents contents;
    const std::string key = BackupObjectKey(backup.system_id, backup.label, BlockMapOf(backup).name);
    DecodeArchive(storage, config, backup, backup.blockmap, kBlockMapJobs, [&](ReadStream& in) {
      BlockMapReader own(in, key);
      BlockMapCrossCheck check(own, reference_map ? &*reference_map : nullptr, backup.label);
      contents = ApplyDeltaArchives(storage, config, backup, jobs, nullptr, {},
                                    [&](uint64_t n) { bytes += n; }, &check);
      check.Finish();
    });
    CheckDeltaCoversManifest(contents, manifest, backup.label);
    return bytes;
  }
  ManifestChecker checker(manifest);
  BackupExtractor extractor(checker, [](uint64_t) {});
  ExtractArchives(storage, config, backup, extractor, nullptr, {}, jobs);
  return extractor.bytes();
}

void RecoveryTarget::Validate() const {
  int count = (time ? 1 : 0) + (xid ? 1 : 0) + (name ? 1 : 0) + (lsn ? 1 : 0) + (immediate ? 1 : 0);
  if (count > 1) Fail(ErrorCode::kUsage, "give at most one recovery target");
  if (!action.empty() && action != "pause" && action != "promote" && action != "shutdown") {
    Fail(ErrorCode::kUsage, "--target-action must be pause, promote or shutdown");
  }
  if (lsn) ParseLsn(*lsn);
  // PostgreSQL would only refuse these at startup, after the whole restore.
  if (xid) ParseNumber<uint64_t>(*xid, ErrorCode::kUsage, "--target-xid");
  if (!timeline.empty() && timeline != "latest" && timeline != "current") {
    ParseNumber<uint32_t>(timeline, ErrorCode::kUsage, "--target-timeline (else latest or current)");
  }
  if (time && !ParseTimestamp(*time)) {
    Fail(ErrorCode::kUsage, "cannot parse --target-time '{}' (use e.g. '2026-11-21 11:20:14+00')",
         *time);
  }
}

std::string RecoveryTarget::ConfLines() const {
  std::string out;
  auto line = [&](const char* key, const std::string& value) {
    out += fmt::format("{} = {}\n", key, ConfQuote(value));
  };
  if (time) line("recovery_target_time", *time);
  if (xid) line("recovery_target_xid", *xid);
  if (name) line("recovery_target_name", *name);
  if (lsn) line("recovery_target_lsn", *lsn);
  if (immediate) line("recovery_target", "immediate");
  if (any()) line("recovery_target_action", action.empty() ? "promote" : action);
  if (exclusive) line("recovery_target_inclusive", "off");
  if (!timeline.empty()) line("recovery_target_timeline", timeline);
  return out;
}

std::string MakeRestoreCommand(const Config& config, const std::string& walfetch) {
  std::string command = ShellQuote(walfetch);
  // What the config file alone says need not be repeated; what came from the
  // environment or the command line must be, as the server's environment differs.
  Config file_only;
  if (!config.source_path.empty()) {
    command += " --config " + ShellQuote(AbsolutePath(config.source_path));
    file_only = LoadConfig(config.source_path, [](const std::string&) { return std::nullopt; });
    // One of the file's [[repository]] tables, however many (file_only.repo_url
    // is empty then): walfetch with the file alone tries them all, this one
    // with its own settings ([repository.s3], keys, ...), which a URL would lose.
    for (const Config& table : file_only.repositories) {
      if (file_only.repo_url.empty() && SameRepositoryUrl(table.repo_url, config.repo_url)) {
        const Config same = table;
        file_only = same;
        break;
      }
    }
  }
  if (!SameRepositoryUrl(config.repo_url, file_only.repo_url)) {
    command += " --repo " + ShellQuote(config.repo_url);
  }
  if (config.key_file == file_only.key_file) {
    // from the config file: nothing to add
  } else if (!config.key_file.empty()) {
    command += " --key-file " + ShellQuote(AbsolutePath(config.key_file));
  } else if (config.key) {
    Log(LogLevel::kWarning,
        "the encryption key came from WALSTORE_ENCRYPTION_KEY, which restore_command cannot "
        "repeat; set it in the server's environment or use a key file");
  }
  if (config.allow_plaintext_objects && !file_only.allow_plaintext_objects) {
    command = "WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 " + command;  // sh runs restore_command
  }
  return EscapePercent(command) + " %f %p";
}

RestoreResult RunRestore(Storage& storage, const Config& config, uint64_t system_id,
                         const RestoreOptions& options) {
  double started = NowSeconds();
  options.target.Validate();
  auto records = LoadBackups(storage, config, system_id);
  std::optional<double> target_time =
      options.target.time ? ParseTimestamp(*options.target.time) : std::nullopt;
  std::optional<uint64_t> target_lsn =
      options.target.lsn ? std::optional<uint64_t>(ParseLsn(*options.target.lsn)) : std::nullopt;
  RestoreResult result;
  result.backup = SelectBackup(records, options.backup, target_time, target_lsn);
  const BackupRecord& backup = result.backup;
  const int jobs = options.jobs > 0 ? options.jobs : WalctlJobs(config);
  result.jobs = jobs;
  Log(LogLevel::kInfo, "restoring backup {} (stopped {} at {}), decoding with {} jobs", backup.label,
      FormatUtc(static_cast<std::time_t>(backup.stop_time)), FormatLsn(backup.stop_lsn), jobs);

  auto missing = WaitForWal(storage, system_id, RequiredWal(backup), 0);
  if (!missing.empty()) {
    throw Error(ErrorCode::kVerifyFailed,
                fmt::format("backup {} needs WAL {} .. {}, but {} is not in the archive",
                            backup.label, backup.wal_start, backup.wal_stop, missing.front()),
                "the backup cannot reach a consistent state; choose another backup");
  }
  if (options.restore_command.empty() && options.walfetch.empty() && !FindProgram("walfetch")) {
    Fail(ErrorCode::kConfig, "walfetch not found next to walctl or on PATH; use --walfetch");
  }
  result.restore_command =
      !options.restore_command.empty()
          ? options.restore_command
          : MakeRestoreCommand(config, options.walfetch.empty()
                                           ? *FindProgram("walfetch")
                                           : AbsolutePath(options.walfetch));

  const std::vector<const BackupRecord*> chain = RestoreChain(records, backup);
  if (chain.size() > 1) {
    Log(LogLevel::kInfo, "backup {} is a {}: restoring its chain {}", backup.label,
        ToString(backup.type), fmt::join(backup.chain, " -> "));
  }
  std::string manifest_text;
  const BackupManifest manifest = LoadManifest(storage, config, backup, &manifest_text);
  ManifestChecker checker(manifest);

  const fs::path root = AbsolutePath(options.target_dir);
  result.delta = options.delta && CheckDeltaTarget(root, backup);
  CleanupGuard cleanup;
  if (!result.delta) cleanup.Add(root, PrepareEmptyDir(root, "data directory"));
  TargetDir target(root.string());
  target.HoldBack(kPgControlPath, kPgControlStandIn);
  std::optional<DeltaLock> lock;
  PgControlGuard pg_control(result.delta ? &target : nullptr);
  if (result.delta) {
    lock.emplace(target);
    Log(LogLevel::kNotice, "updating data directory {} in place: it cannot be started until "
        "this restore completes", root.string());
    // global/pg_control goes first, durably, so whatever happens next (a
    // kill, a crash, a failure) leaves a directory that does not start; then
    // the old WAL (a restored pg_wal is empty), also durably, before any
    // byte is written in place.
    pg_control.Remove();
    std::error_code ec;
    if (fs::is_directory(fs::symlink_status(root / "global", ec))) {
      SyncDirectory((root / "global").string());
    }
    SyncDirectory(root.string());
    RemoveSpecialEntries(target.fd(), root.string());
    if (const int pg_wal = openat(target.fd(), "pg_wal", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                             O_CLOEXEC);
        pg_wal >= 0) {
      const std::string shown = (root / "pg_wal").string();
      struct Closer {
        int fd;
        ~Closer() { close(fd); }
      } closer{pg_wal};
      RemoveUnlisted(pg_wal, shown, DeltaContents{{}, {"archive_status"}});
      if (fsync(pg_wal) != 0) FailErrno(errno, "could not fsync " + shown);
    } else if (errno != ENOENT) {
      FailErrno(errno, "could not open " + (root / "pg_wal").string());
    }
    if (unlinkat(target.fd(), "recovery.signal", 0) != 0 && errno != ENOENT) {
      FailErrno(errno, "could not remove recovery.signal in " + root.string());
    }
    SyncDirectory(root.string());
  }
  std::map<uint32_t, fs::path> tablespace_dirs;
  TablespaceTargets tablespace_targets;
  for (const auto& archive : backup.archives) {
    if (archive.tablespace_oid == 0) continue;
    auto it = options.tablespace_map.find(archive.tablespace_path);
    const bool mapped = it != options.tablespace_map.end();
    if (!mapped) CheckRecordedTablespacePath(config, backup.label, archive);
    const fs::path dir = AbsolutePath(mapped ? it->second : archive.tablespace_path);
    if (Overlaps(dir, root)) {
      Fail(ErrorCode::kUsage, "tablespace {} would be restored to \"{}\", which overlaps the data "
           "directory \"{}\"; give it another place with --tablespace-map",
           archive.tablespace_oid, dir.string(), root.string());
    }
    cleanup.Add(dir, PrepareEmptyDir(dir, "tablespace directory"));
    tablespace_dirs[archive.tablespace_oid] = dir;
    tablespace_targets[archive.tablespace_oid] = std::make_unique<TargetDir>(dir.string());
  }

  uint64_t total = 0;
  for (const auto& file : manifest.files) total += file.size;
  if (chain.size() > 1 || result.delta) {
    // The full backup, each delta applied on top, then every file read back.
    total *= 2;
    for (size_t i = 1; i < chain.size(); ++i) total += chain[i]->size();
  }
  ProgressReporter progress(options.progress, total);
  const auto advance = [&](uint64_t n) { progress.Advance(n); };
  if (chain.size() == 1 && !result.delta) {
    BackupExtractor extractor(checker, advance);
    ExtractArchives(storage, config, backup, extractor, &target, tablespace_targets, jobs);
    result.files = extractor.files();
    result.bytes = extractor.bytes();
    result.bytes_written = extractor.written();
  } else if (chain.size() == 1) {
    // Compared and updated in place; then read back whole from disk.
    ManifestChecker extract_checker(manifest);
    BackupExtractor extractor(extract_checker, advance);
    DeltaContents listed;
    extractor.UpdateInPlace(listed);
    ExtractArchives(storage, config, backup, extractor, &target, tablespace_targets, jobs);
    lock->Check();
    RemoveUnlisted(target.fd(), root.string(), listed, kKeptInDataDirectory);
    result.bytes_written = extractor.written();
    result.bytes = CheckRestoredFiles(storage, config, backup, root, tablespace_dirs, checker,
                                      advance);
    result.files = manifest.files.size();
  } else {
    // The full backup is checked against its own manifest as it is laid down.
    const BackupManifest full_manifest = LoadManifest(storage, config, *chain.front());
    ManifestChecker full_checker(full_manifest);
    BackupExtractor extractor(full_checker, advance);
    DeltaContents listed;
    if (result.delta) extractor.UpdateInPlace(listed);
    ExtractArchives(storage, config, *chain.front(), extractor, &target, tablespace_targets,
                    jobs);
    result.bytes_written = extractor.written();
    ChainContents contents;
    for (size_t i = 1; i < chain.size(); ++i) {
      // Every block a delta stores is written (compared only in the full).
      contents = ApplyDeltaArchives(storage, config, *chain[i], jobs, &target, tablespace_targets,
                                    [&](uint64_t n) {
                                      result.bytes_written += n;
                                      advance(n);
                                    });
      // What was deleted since goes now: disk use stays near each step's size.
      if (lock) lock->Check();
      RemoveUnlisted(target.fd(), root.string(), contents[0], kKeptInDataDirectory);
      for (const auto& [oid, dir] : tablespace_targets) {
        RemoveUnlisted(dir->fd(), dir->root(), contents[oid]);
      }
    }
    CheckDeltaCoversManifest(contents, manifest, backup.label);
    // The restored backup's block map and manifest are the authority on the
    // reassembled files.
    result.bytes = CheckRestoredFiles(storage, config, backup, root, tablespace_dirs, checker,
                                      advance);
    result.files = manifest.files.size();
  }
  progress.Finish();
  // A backup taken from a standby holds its standby.signal: left there, the
  // restored cluster would wait for the old primary (primary_conninfo)
  // instead of recovering from the archive to its target and ending recovery.
  if (unlinkat(target.fd(), "standby.signal", 0) == 0) {
    Log(LogLevel::kNotice,
        "backup {} was taken from a standby: its standby.signal is not restored "
        "(walctl restore prepares archive recovery with recovery.signal)",
        backup.label);
  } else if (errno != ENOENT) {
    FailErrno(errno, "could not remove standby.signal in " + root.string());
  }
  target.MakeDirectory("pg_wal", 0700);
  target.MakeDirectory("pg_wal/archive_status", 0700);
  target.WriteFile("backup_manifest", manifest_text);
  std::string settings =
      fmt::format("\n# Added by walctl restore of backup {} at {}\n", backup.label,
                  FormatUtc(static_cast<std::time_t>(NowSeconds())));
  settings += "restore_command = " + ConfQuote(result.restore_command) + "\n";
  settings += options.target.ConfLines();
  if (options.archive_off) settings += "archive_mode = 'off'\n";
  target.WriteFile("postgresql.auto.conf", settings, true);
  target.WriteFile("recovery.signal", "", true);
  if (fchmod(target.fd(), 0700) != 0) FailErrno(errno, "chmod " + root.string());
  if (auto owner = ChooseOwner(root, options.owner, result.delta)) {
    ChownTree(target.fd(), root.string(), owner->first, owner->second);
    for (const auto& [oid, dir] : tablespace_targets) {
      ChownTree(dir->fd(), dir->root(), owner->first, owner->second);
    }
  }
  SyncTree(root);
  for (const auto& [oid, dir] : tablespace_dirs) SyncTree(dir);
  // Only now, with everything else durable, can the directory start.
  target.PublishHeldBack();
  cleanup.Commit();
  pg_control.Commit();
  if (lock) lock->Release();  // last: the directory may be started now
  result.seconds = NowSeconds() - started;
  return result;
}

}  // namespace walstore::backup
