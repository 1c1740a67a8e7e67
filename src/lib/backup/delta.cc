#include "backup/delta.h"

#include <sys/stat.h>
#include <unistd.h>
#include <walstore/crypto.h>
#include <walstore/error.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "backup/extract.h"

namespace walstore::backup {
namespace {

constexpr std::string_view kDeltaMagic = "WALSTORE-DELTA 1\n";
constexpr std::string_view kBlockMapMagic = "WALSTORE-BLOCKMAP 1\n";
constexpr uint32_t kEndOfBlocks = 0xFFFFFFFFu;

// Larger files in a block map or delta are damage (PostgreSQL splits
// relations into 1 GiB segments).
constexpr uint64_t kMaxFileSize = uint64_t{1} << 40;

uint64_t BlockCount(uint64_t size) { return (size + kDeltaBlockSize - 1) / kDeltaBlockSize; }

// Little-endian fields.
class FieldWriter {
 public:
  explicit FieldWriter(WriteStream& out) : out_(out) {}
  void Byte(char c) { out_.Write(AsBytes(std::string_view(&c, 1))); }
  void U16(uint16_t v) { Int(v, 2); }
  void U32(uint32_t v) { Int(v, 4); }
  void U64(uint64_t v) { Int(v, 8); }
  void Text(std::string_view s, const char* what) {
    if (s.size() > 0xFFFF) Fail(ErrorCode::kUnsupportedFormat, "{} is too long: {}", what, s);
    U16(static_cast<uint16_t>(s.size()));
    out_.Write(AsBytes(s));
  }
  void Raw(Bytes data) { out_.Write(data); }

