#include "backup/tar_reader.h"

#include <walstore/error.h>
#include <walstore/number.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace walstore::backup {
namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxMetaSize = 1 << 20;  // pax / GNU long-name payloads

std::string Field(const uint8_t* block, size_t offset, size_t size) {
  const char* p = reinterpret_cast<const char*>(block + offset);
  return std::string(p, strnlen(p, size));
}

bool IsZeroBlock(const uint8_t* block) {
  return std::all_of(block, block + kBlock, [](uint8_t b) { return b == 0; });
}

bool ChecksumOk(const uint8_t* block) {
  uint64_t stored = ParseTarNumber(block + 148, 8);
  uint64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : block[i];
  return sum == stored;
}

// Applies "len key=value\n" records of a pax header.
void ApplyPax(const std::string& data, TarEntry& entry, std::optional<uint64_t>& size,
              const std::string& what) {
  size_t pos = 0;
  while (pos < data.size()) {
    size_t space = data.find(' ', pos);
    if (space == std::string::npos) break;
    const uint64_t len =
        TryParseNumber<uint64_t>(std::string_view(data).substr(pos, space - pos)).value_or(0);
    // A record is at least "<len> k=\n"; the length counts its own digits.
    if (len <= space - pos + 1 || len > data.size() - pos) {
      Fail(ErrorCode::kCorrupt, "{}: malformed pax header", what);
    }
    std::string record = data.substr(space + 1, pos + len - space - 2);  // drop '\n'
    size_t eq = record.find('=');
    if (eq != std::string::npos) {
      std::string key = record.substr(0, eq);
      std::string value = record.substr(eq + 1);
      if (key == "path") entry.path = value;
      if (key == "linkpath") entry.link_target = value;
      if (key == "size") {
        size = ParseNumber<uint64_t>(value, ErrorCode::kCorrupt, what + ": the pax size");
      }
    }
    pos += len;
  }
}

}  // namespace

uint64_t ParseTarNumber(const uint8_t* field, size_t size) {
  if (field[0] & 0x80) {  // base-256
    uint64_t value = field[0] & 0x3F;
    for (size_t i = 1; i < size; ++i) value = (value << 8) | field[i];
    return value;
  }
  uint64_t value = 0;
  size_t i = 0;
  while (i < size && (field[i] == ' ' || field[i] == 0)) ++i;
  for (; i < size && field[i] >= '0' && field[i] <= '7'; ++i) value = value * 8 + (field[i] - '0');
  return value;
}

TarReader::TarReader(ReadStream& source, std::string what)
    : source_(source), what_(std::move(what)) {}

bool TarReader::ReadBlock(uint8_t* block) {
  size_t got = ReadFully(source_, MutableBytes(block, kBlock));
  offset_ += got;
  if (got == 0) return false;
  if (got != kBlock)
    Fail(ErrorCode::kCorrupt, "{}: truncated tar header at byte {}", what_, offset_);
  return true;
}

void TarReader::Skip(uint64_t bytes) {
  std::array<uint8_t, size_t{64} << 10> buf;
  while (bytes > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(bytes, buf.size()));
    size_t got = ReadFully(source_, MutableBytes(buf.data(), want));
    offset_ += got;
    if (got != want) Fail(ErrorCode::kCorrupt, "{}: truncated tar data at byte {}", what_, offset_);
    bytes -= got;
  }
}

std::string TarReader::ReadSmallData(uint64_t size) {
  if (size > kMaxMetaSize) Fail(ErrorCode::kCorrupt, "{}: oversized tar extension header", what_);
  std::string data(size, '\0');
  size_t got = ReadFully(source_, MutableBytes(reinterpret_cast<uint8_t*>(data.data()), size));
  offset_ += got;
  if (got != size) Fail(ErrorCode::kCorrupt, "{}: truncated tar extension header", what_);
  Skip((kBlock - size % kBlock) % kBlock);
  return data;
}

std::optional<TarEntry> TarReader::Next() {
  if (ended_) return std::nullopt;
  Skip(remaining_ + padding_);
  remaining_ = padding_ = 0;

  TarEntry entry;
  std::optional<uint64_t> pax_size;
  std::string long_name, long_link;
  uint8_t block[kBlock];
  for (;;) {
    if (!ReadBlock(block) || IsZeroBlock(block)) {
      ended_ = true;
      return std::nullopt;
    }
    if (!ChecksumOk(block)) {
      Fail(ErrorCode::kCorrupt, "{}: bad tar header checksum at byte {}", what_, offset_ - kBlock);
    }
    char type = static_cast<char>(block[156]);
    uint64_t size = ParseTarNumber(block + 124, 12);
    if (type == 'x') {
      ApplyPax(ReadSmallData(size), entry, pax_size, what_);
      continue;
    }
    if (type == 'g') {
      ReadSmallData(size);
      continue;
    }
    if (type == 'L' || type == 'K') {
      std::string data = ReadSmallData(size);
      data.resize(strnlen(data.c_str(), data.size()));
      (type == 'L' ? long_name : long_link) = data;
      continue;
    }
    entry.typeflag = type;
    if (entry.path.empty()) {
      if (!long_name.empty()) {
        entry.path = long_name;
      } else {
        std::string prefix = Field(block, 345, 155);
        std::string name = Field(block, 0, 100);
        bool ustar = std::memcmp(block + 257, "ustar", 5) == 0;
        entry.path = ustar && !prefix.empty() ? prefix + "/" + name : name;
      }
    }
    if (entry.link_target.empty()) {
      entry.link_target = !long_link.empty() ? long_link : Field(block, 157, 100);
    }
    entry.mode = static_cast<uint32_t>(ParseTarNumber(block + 100, 8) & 07777);
    entry.mtime = static_cast<std::time_t>(ParseTarNumber(block + 136, 12));
    entry.size = pax_size.value_or(size);
    switch (type) {
      case '0':
      case '\0':
      case '7':
        entry.type = TarEntry::Type::kFile;
        break;
      case '5':
        entry.type = TarEntry::Type::kDirectory;
        break;
      case '2':
        entry.type = TarEntry::Type::kSymlink;
        break;
      case '1':
        entry.type = TarEntry::Type::kHardLink;
        break;
      default:
        entry.type = TarEntry::Type::kOther;
    }
    while (entry.path.size() > 1 && entry.path.back() == '/') entry.path.pop_back();
    // Only regular files carry data we hand out; anything else is skipped.
    uint64_t data_size =
        (entry.type == TarEntry::Type::kFile || entry.type == TarEntry::Type::kOther) ? entry.size
                                                                                      : 0;
    if (entry.type != TarEntry::Type::kFile) entry.size = 0;
    remaining_ = entry.type == TarEntry::Type::kFile ? data_size : 0;
    padding_ = (entry.type == TarEntry::Type::kFile ? 0 : data_size) +
               (kBlock - data_size % kBlock) % kBlock;
    return entry;
  }
}

size_t TarReader::Read(MutableBytes out) {
  if (remaining_ == 0 || out.empty()) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(remaining_, out.size()));
  size_t got = source_.Read(out.first(want));
  if (got == 0) Fail(ErrorCode::kCorrupt, "{}: truncated tar data at byte {}", what_, offset_);
  remaining_ -= got;
  offset_ += got;
  return got;
}

}  // namespace walstore::backup
