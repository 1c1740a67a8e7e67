// Block-level differential and incremental backups (walctl backup --type
// diff|incr): the block map and the delta archive (docs/format.md).
//
// Every file of a backup is seen as 8 KiB blocks (the last one may be
// short).  A backup's block map holds, for every file, its size and a hash
// of each block (the first 16 bytes of the block's SHA-256).  A diff or incr
// compares the files BASE_BACKUP streams with its reference's block map and
// stores, per tablespace archive, a delta archive: every directory, symbolic
// link and file of the backup, each file with its size, mode and only the
// blocks whose hash differs from the reference's (an unchanged file carries
// no block).  Restoring lays the chain's full backup down and applies each
// delta of the chain in order, oldest first: blocks are written in place,
// files truncated to their size, and files and directories a delta does not
// list are removed; the result is checked against the restored backup's own
// manifest (restore.cc).
//
// Memory: a reference block map is held whole (16 bytes per 8 KiB of data
// plus the paths); file data only ever one block at a time.
#pragma once

#include <walstore/backup/repository.h>
#include <walstore/config.h>
#include <walstore/storage.h>
#include <walstore/stream.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backup/tar_reader.h"

namespace walstore::backup {

class TargetDir;

inline constexpr size_t kDeltaBlockSize = 8192;

using BlockHash = std::array<uint8_t, 16>;
BlockHash HashBlock(Bytes block);

struct FileBlocks {
  uint64_t size = 0;
  std::vector<BlockHash> hashes;  // one per block: ceil(size / 8 KiB)
};
// Manifest path ("base/5/1259", "pg_tblspc/16385/...") -> blocks.
using BlockMap = std::unordered_map<std::string, FileBlocks>;

// Streams a block map object's plaintext.
class BlockMapWriter {
 public:
  explicit BlockMapWriter(WriteStream& out);
  void Add(const std::string& path, const FileBlocks& blocks);
  // Writes the end marker (does not finish `out`).
  void Finish();

 private:
  WriteStream& out_;
};

// Reads a block map object's plaintext one file and one hash at a time,
// so memory does not depend on the sizes it states (a damaged or hostile
// map is Error(kCorrupt) naming `what`, never a huge allocation).
class BlockMapReader {
 public:
  BlockMapReader(ReadStream& in, const std::string& what);
  struct File {
    std::string path;
    uint64_t size = 0;
    uint64_t blocks = 0;  // hashes that follow: ceil(size / 8 KiB)
  };
  // The next file, after which exactly `blocks` NextHash() calls must
  // follow; nullopt at the end marker (nothing may follow it).
  std::optional<File> NextFile();
  BlockHash NextHash();

 private:
  ReadStream& in_;
  std::string what_;
};

// The whole block map (a reference's, held during a diff / incr);
// Error(kCorrupt) naming `what`, also for a file listed twice.
BlockMap ReadBlockMap(ReadStream& in, const std::string& what);
// The block map object of `backup`, read whole and checked against the
// SHA-256 its record names (restore.cc); Error(kCorrupt) when it has none.
BlockMap LoadBlockMap(Storage& storage, const Config& config, const BackupRecord& backup);

struct ScanStats {
  uint64_t files = 0;
  uint64_t logical_bytes = 0;  // file data in the archive
  uint64_t stored_blocks = 0;  // blocks written to the delta
  uint64_t stored_bytes = 0;   // their data bytes
};

// Reads every member of `tar` (one tablespace archive of BASE_BACKUP; file
// paths in the block map are `manifest_prefix` + member path), adds each
// file to `map`, and, when `delta` is given, writes the delta archive of the
// member against `reference` (nullptr: every block is stored).
ScanStats ScanArchive(TarReader& tar, const std::string& manifest_prefix, BlockMapWriter& map,
                      const BlockMap* reference, WriteStream* delta);

// What one delta archive lists (member paths, without the manifest prefix).
struct DeltaContents {
  std::map<std::string, uint64_t> files;  // path -> size
  std::set<std::string> directories;
};

// Sees the files and stored blocks ApplyDelta reads, in order (verify's
// block-map cross-check).
class DeltaVisitor {
 public:
  virtual ~DeltaVisitor() = default;
  virtual void File(const std::string& path, uint64_t size) = 0;
  virtual void Block(uint64_t index, Bytes data) = 0;  // stored blocks, increasing
  virtual void EndFile() = 0;
};

// Applies the delta archive `in` beneath `target` (nullptr: only parses and
// checks it), telling `visitor` (when given) what it reads.  `links` as BackupExtractor::Extract: the member paths that may
// be symbolic links and what they point at.  Throws Error(kCorrupt) naming
// `what` for a malformed or truncated delta or a path that would leave the
// target.  `on_bytes` gets the file bytes written.
DeltaContents ApplyDelta(ReadStream& in, TargetDir* target,
                         const std::map<std::string, std::string>& links, const std::string& what,
                         const std::function<void(uint64_t)>& on_bytes,
                         DeltaVisitor* visitor = nullptr);

}  // namespace walstore::backup