 private:
  void Int(uint64_t v, int n) {
    uint8_t b[8];
    for (int i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    out_.Write(Bytes(b, static_cast<size_t>(n)));
  }
  WriteStream& out_;
};

class FieldReader {
 public:
  FieldReader(ReadStream& in, const std::string& what) : in_(in), what_(what) {}
  void Exact(uint8_t* data, size_t size) {
    if (ReadFully(in_, MutableBytes(data, size)) != size) {
      Fail(ErrorCode::kCorrupt, "{}: truncated", what_);
    }
  }
  char Byte() {
    uint8_t c;
    Exact(&c, 1);
    return static_cast<char>(c);
  }
  uint16_t U16() { return static_cast<uint16_t>(Int(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Int(4)); }
  uint64_t U64() { return Int(8); }
  std::string Text() {
    std::string s(U16(), '\0');
    Exact(reinterpret_cast<uint8_t*>(s.data()), s.size());
    return s;
  }
  void Magic(std::string_view magic) {
    std::string got(magic.size(), '\0');
    if (ReadFully(in_, MutableBytes(reinterpret_cast<uint8_t*>(got.data()), got.size())) !=
            got.size() ||
        got != magic) {
      Fail(ErrorCode::kCorrupt, "{}: not a walctl {}", what_,
           magic == kDeltaMagic ? "delta archive" : "block map");
    }
  }
  // Nothing may follow the end marker.
  void ExpectEnd() {
    uint8_t extra;
    if (in_.Read(MutableBytes(&extra, 1)) != 0) {
      Fail(ErrorCode::kCorrupt, "{}: data after the end marker", what_);
    }
  }

 private:
  uint64_t Int(int n) {
    uint8_t b[8];
    Exact(b, static_cast<size_t>(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  ReadStream& in_;
  const std::string& what_;
};

std::string MemberPath(std::string path) {
  while (path.size() > 2 && path.compare(0, 2, "./") == 0) path.erase(0, 2);
  return path;
}

}  // namespace

BlockHash HashBlock(Bytes block) {
  const Sha256Digest digest = Sha256Of(block);
  BlockHash hash;
  std::copy_n(digest.begin(), hash.size(), hash.begin());
  return hash;
}

BlockMapWriter::BlockMapWriter(WriteStream& out) : out_(out) {
  out_.Write(AsBytes(kBlockMapMagic));
}

void BlockMapWriter::Add(const std::string& path, const FileBlocks& blocks) {
  if (path.empty()) Fail(ErrorCode::kInternal, "block map entry without a path");
  FieldWriter w(out_);
  w.Text(path, "file path");
  w.U64(blocks.size);
  for (const auto& hash : blocks.hashes) w.Raw(Bytes(hash.data(), hash.size()));
}

void BlockMapWriter::Finish() { FieldWriter(out_).U16(0); }

BlockMapReader::BlockMapReader(ReadStream& in, const std::string& what) : in_(in), what_(what) {
  FieldReader(in_, what_).Magic(kBlockMapMagic);
}

std::optional<BlockMapReader::File> BlockMapReader::NextFile() {
  FieldReader r(in_, what_);
  File file;
  file.path = r.Text();
  if (file.path.empty()) {
    r.ExpectEnd();
    return std::nullopt;
  }
  file.size = r.U64();
  if (file.size > kMaxFileSize) {
    Fail(ErrorCode::kCorrupt, "{}: implausible size {} of {}", what_, file.size, file.path);
  }
  file.blocks = BlockCount(file.size);
  return file;
}

BlockHash BlockMapReader::NextHash() {
  BlockHash hash;
  FieldReader(in_, what_).Exact(hash.data(), hash.size());
  return hash;
}

BlockMap ReadBlockMap(ReadStream& in, const std::string& what) {
  BlockMapReader reader(in, what);
  BlockMap map;
  while (auto file = reader.NextFile()) {
    FileBlocks blocks;
    blocks.size = file->size;
    // Grows with the hashes actually read, not with the size the map states.
    for (uint64_t i = 0; i < file->blocks; ++i) blocks.hashes.push_back(reader.NextHash());
    if (!map.emplace(std::move(file->path), std::move(blocks)).second) {
      Fail(ErrorCode::kCorrupt, "{}: a file listed twice", what);
    }
  }
  return map;
}

ScanStats ScanArchive(TarReader& tar, const std::string& manifest_prefix, BlockMapWriter& map,
                      const BlockMap* reference, WriteStream* delta) {
  std::optional<FieldWriter> out;
  if (delta) {
    out.emplace(*delta);
    out->Raw(AsBytes(kDeltaMagic));
  }
  ScanStats stats;
  std::vector<uint8_t> block(kDeltaBlockSize);
  while (auto entry = tar.Next()) {
    const std::string path = MemberPath(entry->path);
    switch (entry->type) {
      case TarEntry::Type::kDirectory:
        if (out) {
          out->Byte('D');
          out->U32(entry->mode);
          out->Text(path, "directory path");
        }
        break;
      case TarEntry::Type::kSymlink:
        if (out) {
          out->Byte('L');
          out->Text(path, "link path");
          out->Text(entry->link_target, "link target");
        }
        break;
      case TarEntry::Type::kFile: {
        const std::string manifest_path = manifest_prefix + path;
        const FileBlocks* old = nullptr;
        if (reference) {
          auto it = reference->find(manifest_path);
          if (it != reference->end()) old = &it->second;
        }
        if (out) {
          out->Byte('F');
          out->U32(entry->mode);
          out->Text(path, "file path");
          out->U64(entry->size);
        }
        FileBlocks blocks;
        blocks.size = entry->size;
        uint64_t offset = 0;
        while (const size_t n = ReadFully(tar, MutableBytes(block.data(), block.size()))) {
          const Bytes data(block.data(), n);
          const BlockHash hash = HashBlock(data);
          const size_t index = blocks.hashes.size();
          const bool unchanged = old && index < old->hashes.size() && old->hashes[index] == hash;
          if (out && !unchanged) {
            if (index >= kEndOfBlocks) Fail(ErrorCode::kUnsupportedFormat, "{}: too large", path);
            out->U32(static_cast<uint32_t>(index));
            out->Raw(data);
            ++stats.stored_blocks;
            stats.stored_bytes += n;
          }
          blocks.hashes.push_back(hash);
          offset += n;
        }
        if (offset != entry->size) Fail(ErrorCode::kCorrupt, "{}: short file data", path);
        if (out) out->U32(kEndOfBlocks);
        map.Add(manifest_path, blocks);
        ++stats.files;
        stats.logical_bytes += offset;
        break;
      }
      default:
        Fail(ErrorCode::kUnsupportedFormat,
             "BASE_BACKUP sent tar member \"{}\" of type '{}', which walctl does not know how to "
             "store (only directories, files and symbolic links)",
             path, entry->typeflag);
    }
  }
  if (out) out->Byte('E');
  return stats;
}

DeltaContents ApplyDelta(ReadStream& in, TargetDir* target,
                         const std::map<std::string, std::string>& links, const std::string& what,
                         const std::function<void(uint64_t)>& on_bytes,
                         DeltaVisitor* visitor) {
  FieldReader r(in, what);
  r.Magic(kDeltaMagic);
  DeltaContents contents;
  std::vector<uint8_t> block(kDeltaBlockSize);
  auto check_path = [&](const std::string& path) {
    if (const std::string problem = MemberPathProblem(path); !problem.empty()) {
      Fail(ErrorCode::kCorrupt, "{}: refusing member \"{}\": {}", what, path, problem);
    }
  };
  for (;;) {
    const char type = r.Byte();
    if (type == 'E') break;
    if (type == 'D') {
      const uint32_t mode = r.U32();
      const std::string path = r.Text();
      check_path(path);
      if (contents.files.contains(path)) {
        Fail(ErrorCode::kCorrupt, "{}: \"{}\" is listed as a file and a directory", what, path);
      }
      contents.directories.insert(path);
      if (target) {
        target->RemoveIfOtherType(path, /*want_directory=*/true);  // a file in an older backup
        target->MakeDirectory(path, mode);
      }
    } else if (type == 'L') {
      const std::string path = r.Text();
      const std::string link_target = r.Text();
      check_path(path);
      // The chain's full backup made the links (a chain keeps its
      // tablespaces): only a link the layout has is accepted.
      if (!links.contains(path)) {
        Fail(ErrorCode::kCorrupt,
             "{}: refusing symbolic link \"{}\" -> \"{}\": a data directory has links only at "
             "pg_tblspc/<oid> for the tablespaces of its backup",
             what, path, link_target);
      }
    } else if (type == 'F') {
      const uint32_t mode = r.U32();
      const std::string path = r.Text();
      check_path(path);
      const uint64_t size = r.U64();
      if (size > kMaxFileSize) {
        Fail(ErrorCode::kCorrupt, "{}: file \"{}\" has an implausible size {}", what, path, size);
      }
      if (!contents.files.emplace(path, size).second) {
        Fail(ErrorCode::kCorrupt, "{}: file \"{}\" listed twice", what, path);
      }
      if (contents.directories.contains(path)) {
        Fail(ErrorCode::kCorrupt, "{}: \"{}\" is listed as a directory and a file", what, path);
      }
      // A directory in an older backup of the chain.
      if (target) target->RemoveIfOtherType(path, /*want_directory=*/false);
      struct Closer {
        int fd;
        ~Closer() {
          if (fd >= 0) close(fd);
        }
      } fd{target ? target->OpenFileForUpdate(path, 0600) : -1};
      if (visitor) visitor->File(path, size);
      const uint64_t blocks = BlockCount(size);
      int64_t last = -1;
      for (;;) {
        const uint32_t index = r.U32();
        if (index == kEndOfBlocks) break;
        if (index >= blocks || static_cast<int64_t>(index) <= last) {
          Fail(ErrorCode::kCorrupt, "{}: file \"{}\" has block {} out of order or beyond its size",
               what, path, index);
        }
        last = index;
        const uint64_t offset = uint64_t{index} * kDeltaBlockSize;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kDeltaBlockSize, size - offset));
        r.Exact(block.data(), n);
        if (visitor) visitor->Block(index, Bytes(block.data(), n));
        if (fd.fd >= 0) WriteFullyAt(fd.fd, block.data(), n, offset, path);
        on_bytes(n);
      }
      if (visitor) visitor->EndFile();
      if (fd.fd >= 0) {
        if (ftruncate(fd.fd, static_cast<off_t>(size)) != 0) {
          FailErrno(errno, fmt::format("could not truncate \"{}\"", path));
        }
        if (fchmod(fd.fd, mode & 0777) != 0) {
          FailErrno(errno, fmt::format("could not chmod \"{}\"", path));
        }
      }
    } else {
      Fail(ErrorCode::kCorrupt, "{}: unknown record type {}", what, static_cast<int>(type));
    }
  }
  r.ExpectEnd();
  return contents;
}

}  // namespace walstore::backup
