// Extracting a base backup's tars beneath a restore directory, and never
// outside it, whatever the tars and the manifest in the repository say.
//
// The repository is not trusted with the local file system: a damaged or
// hostile backup must fail the restore (Error kCorrupt) before anything is
// written outside the target.  So:
// - member paths are relative, '/'-separated, without empty, "." or ".."
//   components (MemberPathProblem) once a leading "./" is dropped
//   (PostgreSQL writes "./pg_wal/archive_status");
// - every path is resolved from the target's directory descriptor without
//   following any symbolic link (openat2 RESOLVE_BENEATH |
//   RESOLVE_NO_SYMLINKS, or, on kernels without openat2, a walk with
//   O_NOFOLLOW at every component); files are created with O_EXCL |
//   O_NOFOLLOW and their mode set through the descriptor (fchmod);
// - a regular file must be listed in PostgreSQL's backup manifest (checked
//   before it is created); directories need not be (the manifest lists
//   files only, and a data directory has empty ones);
// - the only symbolic links made are the ones PostgreSQL's layout has,
//   pg_tblspc/<oid> of the data directory's tar for a tablespace of the
//   backup, and they point at the directory that tablespace is restored to
//   (not at what the tar says);
// - hard links and other member types are refused.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <walstore/stream.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "backup/delta.h"
#include "backup/manifest.h"

namespace walstore::backup {

// Why `path` may not be a member path ("" when it may): empty, absolute, or
// with an empty, "." or ".." component.
std::string MemberPathProblem(const std::string& path);

// What WalkBeneath does after visiting a directory.
enum class WalkStep { kDescend, kSkip };
// Called for every entry beneath the walked directory: `parent` is the
// descriptor of the directory holding it, `name` its name there, `rel` its
// path from the walked directory, `st` its lstat.  The visitor may remove the
// entry (unlinkat on `parent`) and then returns kSkip.
using WalkVisitor = std::function<WalkStep(int parent, const std::string& name,
                                           const std::string& rel, const struct stat& st)>;
// Called after the walk left a directory it descended into (all it holds
// was visited): `parent`, `name` and `rel` as for the visitor.  A removal
// walk removes the directory here (unlinkat AT_REMOVEDIR on `parent`).
using WalkLeave =
    std::function<void(int parent, const std::string& name, const std::string& rel)>;
// Visits what directory `dir` (a descriptor) holds, depth first, a directory
// before what it holds (and `leave`, when given, after it), from descriptors
// only: every directory is opened with O_NOFOLLOW from its parent's
// descriptor, so replacing a directory by a symbolic link while the walk runs
// can never lead it (or the visitor's *at() calls) outside.  `shown` names
// `dir` in messages.
void WalkBeneath(int dir, const std::string& shown, const WalkVisitor& visit,
                 const WalkLeave& leave = {});
// Removes directory `name` of `parent` with all it holds, never following a
// link; first checks that no directory beneath it is on another file system
// (throws kUsage naming it: a mount point is not the backup's to delete).
void RemoveDirectoryTree(int parent, const std::string& name, const std::string& shown);

// Writes all `size` bytes at `offset` of `fd` (pwrite; the file offset is
// not used); throws kLocalIo / kNoSpace naming `what`.
void WriteFullyAt(int fd, const uint8_t* data, size_t size, uint64_t offset,
                  const std::string& what);
// Reads up to `size` bytes at `offset` of `fd`; fewer only at its end.
size_t ReadFullyAt(int fd, uint8_t* data, size_t size, uint64_t offset, const std::string& what);

// A directory that relative paths are resolved beneath, never through a
// symbolic link.  Throws Error(kCorrupt) for a path that would leave it or
// cross a symlink, kLocalIo for other file system errors.
class TargetDir {
 public:
  // Opens `root`, an existing directory.
  explicit TargetDir(const std::string& root);
  ~TargetDir();
  TargetDir(const TargetDir&) = delete;
  TargetDir& operator=(const TargetDir&) = delete;

