// Helpers shared by the unit tests (header-only).
#pragma once

#include <doctest/doctest.h>

#include <walstore/config.h>
#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/storage.h>
#include <walstore/stream.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <atomic>
#include <thread>
#include <vector>

namespace walstore::test {

// A ReadStream that returns at most `step` bytes per call.
class TrickleReadStream : public ReadStream {
 public:
  TrickleReadStream(std::string data, size_t step) : data_(std::move(data)), step_(step) {}
  size_t Read(MutableBytes out) override {
    size_t n = std::min({out.size(), step_, data_.size() - pos_});
    std::copy_n(data_.data() + pos_, n, reinterpret_cast<char*>(out.data()));
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t step_;
  size_t pos_ = 0;
};

// An environment for LoadConfig and the S3 settings: exactly these variables.
inline EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A stable spelling of every ErrorCode, independent of the code table under
// test (so a broken InfoFor() cannot hide a wrong code).
inline const char* CodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage: return "kUsage";
    case ErrorCode::kConfig: return "kConfig";
    case ErrorCode::kInvalidName: return "kInvalidName";
    case ErrorCode::kNotWal: return "kNotWal";
    case ErrorCode::kSystemIdMismatch: return "kSystemIdMismatch";
    case ErrorCode::kConflict: return "kConflict";
    case ErrorCode::kLocalIo: return "kLocalIo";
    case ErrorCode::kNoSpace: return "kNoSpace";
    case ErrorCode::kCorrupt: return "kCorrupt";
    case ErrorCode::kWrongKey: return "kWrongKey";
    case ErrorCode::kUnsupportedFormat: return "kUnsupportedFormat";
    case ErrorCode::kStorage: return "kStorage";
    case ErrorCode::kStorageTransient: return "kStorageTransient";
    case ErrorCode::kAuth: return "kAuth";
    case ErrorCode::kNetwork: return "kNetwork";
    case ErrorCode::kTls: return "kTls";
    case ErrorCode::kPostgres: return "kPostgres";
    case ErrorCode::kVerifyFailed: return "kVerifyFailed";
    case ErrorCode::kInternal: return "kInternal";
    case ErrorCode::kArchivedDamaged: return "kArchivedDamaged";
    case ErrorCode::kUnauthenticated: return "kUnauthenticated";
    case ErrorCode::kMisplaced: return "kMisplaced";
    case ErrorCode::kNotARepository: return "kNotARepository";
    case ErrorCode::kArchiveGap: return "kArchiveGap";
  }
  return "k<unknown>";
}

// What a call threw: "kCorrupt" for a walstore::Error, "no exception",
// or "std::exception: <what>" / "unknown exception".  Compare with
// CHECK(ThrownCode([&] { ... }) == CodeName(ErrorCode::kCorrupt)) or the
// CHECK_CODE macro below; doctest then prints both strings on failure.
template <typename F>
std::string ThrownCode(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return CodeName(e.code());
  } catch (const std::exception& e) {
    return std::string("std::exception: ") + e.what();
  } catch (...) {
    return "unknown exception";
  }
  return "no exception";
}

// The message of the walstore::Error a call threw ("" when none).
template <typename F>
std::string ThrownMessage(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (...) {
  }
  return "";
}

// The walstore::Error a call threw, if any.
template <typename F>
std::optional<Error> ThrownError(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  } catch (...) {
  }
  return std::nullopt;
}

#define CHECK_CODE(expr, code)                                                         \
  CHECK(::walstore::test::ThrownCode([&] { (void)(expr); }) == \
        std::string(::walstore::test::CodeName(code)))
#define REQUIRE_CODE(expr, code)                                                       \
  REQUIRE(::walstore::test::ThrownCode([&] { (void)(expr); }) == \
          std::string(::walstore::test::CodeName(code)))

// A 32-byte test key whose bytes count up from `first` (first, first+1, ...).
inline Key SequenceKey(uint8_t first) {
  std::array<uint8_t, 32> b;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(first + i);
  return Key(b);
}

