// Local files: a bounded-buffer reader, and an atomic writer that publishes a
// temp file under its final name only when asked.  Internal; used by the
// posix repository, walpush (reading %p) and walfetch (writing %p).
#pragma once

#include <sys/types.h>
#include <walstore/stream.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace walstore {

class FileReader : public ReadStream {
 public:
  // Throws kLocalIo (with the path) when the file cannot be opened.
  explicit FileReader(const std::string& path);
  // Adopts an open descriptor (closed by the destructor).
  FileReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileReader() override;
  size_t Read(MutableBytes out) override;
  // Reads from the start again (lseek to 0); throws kLocalIo on failure.
  void Rewind();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// A user and group that files and directories are given to (chown).
struct FileOwner {
  uid_t uid;
  gid_t gid;
};

// Writes `final_path` atomically: data goes to a hidden temp file
// ".<name>.walstore-tmp.<pid>.<12 hex>" in the same directory; Publish()
// fsyncs it, moves it under the final name and fsyncs the directory.
// Destroyed unpublished, the temp file is removed.  While it exists its path
// is registered for InstallTempFileSignalCleanup(); a SIGKILLed process
// leaves it behind, and the next writer in that directory removes it
// (RemoveStaleTempFiles).
class AtomicFileWriter : public WriteStream {
 public:
  AtomicFileWriter(std::string final_path, mode_t mode, bool create_parent_dirs);
  ~AtomicFileWriter() override;
  void Write(Bytes data) override;
  void Finish() override {}
  // replace=true: rename over an existing file.  replace=false: never replace;
  // returns false (and discards the temp file) when final_path exists, after
  // fsyncing it and its directory (its writer may not have yet).
  bool Publish(bool replace);
  // Overwrites bytes at the start of the temp file (before Publish).
  void RewriteHead(Bytes head);
  // Gives the temp file (and so the published file) to `owner` (fchown;
  // throws kLocalIo).
  void SetOwner(const FileOwner& owner);
  uint64_t bytes_written() const { return written_; }

 private:
  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  uint64_t writeback_started_ = 0;
  int signal_slot_ = -1;  // in the signal handler's table of temp files
};

inline constexpr const char* kTempMarker = ".walstore-tmp.";
// A temp file of a dead process is left alone for this long after its last
// write (a writer on another host of a shared file system has another PID
// space; it writes far more often than this).
inline constexpr int64_t kStaleTempAgeSeconds = 60;

// InstallTempFileSignalCleanup() (declared in walstore/cli.h for the tools'
// main()) makes SIGTERM, SIGINT and SIGHUP unlink the temp files of this
// process's AtomicFileWriters; its handler only reads a static table of paths.

// The owner PID in a temp file name ".<name>.walstore-tmp.<pid>.<hex>";
// nullopt for any other name.
std::optional<pid_t> TempFileOwner(std::string_view name);

struct StaleTempFile {
  std::string path;
  uint64_t size = 0;
  std::time_t modified = 0;
};

// The temp files directly in `dir` whose owner process is gone (kill(pid, 0)
// fails with ESRCH) and that were not written for kStaleTempAgeSeconds, or,
// whatever their PID, for `any_owner_after` seconds (0: never).  Only names
// of the temp pattern are looked at (lstat'ed); a missing directory has none.
std::vector<StaleTempFile> FindStaleTempFiles(const std::string& dir,
                                              int64_t any_owner_after = 0);
// Removes FindStaleTempFiles(dir); returns how many went.  Never throws.
size_t RemoveStaleTempFiles(const std::string& dir);

// mkdir -p, fsyncing each parent whose entries changed.
void MakeDirectories(const std::string& path);
// mkdir -p of `path` below `base` (path is base or below it), fsyncing as
// MakeDirectories, but never base itself or anything above it: false (and
// nothing created) when base does not exist.
// With `owner`, each directory it creates is given to that user and group.
bool MakeDirectoriesBelow(const std::string& base, const std::string& path,
                          const std::optional<FileOwner>& owner = std::nullopt);
void SyncDirectory(const std::string& path);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

}  // namespace walstore