  // Creates directory `rel` (and missing parents, 0700) unless it exists as
  // a directory; sets its mode through its descriptor.
  void MakeDirectory(const std::string& rel, mode_t mode);
  // Creates file `rel` (O_EXCL | O_NOFOLLOW; missing parents are created)
  // and returns its descriptor, which the caller closes.  With append, an
  // existing regular file is opened for appending instead.
  int CreateFile(const std::string& rel, mode_t mode, bool append = false);
  // Opens regular file `rel` for reading and writing in place (pread, pwrite, ftruncate),
  // creating it when missing; never follows a symbolic link.  A file with
  // more than one hard link is unlinked and created afresh (empty), so that
  // no write, truncate or chmod reaches the inode it shares with a name
  // elsewhere.
  int OpenFileForUpdate(const std::string& rel, mode_t mode);
  // Removes `rel` when it is a directory (want_directory false: with all it
  // holds) or a regular file (want_directory true), so that a later backup
  // of a chain can hold a file where an older one had a directory or the
  // reverse.  Anything else (missing, the wanted type, a link) is left.  A
  // directory goes by RemoveDirectoryTree: one that is, or holds, a mount
  // point is refused (kUsage naming it) before anything is removed.
  void RemoveIfOtherType(const std::string& rel, bool want_directory);
  // Creates the symbolic link `rel` -> `target`.
  void MakeSymlink(const std::string& rel, const std::string& target);
  // Writes (appends) `text` to `rel` as CreateFile does.
  void WriteFile(const std::string& rel, const std::string& text, bool append = false);
  // From now on, the file `rel` is written (CreateFile, OpenFileForUpdate)
  // under the name `stand_in` (same directory) instead, until
  // PublishHeldBack() renames it: restore holds back global/pg_control, so
  // that a restore killed at any point leaves a directory that does not
  // start.
  void HoldBack(const std::string& rel, const std::string& stand_in);
  // Renames the held-back file to its own name (replacing what has it) and
  // fsyncs their directory; nothing when it was not written (whether the
  // backup had to hold it is the manifest's to say).
  void PublishHeldBack();
  int fd() const { return fd_; }
  const std::string& root() const { return root_; }

  // For tests: resolve with the O_NOFOLLOW walk even where openat2 exists.
  static void ForceWalkForTesting(bool force);

 private:
  // An open descriptor of the directory holding the last component of
  // `rel` (created when missing); `leaf` gets that component.
  int OpenParent(const std::string& rel, std::string& leaf);
  // openat of `rel` with `flags`; refuses anything but a regular file.
  int OpenRegular(const std::string& rel, mode_t mode, int flags);

  std::string root_;
  int fd_ = -1;
  std::string held_back_, stand_in_;
};

// A restore writes the data directory's pg_control last, under this name
// until the restore is complete (TargetDir::HoldBack).
inline constexpr const char* kPgControlPath = "global/pg_control";
inline constexpr const char* kPgControlStandIn = "global/pg_control.walctl-new";

// Extracts tars of one backup, checking every file against its manifest
// (ManifestChecker), or with no TargetDir only checks them.
class BackupExtractor {
 public:
  BackupExtractor(ManifestChecker& checker, std::function<void(uint64_t)> on_bytes);

  // Extracts the tar `tar_stream` (named `what` in messages) into `target`
  // (nullptr: check only).  Manifest paths are `manifest_prefix` + member
  // path.  `links` maps the member paths that may be symbolic links
  // ("pg_tblspc/<oid>") to the target they get.
  void Extract(ReadStream& tar_stream, TargetDir* target, const std::string& manifest_prefix,
               const std::map<std::string, std::string>& links, const std::string& what);

  // walctl restore --delta: files already beneath the target are updated in
  // place, 8 KiB block by block, writing only the blocks whose bytes differ
  // (compared byte for byte with what is on disk, never by time or size),
  // and cut to their size; a file where the backup has a directory, or the
  // reverse, is removed first.  `listed` gets every directory and file (with
  // its size) the tars hold, for removing what they do not.
  void UpdateInPlace(DeltaContents& listed);

  uint64_t files() const { return files_; }
  uint64_t bytes() const { return bytes_; }
  // File bytes written beneath the target (all of them unless UpdateInPlace).
  uint64_t written() const { return written_; }
  ManifestChecker& checker() { return checker_; }

 private:
  ManifestChecker& checker_;
  std::function<void(uint64_t)> on_bytes_;
  // Writes the blocks of buffer_[0, n) that differ from `fd` at `offset`.
  void WriteChangedBlocks(int fd, size_t n, uint64_t offset, const std::string& path);

  std::vector<uint8_t> buffer_;
  std::vector<uint8_t> existing_;
  DeltaContents* listed_ = nullptr;
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
  uint64_t written_ = 0;
};

}  // namespace walstore::backup