inline bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Deterministic pseudo-random bytes.
inline std::string RandomString(size_t n, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  while (i + 8 <= n) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
    i += 8;
  }
  uint64_t v = rng();
  for (; i < n; ++i, v >>= 8) s[i] = static_cast<char>(v & 0xff);
  return s;
}

// Highly compressible but not constant bytes.
inline std::string CompressibleString(size_t n, uint64_t seed = 7) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  const char* words[] = {"INSERT ", "pgbench_accounts ", "0000 ", "aid=", "abalance ", "\n"};
  size_t i = 0;
  while (i < n) {
    const char* w = words[rng() % 6];
    for (size_t k = 0; w[k] && i < n; ++k) s[i++] = w[k];
  }
  return s;
}

inline std::vector<uint8_t> ToVec(std::string_view s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

inline std::string FromHex(std::string_view hex) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1])));
  return out;
}

inline std::string LowerHex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// A fresh directory under $TMPDIR (or /tmp), removed with its content.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/walstore-unit-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, std::string_view content, mode_t mode = 0600) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
  }
  if (::chmod(path.c_str(), mode) != 0) throw std::runtime_error("chmod failed " + path);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Names of all entries (recursively, relative) under `dir`, sorted.
inline std::vector<std::string> ListTree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(std::filesystem::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Redirects stderr (fd 2) to a temporary file for the scope.
class CaptureStderr {
 public:
  CaptureStderr() : path_(dir_ / "stderr") {
    std::fflush(stderr);
    saved_ = dup(2);
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    dup2(fd, 2);
    close(fd);
  }
  ~CaptureStderr() { Restore(); }
  std::string Text() {
    Restore();
    return ReadFile(path_);
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  TempDir dir_;
  std::string path_;
  int saved_ = -1;
};

// Reads a ReadStream to its end with reads of `step` bytes.
inline std::string ReadAll(ReadStream& in, size_t step = 65536) {
  std::string out;
  std::vector<uint8_t> buf(step);
  for (;;) {
    size_t n = in.Read(MutableBytes(buf.data(), buf.size()));
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return out;
}

// Changes the working directory for the scope.
class ScopedChdir {
 public:
  explicit ScopedChdir(const std::string& dir) : old_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~ScopedChdir() {
    std::error_code ec;
    std::filesystem::current_path(old_, ec);
  }

 private:
  std::filesystem::path old_;
};

// Peak resident set size (VmHWM) and current RSS in KiB, from /proc/self/status.
inline long ProcStatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::strtol(line.c_str() + prefix.size(), nullptr, 10);
  }
  return -1;
}
// Resets VmHWM to the current RSS (Linux >= 4.0); false when not possible.
inline bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

inline void StoreLe16(uint8_t* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void StoreLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void StoreLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// A PostgreSQL 15 XLogLongPageHeaderData (x86-64 layout, little-endian):
//   0 uint16 xlp_magic   2 uint16 xlp_info   4 uint32 xlp_tli
//   8 uint64 xlp_pageaddr   16 uint32 xlp_rem_len   20 (4 bytes padding)
//   24 uint64 xlp_sysid   32 uint32 xlp_seg_size   36 uint32 xlp_xlog_blcksz
struct LongHeaderFields {
  uint16_t magic = 0xD110;
  uint16_t info = 0x0002;
  uint32_t timeline = 1;
  uint64_t page_address = 0;
  uint64_t system_id = 7000000000000000001ull;
  uint32_t segment_size = 16u << 20;
  uint32_t block_size = 8192;
};
inline std::string MakeLongHeader(const LongHeaderFields& f) {
  std::string h(40, '\0');
  auto* p = reinterpret_cast<uint8_t*>(h.data());
  StoreLe16(p + 0, f.magic);
  StoreLe16(p + 2, f.info);
  StoreLe32(p + 4, f.timeline);
  StoreLe64(p + 8, f.page_address);
  StoreLe32(p + 16, 0);
  StoreLe64(p + 24, f.system_id);
  StoreLe32(p + 32, f.segment_size);
  StoreLe32(p + 36, f.block_size);
  return h;
}

// A synthetic segment: a valid long header followed by compressible bytes.
inline std::string MakeSegment(uint32_t timeline, uint64_t segment_number, uint32_t segment_size,
                               uint64_t system_id, uint64_t seed = 3) {
  LongHeaderFields f;
  f.timeline = timeline;
  f.page_address = segment_number * segment_size;
  f.system_id = system_id;
  f.segment_size = segment_size;
  std::string seg = MakeLongHeader(f);
  seg += CompressibleString(segment_size - seg.size(), seed);
  return seg;
}

}  // namespace walstore::test

// ---------------------------------------------------------------------------
// The storage contract (storage.h), run against every backend so they stay
// interchangeable.  `open` returns a fresh, empty Storage each time it is
// called within one test case run; call this from a TEST_CASE (it uses SUBCASE).
namespace walstore::test {

// Forwards every call to `inner` (a test's real storage); on_open, when set,
// runs first on each read and may throw or change the inner storage (a fault
// a test injects).  Tests derive from it to hook more.
class ForwardingStorage : public Storage {
 public:
  explicit ForwardingStorage(std::unique_ptr<Storage> inner) : inner_(std::move(inner)) {}
  std::optional<ObjectInfo> Stat(const std::string& key) override { return inner_->Stat(key); }
  std::unique_ptr<ReadStream> OpenRead(const std::string& key) override {
    if (on_open) on_open(key);
    return inner_->OpenRead(key);
  }
  std::unique_ptr<ObjectWriter> Create(const std::string& key, const WriteOptions& o) override {
    return inner_->Create(key, o);
  }
  void List(const std::string& prefix,
            const std::function<void(const ObjectInfo&)>& each) override {
    inner_->List(prefix, each);
  }
  std::vector<std::string> ListChildren(const std::string& prefix, size_t limit) override {
    return inner_->ListChildren(prefix, limit);
  }
  bool Remove(const std::string& key) override { return inner_->Remove(key); }
  std::string Describe() const override { return inner_->Describe(); }
  Storage& inner() { return *inner_; }

  std::function<void(const std::string& key)> on_open;  // before a read

 private:
  std::unique_ptr<Storage> inner_;
};

inline std::string ObjectContent(Storage& s, const std::string& key) {
  auto in = s.OpenRead(key);
  REQUIRE(in != nullptr);
  return ReadAll(*in, 1000);
}

inline CommitResult PutObject(Storage& s, const std::string& key, std::string_view content) {
  auto w = s.Create(key);
  REQUIRE(w != nullptr);
  // Write in a few pieces.
  size_t pos = 0;
  size_t step = 1;
  while (pos < content.size()) {
    size_t n = std::min(step, content.size() - pos);
    w->Write(AsBytes(content.substr(pos, n)));
    pos += n;
    step *= 7;
  }
  w->Finish();
  return w->Commit();
}

inline std::vector<std::string> ListKeys(Storage& s, const std::string& prefix,
                                         std::vector<uint64_t>* sizes = nullptr) {
  std::vector<std::string> keys;
  s.List(prefix, [&](const ObjectInfo& info) {
    keys.push_back(info.key);
    if (sizes) sizes->push_back(info.size);
  });
  return keys;
}

inline std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
  return out;
}

// The Storage contract on a repository that exists (PrepareForWrites()) and
// is empty.
inline void RunStorageContract(const std::function<std::unique_ptr<Storage>()>& open) {
  std::unique_ptr<Storage> s = open();
  REQUIRE(s != nullptr);
  s->PrepareForWrites();

  SUBCASE("absence is a value") {
    CHECK_FALSE(s->Stat("a/missing").has_value());
    CHECK(s->OpenRead("a/missing") == nullptr);
    CHECK_FALSE(s->Remove("a/missing"));
    CHECK(ListKeys(*s, "").empty());
    CHECK(ListKeys(*s, "a/").empty());
    CHECK_NOTHROW(s->RemoveMany({"x/1", "x/2"}));
  }

  SUBCASE("create, write, commit makes the object visible with its size") {
    const std::string content = RandomString(300000, 17);
    CHECK(PutObject(*s, "1234/wal/0000000100000000/000000010000000000000001", content) ==
          CommitResult::kCreated);
    auto info = s->Stat("1234/wal/0000000100000000/000000010000000000000001");
    REQUIRE(info.has_value());
    CHECK(info->key == "1234/wal/0000000100000000/000000010000000000000001");
    CHECK(info->size == content.size());
    CHECK(ObjectContent(*s, "1234/wal/0000000100000000/000000010000000000000001") == content);
    // Each OpenRead starts at the beginning.
    CHECK(ObjectContent(*s, "1234/wal/0000000100000000/000000010000000000000001") == content);
  }

  SUBCASE("empty and single-component objects") {
    CHECK(PutObject(*s, "empty", "") == CommitResult::kCreated);
    auto info = s->Stat("empty");
    REQUIRE(info.has_value());
    CHECK(info->size == 0);
    CHECK(ObjectContent(*s, "empty").empty());
  }

  SUBCASE("a writer destroyed without Commit publishes nothing") {
    {
      auto w = s->Create("a/b/abandoned");
      w->Write(AsBytes("partial data"));
      w->Finish();
      // Not visible while being written either.
      CHECK_FALSE(s->Stat("a/b/abandoned").has_value());
      CHECK(s->OpenRead("a/b/abandoned") == nullptr);
      CHECK(ListKeys(*s, "").empty());
    }
    CHECK_FALSE(s->Stat("a/b/abandoned").has_value());
    CHECK(s->OpenRead("a/b/abandoned") == nullptr);
    CHECK(ListKeys(*s, "").empty());
    // The key is still free.
    CHECK(PutObject(*s, "a/b/abandoned", "real") == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "a/b/abandoned") == "real");
  }

  SUBCASE("a second commit on the same key is kAlreadyExists and changes nothing") {
    CHECK(PutObject(*s, "k/obj", "original content") == CommitResult::kCreated);
    CHECK(PutObject(*s, "k/obj", "other content, longer than the original") ==
          CommitResult::kAlreadyExists);
    CHECK(ObjectContent(*s, "k/obj") == "original content");
    CHECK(s->Stat("k/obj")->size == std::string("original content").size());
    CHECK(Join(ListKeys(*s, "")) == "k/obj");
  }

  SUBCASE("replace_existing replaces in one step; without it nothing is replaced") {
    CHECK(PutObject(*s, "k/obj", "damaged content") == CommitResult::kCreated);
    WriteOptions replace;
    replace.replace_existing = true;
    auto w = s->Create("k/obj", replace);
    w->Write(AsBytes("the replacement, longer"));
    // Until Commit() the old object is still there, whole.
    CHECK(ObjectContent(*s, "k/obj") == "damaged content");
    CHECK(w->Commit() == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "k/obj") == "the replacement, longer");
    CHECK(Join(ListKeys(*s, "")) == "k/obj");
    // An absent key is simply created.
    auto fresh = s->Create("k/new", replace);
    fresh->Write(AsBytes("x"));
    CHECK(fresh->Commit() == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "k/new") == "x");
    CHECK(PutObject(*s, "k/obj", "other") == CommitResult::kAlreadyExists);
    CHECK(ObjectContent(*s, "k/obj") == "the replacement, longer");
  }

  SUBCASE("two writers racing on one key: exactly one wins") {
    auto w1 = s->Create("race/key");
    auto w2 = s->Create("race/key");
    w1->Write(AsBytes("first"));
    w2->Write(AsBytes("second"));
    CHECK(w2->Commit() == CommitResult::kCreated);
    CHECK(w1->Commit() == CommitResult::kAlreadyExists);
    w1.reset();
    w2.reset();
    CHECK(ObjectContent(*s, "race/key") == "second");
    CHECK(Join(ListKeys(*s, "")) == "race/key");
  }

  SUBCASE("List by prefix in lexicographic order") {
    // "a-x" < "a/..." ('-' sorts before '/'), so a directory walk must still
    // merge files and directories in key order.
    for (const char* key : {"a/2", "b/1", "a/10", "ab", "a-x", "a/1", "a/0/deep", "a/0-x", "a/sub/z", "c"}) {
      REQUIRE(PutObject(*s, key, key) == CommitResult::kCreated);
    }
    std::vector<uint64_t> sizes;
    CHECK(Join(ListKeys(*s, "", &sizes)) == "a-x,a/0-x,a/0/deep,a/1,a/10,a/2,a/sub/z,ab,b/1,c");
    CHECK(sizes == std::vector<uint64_t>{3, 5, 8, 3, 4, 3, 7, 2, 3, 1});
    CHECK(Join(ListKeys(*s, "a/")) == "a/0-x,a/0/deep,a/1,a/10,a/2,a/sub/z");
    CHECK(Join(ListKeys(*s, "a")) == "a-x,a/0-x,a/0/deep,a/1,a/10,a/2,a/sub/z,ab");
    CHECK(Join(ListKeys(*s, "a/1")) == "a/1,a/10");
    CHECK(Join(ListKeys(*s, "a/0")) == "a/0-x,a/0/deep");
    CHECK(Join(ListKeys(*s, "a/sub/")) == "a/sub/z");
    CHECK(Join(ListKeys(*s, "a/sub")) == "a/sub/z");
    CHECK(ListKeys(*s, "zzz").empty());
    CHECK(Join(ListKeys(*s, "c")) == "c");
  }

  SUBCASE("keys with dot-leading components are ordinary keys") {
    // ValidateKey accepts ".hidden" and "a.b" components, so every backend must
    // store and list them like any other key.
    for (const char* key : {"dot/.hidden", "dot/a.b", "dot/.d/x", ".top"}) {
      CAPTURE(std::string(key));
      CHECK_NOTHROW(ValidateKey(key));
      REQUIRE(PutObject(*s, key, key) == CommitResult::kCreated);
      CHECK(s->Stat(key).has_value());
      CHECK(ObjectContent(*s, key) == key);
    }
    CHECK(Join(ListKeys(*s, "dot/")) == "dot/.d/x,dot/.hidden,dot/a.b");
    CHECK(Join(ListKeys(*s, "")) == ".top,dot/.d/x,dot/.hidden,dot/a.b");
  }

  SUBCASE("listing below a missing prefix finds nothing and does not fail") {
    REQUIRE(PutObject(*s, "f", "file") == CommitResult::kCreated);
    CHECK(ListKeys(*s, "nothing/here/").empty());
    CHECK(s->ListChildren("nothing/here/", 10).empty());
    CHECK_FALSE(s->Stat("nothing/here").has_value());
    CHECK(s->OpenRead("nothing/here") == nullptr);
    CHECK_FALSE(s->Remove("nothing/here"));
  }

  SUBCASE("ListChildren: names one level down, objects and directories, sorted, limited") {
    for (const char* key : {"7/wal/a", "7/wal/b", "7/backup/x/y", "7/file", "8/wal/c", "9"}) {
      REQUIRE(PutObject(*s, key, key) == CommitResult::kCreated);
    }
    CHECK(Join(s->ListChildren("", 10)) == "7,8,9");
    CHECK(Join(s->ListChildren("", 2)) == "7,8");
    CHECK(Join(s->ListChildren("7/", 10)) == "backup,file,wal");
    CHECK(Join(s->ListChildren("7/", 1)) == "backup");
    CHECK(Join(s->ListChildren("7/wal/", 10)) == "a,b");
    CHECK(s->ListChildren("6/", 10).empty());
  }

  SUBCASE("AnyBelow: any object below a prefix, however deep") {
    for (const char* key : {"7/wal/0000000100000000/seg", "8/backup/x/y/z"}) {
      REQUIRE(PutObject(*s, key, key) == CommitResult::kCreated);
    }
    CHECK(s->AnyBelow("7/"));
    CHECK(s->AnyBelow("7/wal/"));
    CHECK(s->AnyBelow("8/"));
    CHECK(s->AnyBelow(""));
    CHECK_FALSE(s->AnyBelow("6/"));
    CHECK_FALSE(s->AnyBelow("7/backup/"));
    CHECK_FALSE(s->AnyBelow("77/"));
  }

  SUBCASE("Remove and RemoveMany") {
    for (const char* key : {"r/1", "r/2", "r/3", "r/4"}) REQUIRE(PutObject(*s, key, "x") == CommitResult::kCreated);
    CHECK(s->Remove("r/1"));
    CHECK_FALSE(s->Remove("r/1"));
    CHECK_FALSE(s->Stat("r/1").has_value());
    s->RemoveMany({"r/2", "r/missing", "r/4"});
    CHECK(Join(ListKeys(*s, "")) == "r/3");
    // A removed key can be created again.
    CHECK(PutObject(*s, "r/1", "again") == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "r/1") == "again");
  }

  SUBCASE("invalid keys are refused with kInternal") {
    for (const char* key : {"/a", "a/../b", "a//b", "", "a/./b", "..", ".", "a/", "../a", "a/.."}) {
      CAPTURE(std::string(key));
      CHECK_CODE(ValidateKey(key), ErrorCode::kInternal);
      CHECK_CODE(s->Stat(key), ErrorCode::kInternal);
      CHECK_CODE(s->OpenRead(key), ErrorCode::kInternal);
      CHECK_CODE(s->Create(key), ErrorCode::kInternal);
      CHECK_CODE(s->Remove(key), ErrorCode::kInternal);
    }
    CHECK_CODE(ValidateKey(std::string("a\0b", 3)), ErrorCode::kInternal);
    for (const char* key : {"a", "a/b", "123/wal/0000000100000000/000000010000000000000001",
                            "a.b/c..d/.e", "x/00000002.history"}) {
      CAPTURE(std::string(key));
      CHECK_NOTHROW(ValidateKey(key));
    }
    CHECK(ListKeys(*s, "").empty());
  }

  SUBCASE("RewriteHead replaces the first bytes before Commit") {
    const std::string content = RandomString(200000, 8);
    const std::string head = RandomString(128, 9);
    auto w = s->Create("rh/obj");
    w->Write(AsBytes(std::string_view(content).substr(0, 100)));
    w->Write(AsBytes(std::string_view(content).substr(100)));
    w->RewriteHead(AsBytes(head));
    CHECK_FALSE(s->Stat("rh/obj").has_value());
    REQUIRE(w->Commit() == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "rh/obj") == head + content.substr(128));
    // Rewriting more than once: the last head wins.
    auto w2 = s->Create("rh/obj2");
    w2->Write(AsBytes(content));
    w2->RewriteHead(AsBytes(std::string(4096, 'a')));
    w2->RewriteHead(AsBytes(std::string(10, 'b')));
    REQUIRE(w2->Commit() == CommitResult::kCreated);
    CHECK(ObjectContent(*s, "rh/obj2") == std::string(10, 'b') + std::string(4086, 'a') + content.substr(4096));
  }

  SUBCASE("threads racing on the same keys: one winner per key, content never mixed") {
    constexpr int kThreads = 4;
    constexpr int kKeys = 20;
    std::atomic<int> created{0};
    std::atomic<int> already{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string content = std::string(20000, static_cast<char>('A' + t));
        for (int i = 0; i < kKeys; ++i) {
          try {
            auto w = s->Create("race/" + std::to_string(i));
            for (int piece = 0; piece < 4; ++piece)
              w->Write(AsBytes(std::string_view(content).substr(piece * 5000, 5000)));
            (w->Commit() == CommitResult::kCreated ? created : already)++;
          } catch (...) {
            ++errors;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(errors == 0);
    CHECK(created == kKeys);
    CHECK(already == kKeys * (kThreads - 1));
    CHECK(ListKeys(*s, "race/").size() == static_cast<size_t>(kKeys));
    for (int i = 0; i < kKeys; ++i) {
      const std::string got = ObjectContent(*s, "race/" + std::to_string(i));
      REQUIRE(got.size() == 20000);
      CHECK(got == std::string(20000, got[0]));
    }
  }

  SUBCASE("Describe") { CHECK_FALSE(s->Describe().empty()); }
}

}  // namespace walstore::test
