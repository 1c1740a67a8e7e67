// Local files: a bounded-buffer reader, and an atomic writer that publishes a
// temp file under its final name only when asked.  Internal; used by the
// posix repository, walpush (reading %p) and walfetch (writing %p).
#pragma once

#include <sys/types.h>
#include <walstore/stream.h>

#include <cstdint>
#include <string>

namespace walstore {

class FileReader : public ReadStream {
 public:
  // Throws kLocalIo (with the path) when the file cannot be opened.
  explicit FileReader(const std::string& path);
  // Adopts an open descriptor (closed by the destructor).
  FileReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileReader() override;
  size_t Read(MutableBytes out) override;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Writes `final_path` atomically: data goes to a hidden temp file in the same
// directory; Publish() fsyncs it, moves it under the final name and fsyncs
// the directory.  Destroyed unpublished, the temp file is removed; a killed
// process leaves only a hidden ".<name>.walstore-tmp.*" file.
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
  uint64_t bytes_written() const { return written_; }

 private:
  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  uint64_t writeback_started_ = 0;
};

inline constexpr const char* kTempMarker = ".walstore-tmp.";

// mkdir -p, fsyncing each parent whose entries changed.
void MakeDirectories(const std::string& path);
void SyncDirectory(const std::string& path);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

}  // namespace walstore
