// Tests for src/lib/archive/archive.cc: the repository layout, walpush and walfetch.
#include <doctest/doctest.h>

#include <walstore/archive.h>
#include <walstore/config.h>
#include <walstore/crypto.h>
#include <walstore/error.h>
#include <walstore/object_format.h>
#include <walstore/prefetch.h>
#include <walstore/storage.h>

#include <atomic>
#include <thread>
#include <string>

#include "storage/memory/memory_storage.h"
#include "storage/posix/posix_storage.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::Contains;
using walstore::test::ListTree;
using walstore::test::MakeSegment;
using walstore::test::ReadAll;
using walstore::test::ReadFile;
using walstore::test::TempDir;
using walstore::test::WriteFile;

namespace {

constexpr uint64_t kSysId = 7312345678901234567ull;
constexpr uint32_t kSegSize = 1u << 20;

Key TestKey(uint8_t fill = 0x42) { return walstore::test::SequenceKey(fill); }

std::string FreshStoreName() {
  static std::atomic<int> n{0};
  return "archive-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

struct Fixture {
  Fixture() : store_name(FreshStoreName()) {
    ResetMemoryStorage(store_name);
    storage = OpenMemoryStorage(store_name);
    config.repo_url = "memory://" + store_name;
    config.compression = CompressionSpec{Codec::kLz4, 0};
    config.key = TestKey();
    config.chunk_size = 64u << 10;
  }
  ~Fixture() { ResetMemoryStorage(store_name); }

  // Writes a segment file named `name` into the temp dir and returns its path.
  std::string Segment(const std::string& name, uint64_t seed = 3, uint64_t sys_id = kSysId) {
    auto n = ParseWalFileNameOrThrow(name);
    const std::string content =
        MakeSegment(n.timeline, n.SegmentNumber(kSegSize), kSegSize, sys_id, seed);
    const std::string path = dir / ("pg_wal/" + name);
    WriteFile(path, content);
    return path;
  }

  std::string RawObject(const std::string& key) {
    auto in = storage->OpenRead(key);
    REQUIRE(in != nullptr);
    return ReadAll(*in);
  }

  std::string DecodedObject(const std::string& key) {
    const std::string raw = RawObject(key);
    MemoryReadStream in(std::string_view{raw});
    ObjectDecoder dec(in, config.key ? &*config.key : nullptr, key);
    return ReadAll(dec);
  }

  void PutRaw(const std::string& key, const std::string& bytes) {
    storage->Remove(key);
    auto w = storage->Create(key);
    w->Write(AsBytes(bytes));
    REQUIRE(w->Commit() == CommitResult::kCreated);
  }

  std::string store_name;
  std::unique_ptr<Storage> storage;
  Config config;
  TempDir dir;
};

}  // namespace

TEST_SUITE("archive") {
  TEST_CASE("repository layout") {
    CHECK(ArchivePrefix(kSysId) == "7312345678901234567/");
    CHECK(WalPrefix(kSysId) == "7312345678901234567/wal/");
    CHECK(BackupPrefix(kSysId) == "7312345678901234567/backup/");
    CHECK(WalObjectKey(kSysId, ParseWalFileNameOrThrow("000000010000000A000000FE")) ==
          "7312345678901234567/wal/000000010000000A/000000010000000A000000FE");
    CHECK(WalObjectKey(kSysId, ParseWalFileNameOrThrow("000000010000000A000000FE.partial")) ==
          "7312345678901234567/wal/000000010000000A/000000010000000A000000FE.partial");
    CHECK(WalObjectKey(kSysId, ParseWalFileNameOrThrow("000000010000000A000000FE.00000028.backup")) ==
          "7312345678901234567/wal/000000010000000A/000000010000000A000000FE.00000028.backup");
    CHECK(WalObjectKey(kSysId, ParseWalFileNameOrThrow("00000002.history")) ==
          "7312345678901234567/wal/00000002.history");
    CHECK(WalObjectKey(1, ParseWalFileNameOrThrow("00000002.history")) == "1/wal/00000002.history");
    // Every key follows the storage key rules.
    CHECK_NOTHROW(ValidateKey(WalObjectKey(kSysId, ParseWalFileNameOrThrow("000000010000000A000000FE"))));
  }

  TEST_CASE("push stores a segment that decodes to the file; second push is kAlreadyArchived") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    const std::string path = fx.Segment(name);
    const std::string content = ReadFile(path);

    PushResult r = PushWalFile(*fx.storage, fx.config, path);
    CHECK(r.outcome == PushOutcome::kStored);
    CHECK(r.name.text == name);
    CHECK(r.system_id == kSysId);
    CHECK(r.key == WalObjectKey(kSysId, ParseWalFileNameOrThrow(name)));
    CHECK(r.key == "7312345678901234567/wal/0000000100000000/000000010000000000000003");
    CHECK(r.plaintext_size == kSegSize);
    CHECK(r.sha256 == Sha256Of(AsBytes(content)));
    auto info = fx.storage->Stat(r.key);
    REQUIRE(info.has_value());
    CHECK(r.stored_size == info->size);
    CHECK(info->size < kSegSize);  // lz4 on compressible data

    const std::string raw = fx.RawObject(r.key);
    MemoryReadStream rin(std::string_view{raw});
    ObjectHeader h = ReadObjectHeader(rin, r.key);
    CHECK(h.codec == Codec::kLz4);
    CHECK(h.cipher == Cipher::kAes256Gcm);
    CHECK(h.key_id == fx.config.key->id());
    CHECK(fx.DecodedObject(r.key) == content);

    CHECK(h.has_digest);  // informational: test before overwrite decodes the object
    CHECK(h.plaintext_sha256 == Sha256Of(AsBytes(content)));

    PushResult again = PushWalFile(*fx.storage, fx.config, path);
    CHECK(again.outcome == PushOutcome::kAlreadyArchived);
    CHECK(again.key == r.key);
    CHECK(fx.RawObject(r.key) == raw);
  }

  TEST_CASE("push without encryption and with zstd") {
    Fixture fx;
    fx.config.key.reset();
    fx.config.compression = CompressionSpec{Codec::kZstd, 5};
    const std::string path = fx.Segment("000000010000000000000007");
    PushResult r = PushWalFile(*fx.storage, fx.config, path);
    CHECK(r.outcome == PushOutcome::kStored);
    const std::string raw = fx.RawObject(r.key);
    MemoryReadStream rin(std::string_view{raw});
    ObjectHeader h = ReadObjectHeader(rin, r.key);
    CHECK(h.codec == Codec::kZstd);
    CHECK(h.cipher == Cipher::kNone);
    CHECK(fx.DecodedObject(r.key) == ReadFile(path));
  }

  TEST_CASE("push of different content under the same name is kConflict naming both checksums") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    const std::string path = fx.Segment(name, 3);
    const std::string original = ReadFile(path);
    PushResult r = PushWalFile(*fx.storage, fx.config, path);
    REQUIRE(r.outcome == PushOutcome::kStored);
    const std::string raw_before = fx.RawObject(r.key);

    std::string changed = original;
    changed[5000] ^= 0x01;
    WriteFile(path, changed);
    auto err = walstore::test::ThrownError([&] { PushWalFile(*fx.storage, fx.config, path); });
    REQUIRE(err.has_value());
    CHECK(walstore::test::CodeName(err->code()) == std::string("kConflict"));
    const std::string msg = err->what();
    CHECK(Contains(msg, ToHex(Sha256Of(AsBytes(original)))));
    CHECK(Contains(msg, ToHex(Sha256Of(AsBytes(changed)))));
    CHECK(Contains(msg, name));
    CHECK_FALSE(err->hint().empty());  // says what an operator can do next
    CHECK(fx.RawObject(r.key) == raw_before);
    CHECK(fx.DecodedObject(r.key) == original);
  }

  TEST_CASE("push refuses bad input before storing anything") {
    Fixture fx;
    auto nothing_stored = [&] {
      int n = 0;
      fx.storage->List("", [&](const ObjectInfo&) { ++n; });
      return n == 0;
    };
    SUBCASE("not a WAL file name") {
      const std::string path = fx.dir / "pg_wal/notawalfile";
      WriteFile(path, "x");
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kInvalidName);
    }
    SUBCASE("lower-case name") {
      const std::string path = fx.dir / "pg_wal/00000001000000000000000a";
      WriteFile(path, MakeSegment(1, 10, kSegSize, kSysId));
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kInvalidName);
    }
    SUBCASE("missing file") {
      CHECK_THROWS_AS(PushWalFile(*fx.storage, fx.config, fx.dir / "pg_wal/000000010000000000000009"), Error);
    }
    SUBCASE("a directory") {
      std::filesystem::create_directories(fx.dir / "pg_wal/000000010000000000000009");
      CHECK_THROWS_AS(PushWalFile(*fx.storage, fx.config, fx.dir / "pg_wal/000000010000000000000009"), Error);
    }
    SUBCASE("segment with the wrong size") {
      const std::string path = fx.Segment("000000010000000000000003");
      std::string c = ReadFile(path);
      c.resize(c.size() - 1);
      WriteFile(path, c);
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kNotWal);
    }
    SUBCASE("segment whose header names another segment") {
      const std::string path = fx.dir / "pg_wal/000000010000000000000003";
      WriteFile(path, MakeSegment(1, 4, kSegSize, kSysId));
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kNotWal);
    }
    SUBCASE("segment whose header names another timeline") {
      const std::string path = fx.dir / "pg_wal/000000010000000000000003";
      WriteFile(path, MakeSegment(2, 3, kSegSize, kSysId));
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kNotWal);
    }
    SUBCASE("segment shorter than a page header") {
      const std::string path = fx.dir / "pg_wal/000000010000000000000003";
      WriteFile(path, "short");
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kNotWal);
    }
    SUBCASE("empty segment") {
      const std::string path = fx.dir / "pg_wal/000000010000000000000003";
      WriteFile(path, "");
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kNotWal);
    }
    SUBCASE("segment without a long header") {
      const std::string path = fx.dir / "pg_wal/000000010000000000000003";
      WriteFile(path, std::string(kSegSize, '\0'));
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kNotWal);
    }
    SUBCASE("segment of another cluster than the configured system id") {
      fx.config.system_id = 1234;
      const std::string path = fx.Segment("000000010000000000000003");
      CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kSystemIdMismatch);
    }
    CHECK(nothing_stored());
  }

  TEST_CASE("push of a history file uses the configured system id") {
    Fixture fx;
    fx.config.system_id = kSysId;
    const std::string path = fx.dir / "pg_wal/00000002.history";
    const std::string content = "1\t0/3000000\tno recovery target specified\n";
    WriteFile(path, content);
    PushResult r = PushWalFile(*fx.storage, fx.config, path);
    CHECK(r.outcome == PushOutcome::kStored);
    CHECK(r.key == "7312345678901234567/wal/00000002.history");
    CHECK(fx.DecodedObject(r.key) == content);
  }

  TEST_CASE("push of a history file reads the system id from <cwd>/global/pg_control") {
    Fixture fx;
    std::string control(8192, '\0');
    walstore::test::StoreLe64(reinterpret_cast<uint8_t*>(control.data()), 99887766ull);
    WriteFile(fx.dir / "global/pg_control", control);
    WriteFile(fx.dir / "pg_wal/00000003.history", "2\t0/5000000\tbecause\n");
    walstore::test::ScopedChdir cd(fx.dir.path());
    PushResult r = PushWalFile(*fx.storage, fx.config, "pg_wal/00000003.history");
    CHECK(r.key == "99887766/wal/00000003.history");
  }

  TEST_CASE("fetch of a missing object is kMissing and writes nothing") {
    Fixture fx;
    fx.config.system_id = kSysId;
    std::filesystem::create_directories(fx.dir / "pg_wal");
    const std::string dest = fx.dir / "pg_wal/RECOVERYXLOG";
    FetchResult r = FetchWalFile(*fx.storage, fx.config, "000000010000000000000003", dest);
    CHECK(r.outcome == FetchOutcome::kMissing);
    CHECK_FALSE(walstore::test::Exists(dest));
    CHECK(ListTree(fx.dir / "pg_wal").empty());
    FetchResult h = FetchWalFile(*fx.storage, fx.config, "00000002.history", dest);
    CHECK(h.outcome == FetchOutcome::kMissing);
    CHECK(ListTree(fx.dir / "pg_wal").empty());
  }

  TEST_CASE("fetch refuses an invalid name") {
    Fixture fx;
    fx.config.system_id = kSysId;
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, "../../etc/passwd", fx.dir / "x"),
               ErrorCode::kInvalidName);
    CHECK_FALSE(walstore::test::Exists(fx.dir / "x"));
  }

  TEST_CASE("push then fetch restores identical content to RECOVERYXLOG and pg_wal/<name>") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    const std::string src = fx.Segment(name);
    const std::string content = ReadFile(src);
    PushWalFile(*fx.storage, fx.config, src);

    TempDir restore;
    std::filesystem::create_directories(restore / "pg_wal");
    fx.config.system_id = kSysId;
    const std::string dest = restore / "pg_wal/RECOVERYXLOG";
    FetchResult r = FetchWalFile(*fx.storage, fx.config, name, dest);
    CHECK(r.outcome == FetchOutcome::kRestored);
    CHECK(r.key == WalObjectKey(kSysId, ParseWalFileNameOrThrow(name)));
    CHECK(r.plaintext_size == kSegSize);
    CHECK(ReadFile(dest) == content);

    // pg_rewind style destination, and an existing destination is replaced.
    const std::string dest2 = restore / ("pg_wal/" + name);
    WriteFile(dest2, "old content");
    FetchResult r2 = FetchWalFile(*fx.storage, fx.config, name, dest2);
    CHECK(r2.outcome == FetchOutcome::kRestored);
    CHECK(ReadFile(dest2) == content);
    // No temporary files left behind.
    CHECK(walstore::test::Join(ListTree(restore / "pg_wal")) == walstore::test::Join({name, "RECOVERYXLOG"}));
  }

  TEST_CASE("fetch with a relative destination and the system id from pg_control") {
    Fixture fx;
    const std::string name = "000000010000000000000005";
    const std::string content = ReadFile(fx.Segment(name));
    PushWalFile(*fx.storage, fx.config, fx.dir / ("pg_wal/" + name));

    TempDir data;
    std::string control(8192, '\0');
    walstore::test::StoreLe64(reinterpret_cast<uint8_t*>(control.data()), kSysId);
    WriteFile(data / "global/pg_control", control);
    std::filesystem::create_directories(data / "pg_wal");
    walstore::test::ScopedChdir cd(data.path());
    FetchResult r = FetchWalFile(*fx.storage, fx.config, name, "pg_wal/RECOVERYXLOG");
    CHECK(r.outcome == FetchOutcome::kRestored);
    CHECK(ReadFile(data / "pg_wal/RECOVERYXLOG") == content);
  }

  TEST_CASE("fetch of a damaged object throws kCorrupt and leaves no file") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    PushResult p = PushWalFile(*fx.storage, fx.config, fx.Segment(name));
    const std::string raw = fx.RawObject(p.key);
    fx.config.system_id = kSysId;

    TempDir restore;
    std::filesystem::create_directories(restore / "pg_wal");
    const std::string dest = restore / "pg_wal/RECOVERYXLOG";

    SUBCASE("bit flip in the body") {
      std::string bad = raw;
      bad[raw.size() / 2] ^= 0x10;
      fx.PutRaw(p.key, bad);
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kCorrupt);
    }
    SUBCASE("truncated") {
      fx.PutRaw(p.key, raw.substr(0, raw.size() - 10));
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kCorrupt);
    }
    SUBCASE("truncated to half") {
      fx.PutRaw(p.key, raw.substr(0, raw.size() / 2));
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kCorrupt);
    }
    SUBCASE("empty object") {
      fx.PutRaw(p.key, "");
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kCorrupt);
    }
    SUBCASE("garbage object") {
      fx.PutRaw(p.key, walstore::test::RandomString(5000, 5));
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kCorrupt);
    }
    SUBCASE("wrong key") {
      fx.config.key = TestKey(0x77);
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kWrongKey);
    }
    SUBCASE("no key") {
      fx.config.key.reset();
      CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kWrongKey);
    }
    CHECK_FALSE(walstore::test::Exists(dest));
    CHECK(ListTree(restore / "pg_wal").empty());
  }

  TEST_CASE("a damaged object does not replace an existing destination") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    PushResult p = PushWalFile(*fx.storage, fx.config, fx.Segment(name));
    std::string bad = fx.RawObject(p.key);
    bad[bad.size() - 3] ^= 0x01;
    fx.PutRaw(p.key, bad);
    fx.config.system_id = kSysId;
    TempDir restore;
    const std::string dest = restore / "RECOVERYXLOG";
    WriteFile(dest, "previous");
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kCorrupt);
    CHECK(ReadFile(dest) == "previous");
    CHECK(walstore::test::Join(ListTree(restore.path())) == walstore::test::Join({"RECOVERYXLOG"}));
  }

  TEST_CASE("fetch into a directory that does not exist is an error, not missing") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    PushWalFile(*fx.storage, fx.config, fx.Segment(name));
    fx.config.system_id = kSysId;
    TempDir restore;
    const std::string dest = restore / "no/such/dir/RECOVERYXLOG";
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, dest), ErrorCode::kLocalIo);
    CHECK_FALSE(walstore::test::Exists(restore / "no"));
    // A missing object is still just missing there.
    CHECK(FetchWalFile(*fx.storage, fx.config, "000000010000000000000009", dest).outcome ==
          FetchOutcome::kMissing);
  }

  TEST_CASE("fetch to a bare relative file name") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    const std::string content = ReadFile(fx.Segment(name));
    PushWalFile(*fx.storage, fx.config, fx.dir / ("pg_wal/" + name));
    fx.config.system_id = kSysId;
    TempDir restore;
    walstore::test::ScopedChdir cd(restore.path());
    CHECK(FetchWalFile(*fx.storage, fx.config, name, "RECOVERYXLOG").outcome == FetchOutcome::kRestored);
    CHECK(ReadFile(restore / "RECOVERYXLOG") == content);
    CHECK(walstore::test::Join(ListTree(restore.path())) == "RECOVERYXLOG");
  }

  TEST_CASE("RestoreObjectToFile and StoreFileObject") {
    Fixture fx;
    const std::string src = fx.dir / "some/file";
    const std::string content = walstore::test::RandomString(300000, 21);
    WriteFile(src, content);
    StoreResult s = StoreFileObject(*fx.storage, fx.config, src, "x/y/z");
    CHECK(s.commit == CommitResult::kCreated);
    CHECK(s.plaintext_size == content.size());
    CHECK(s.sha256 == Sha256Of(AsBytes(content)));
    StoreResult s2 = StoreFileObject(*fx.storage, fx.config, src, "x/y/z");
    CHECK(s2.commit == CommitResult::kAlreadyExists);

    uint64_t size = 0;
    CHECK(RestoreObjectToFile(*fx.storage, fx.config, "x/y/z", fx.dir / "out", &size));
    CHECK(size == content.size());
    CHECK(ReadFile(fx.dir / "out") == content);
    CHECK_FALSE(RestoreObjectToFile(*fx.storage, fx.config, "x/y/missing", fx.dir / "out2"));
    CHECK_FALSE(walstore::test::Exists(fx.dir / "out2"));
  }

  TEST_CASE("push and fetch through a posix repository") {
    Fixture fx;
    TempDir repo;
    auto posix = OpenPosixStorage(repo.path());
    const std::string name = "000000010000000000000003";
    const std::string path = fx.Segment(name, 3);
    const std::string original = ReadFile(path);
    PushResult r = PushWalFile(*posix, fx.config, path);
    CHECK(r.outcome == PushOutcome::kStored);
    CHECK(walstore::test::Exists(repo / r.key));
    CHECK(PushWalFile(*posix, fx.config, path).outcome == PushOutcome::kAlreadyArchived);
    const std::string raw = ReadFile(repo / r.key);

    std::string changed = original;
    changed[100000] ^= 0x01;
    WriteFile(path, changed);
    const std::string msg = walstore::test::ThrownMessage([&] { PushWalFile(*posix, fx.config, path); });
    CHECK_CODE(PushWalFile(*posix, fx.config, path), ErrorCode::kConflict);
    CHECK(Contains(msg, ToHex(Sha256Of(AsBytes(original)))));
    CHECK(Contains(msg, ToHex(Sha256Of(AsBytes(changed)))));
    CHECK(ReadFile(repo / r.key) == raw);
    // Only the one object (no temporaries) in the repository.
    CHECK(walstore::test::Join(walstore::test::ListKeys(*posix, "")) == r.key);

    fx.config.system_id = kSysId;
    TempDir restore;
    FetchResult f = FetchWalFile(*posix, fx.config, name, restore / "RECOVERYXLOG");
    CHECK(f.outcome == FetchOutcome::kRestored);
    CHECK(ReadFile(restore / "RECOVERYXLOG") == original);
  }

  TEST_CASE("two pushes of the same segment racing: one stores, the other finds it archived") {
    for (bool posix : {false, true}) {
      CAPTURE(posix);
      Fixture fx;
      TempDir repo;
      std::unique_ptr<Storage> owned = posix ? OpenPosixStorage(repo.path()) : nullptr;
      Storage& storage = posix ? *owned : *fx.storage;
      const std::string path = fx.Segment("000000010000000000000006");
      std::vector<PushOutcome> outcomes(4);
      std::vector<std::string> errors(4);
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
          try {
            outcomes[t] = PushWalFile(storage, fx.config, path).outcome;
          } catch (const std::exception& e) {
            errors[t] = e.what();
          }
        });
      }
      for (auto& th : threads) th.join();
      int stored = 0;
      for (int t = 0; t < 4; ++t) {
        CAPTURE(errors[t]);
        CHECK(errors[t].empty());
        if (errors[t].empty() && outcomes[t] == PushOutcome::kStored) ++stored;
      }
      CHECK(stored == 1);
      const std::string key = WalObjectKey(kSysId, ParseWalFileNameOrThrow("000000010000000000000006"));
      auto in = storage.OpenRead(key);
      REQUIRE(in != nullptr);
      ObjectDecoder dec(*in, &*fx.config.key, key);
      CHECK(ReadAll(dec) == ReadFile(path));
    }
  }

  TEST_CASE("push of .partial and .backup files") {
    Fixture fx;
    fx.config.system_id = kSysId;
    const std::string partial = "000000010000000000000004.partial";
    const auto pn = ParseWalFileNameOrThrow(partial);
    const std::string ppath = fx.dir / ("pg_wal/" + partial);
    WriteFile(ppath, MakeSegment(1, pn.SegmentNumber(kSegSize), kSegSize, kSysId));
    PushResult p = PushWalFile(*fx.storage, fx.config, ppath);
    CHECK(p.key == "7312345678901234567/wal/0000000100000000/000000010000000000000004.partial");
    CHECK(fx.DecodedObject(p.key) == ReadFile(ppath));

    const std::string backup = "000000010000000000000004.00000028.backup";
    const std::string bpath = fx.dir / ("pg_wal/" + backup);
    WriteFile(bpath, "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n");
    PushResult b = PushWalFile(*fx.storage, fx.config, bpath);
    CHECK(b.key == "7312345678901234567/wal/0000000100000000/000000010000000000000004.00000028.backup");
    TempDir restore;
    FetchResult f = FetchWalFile(*fx.storage, fx.config, backup, restore / "out");
    CHECK(f.outcome == FetchOutcome::kRestored);
    CHECK(ReadFile(restore / "out") == ReadFile(bpath));
  }

  TEST_CASE("push onto a damaged stored object fails and leaves it alone") {
    Fixture fx;
    const std::string name = "000000010000000000000003";
    const std::string key = WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
    const std::string garbage = walstore::test::RandomString(4000, 42);
    fx.PutRaw(key, garbage);
    CHECK_CODE(PushWalFile(*fx.storage, fx.config, fx.Segment(name)), ErrorCode::kArchivedDamaged);
    CHECK(fx.RawObject(key) == garbage);
  }

  TEST_CASE("push succeeds on an existing object only after decoding it completely") {
    for (bool encrypt : {true, false}) {
      CAPTURE(encrypt);
      Fixture fx;
      if (!encrypt) fx.config.key.reset();
      const std::string name = "000000010000000000000003";
      const std::string path = fx.Segment(name);
      const PushResult first = PushWalFile(*fx.storage, fx.config, path);
      REQUIRE(first.outcome == PushOutcome::kStored);
      const std::string raw = fx.RawObject(first.key);
      // Another segment's valid object, for the misplaced case.
      const PushResult other = PushWalFile(*fx.storage, fx.config, fx.Segment("000000010000000000000004"));
      auto damaged = [&](const std::string& bytes) {
        fx.PutRaw(first.key, bytes);
        const auto err = walstore::test::ThrownError([&] { PushWalFile(*fx.storage, fx.config, path); });
        REQUIRE(err.has_value());
        CHECK(walstore::test::CodeName(err->code()) == std::string("kArchivedDamaged"));
        CHECK(InfoFor(err->code()).exit_code == 21);
        CHECK(Contains(err->what(), first.key));
        CHECK(Contains(err->hint(), "move the damaged object aside"));
        CHECK(Contains(err->hint(), "docs/operations.md"));
        CHECK(fx.RawObject(first.key) == bytes);  // left untouched
        return std::string(err->what());
      };
      SUBCASE("identical object: already archived") {
        CHECK(PushWalFile(*fx.storage, fx.config, path).outcome == PushOutcome::kAlreadyArchived);
      }
      SUBCASE("truncated to its header (which still carries the right digest)") {
        CHECK(Contains(damaged(raw.substr(0, kObjectHeaderSize)), "no end record"));
      }
      SUBCASE("truncated inside the last record") {
        damaged(raw.substr(0, raw.size() - 10));
      }
      SUBCASE("one flipped bit in the body") {
        std::string bad = raw;
        bad[raw.size() / 2] ^= 0x08;
        damaged(bad);
      }
      SUBCASE("another segment's object stored under this name") {
        CHECK(Contains(damaged(fx.RawObject(other.key)), "stored for another name"));
      }
      if (encrypt) {
        SUBCASE("undecryptable: encrypted with a key that is not configured") {
          Config other_key = fx.config;
          other_key.key = TestKey(0x99);
          fx.storage->Remove(first.key);
          REQUIRE(PushWalFile(*fx.storage, other_key, path).outcome == PushOutcome::kStored);
          const auto err = walstore::test::ThrownError([&] { PushWalFile(*fx.storage, fx.config, path); });
          REQUIRE(err.has_value());
          CHECK(walstore::test::CodeName(err->code()) == std::string("kArchivedDamaged"));
          CHECK(Contains(err->what(), "wrong key"));
        }
        SUBCASE("an unencrypted object while a key is configured") {
          Config plain = fx.config;
          plain.key.reset();
          fx.storage->Remove(first.key);
          REQUIRE(PushWalFile(*fx.storage, plain, path).outcome == PushOutcome::kStored);
          CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kArchivedDamaged);
          fx.config.allow_plaintext_objects = true;  // migration: it is verified, so it counts
          CHECK(PushWalFile(*fx.storage, fx.config, path).outcome == PushOutcome::kAlreadyArchived);
        }
      }
      SUBCASE("a valid object with other content is still a conflict") {
        std::string changed = ReadFile(path);
        changed[7000] ^= 0x01;
        WriteFile(path, changed);
        CHECK_CODE(PushWalFile(*fx.storage, fx.config, path), ErrorCode::kConflict);
        CHECK(fx.RawObject(first.key) == raw);
      }
    }
  }

  TEST_CASE("fetch refuses an object that is not the file it is named after") {
    for (bool encrypt : {true, false}) {
      CAPTURE(encrypt);
      Fixture fx;
      if (!encrypt) fx.config.key.reset();
      fx.config.system_id = kSysId;
      const std::string name = "000000010000000000000005";
      const std::string key = WalObjectKey(kSysId, ParseWalFileNameOrThrow(name));
      TempDir restore;
      const std::string dest = restore / "RECOVERYXLOG";
      std::string expected_message;
      SUBCASE("another segment's object copied to this name") {
        const PushResult seven = PushWalFile(*fx.storage, fx.config, fx.Segment("000000010000000000000007"));
        fx.PutRaw(key, fx.RawObject(seven.key));
        expected_message = "stored for another name";
      }
      SUBCASE("another cluster's object for the same segment name") {
        Config their_config = fx.config;
        their_config.system_id.reset();
        const PushResult theirs =
            PushWalFile(*fx.storage, their_config, fx.Segment(name, 3, 1111111111111111111ull));
        REQUIRE(theirs.key != key);
        fx.PutRaw(key, fx.RawObject(theirs.key));
        expected_message = "stored for another name";
      }
      SUBCASE("an object bound to this name holding another segment (no name binding helps)") {
        StoreFileObject(*fx.storage, fx.config, fx.Segment("000000010000000000000007"), key);
        expected_message = "describes segment 000000010000000000000007";
      }
      SUBCASE("an object bound to this name holding another cluster's segment") {
        StoreFileObject(*fx.storage, fx.config, fx.Segment(name, 3, 1111111111111111111ull), key);
        expected_message = "WAL of cluster 1111111111111111111";
      }
      SUBCASE("an object bound to this name that is not WAL at all") {
        const std::string junk = fx.dir / "junk";
        WriteFile(junk, std::string(kSegSize, 'j'));
        StoreFileObject(*fx.storage, fx.config, junk, key);
        expected_message = "no valid WAL long page header";
      }
      const auto err = walstore::test::ThrownError([&] { FetchWalFile(*fx.storage, fx.config, name, dest); });
      REQUIRE(err.has_value());
      CHECK(walstore::test::CodeName(err->code()) == std::string("kMisplaced"));
      CHECK(InfoFor(err->code()).fetch_exit == kFetchExitAbortRecovery);
      CHECK(Contains(err->what(), expected_message));
      CHECK(ListTree(restore.path()).empty());  // nothing at %p, no temporary
    }
  }

  TEST_CASE("fetch of a .partial checks its WAL header too; history files are bound to their name") {
    Fixture fx;
    fx.config.system_id = kSysId;
    TempDir restore;
    const std::string partial = "000000010000000000000004.partial";
    const std::string pkey = WalObjectKey(kSysId, ParseWalFileNameOrThrow(partial));
    StoreFileObject(*fx.storage, fx.config, fx.Segment("000000010000000000000006"), pkey);
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, partial, restore / "p"), ErrorCode::kMisplaced);

    const std::string history = fx.dir / "pg_wal/00000002.history";
    WriteFile(history, "1\t0/3000000\tno recovery target specified\n");
    const PushResult two = PushWalFile(*fx.storage, fx.config, history);
    fx.PutRaw(WalObjectKey(kSysId, ParseWalFileNameOrThrow("00000003.history")), fx.RawObject(two.key));
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, "00000003.history", restore / "h"),
               ErrorCode::kMisplaced);
    CHECK(FetchWalFile(*fx.storage, fx.config, "00000002.history", restore / "h2").outcome ==
          FetchOutcome::kRestored);
    CHECK(walstore::test::Join(ListTree(restore.path())) == "h2");
  }

  TEST_CASE("with a key configured an unencrypted object is not restored unless allowed") {
    Fixture fx;
    fx.config.system_id = kSysId;
    const std::string name = "000000010000000000000003";
    Config plain = fx.config;
    plain.key.reset();
    PushWalFile(*fx.storage, plain, fx.Segment(name));
    TempDir restore;
    const auto err = walstore::test::ThrownError(
        [&] { FetchWalFile(*fx.storage, fx.config, name, restore / "RECOVERYXLOG"); });
    REQUIRE(err.has_value());
    CHECK(walstore::test::CodeName(err->code()) == std::string("kUnauthenticated"));
    CHECK(InfoFor(err->code()).fetch_exit == kFetchExitAbortRecovery);
    CHECK(Contains(err->hint(), "allow_plaintext_objects"));
    CHECK(ListTree(restore.path()).empty());
    fx.config.allow_plaintext_objects = true;
    CHECK(FetchWalFile(*fx.storage, fx.config, name, restore / "RECOVERYXLOG").outcome ==
          FetchOutcome::kRestored);
    CHECK(ReadFile(restore / "RECOVERYXLOG") == ReadFile(fx.dir / ("pg_wal/" + name)));
  }

  TEST_CASE("read-ahead never spools a misplaced segment, and the direct path refuses it too") {
    Fixture fx;
    fx.config.system_id = kSysId;
    fx.config.prefetch = 2;
    const std::string five = "000000010000000000000005";
    const std::string six = "000000010000000000000006";
    PushWalFile(*fx.storage, fx.config, fx.Segment("000000010000000000000004"));
    StoreFileObject(*fx.storage, fx.config, fx.Segment("000000010000000000000007"),
                    WalObjectKey(kSysId, ParseWalFileNameOrThrow(five)));
    PushWalFile(*fx.storage, fx.config, fx.Segment(six));
    TempDir data;
    std::filesystem::create_directories(data / "pg_wal");
    const std::string dest = data / "pg_wal/RECOVERYXLOG";
    REQUIRE(FetchWalFile(*fx.storage, fx.config, "000000010000000000000004", dest).outcome ==
            FetchOutcome::kRestored);
    CHECK_CODE(RunPrefetchWorker(*fx.storage, fx.config, kSysId,
                                 ParseWalFileNameOrThrow("000000010000000000000004"), kSegSize, dest),
               ErrorCode::kMisplaced);
    CHECK_FALSE(walstore::test::Exists(PrefetchSpoolDir(dest) + "/" + five));
    std::filesystem::remove(dest);
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, five, dest), ErrorCode::kMisplaced);
    CHECK_FALSE(walstore::test::Exists(dest));
  }

  TEST_CASE("push without a system id for a history file is kConfig") {
    Fixture fx;
    WriteFile(fx.dir / "pg_wal/00000002.history", "1\t0/3000000\tx\n");
    TempDir empty;
    walstore::test::ScopedChdir cd(empty.path());
    CHECK_CODE(PushWalFile(*fx.storage, fx.config, fx.dir / "pg_wal/00000002.history"), ErrorCode::kConfig);
  }

  TEST_CASE("ResolveSystemId: config, else pg_control, else kConfig; both must agree") {
    TempDir data;
    Config c;
    CHECK_CODE(ResolveSystemId(c, data.path()), ErrorCode::kConfig);
    c.system_id = 777ull;
    CHECK(ResolveSystemId(c, data.path()) == 777ull);  // outside a data directory
    c.system_id.reset();
    std::string control(8192, '\0');
    walstore::test::StoreLe64(reinterpret_cast<uint8_t*>(control.data()), 555ull);
    WriteFile(data / "global/pg_control", control);
    CHECK(ResolveSystemId(c, data.path()) == 555ull);
    c.system_id = 555ull;
    CHECK(ResolveSystemId(c, data.path()) == 555ull);
    // A data directory of another cluster than the configured one.
    c.system_id = 777ull;
    CHECK_CODE(ResolveSystemId(c, data.path()), ErrorCode::kSystemIdMismatch);
    const std::string message = walstore::test::ThrownMessage([&] { ResolveSystemId(c, data.path()); });
    CHECK(walstore::test::Contains(message, "belongs to cluster 555"));
    CHECK(walstore::test::Contains(message, "system_id is set to 777"));
  }

  TEST_CASE("a configured system id of another cluster than the data directory's is refused") {
    // walfetch would restore the other cluster's WAL with exit 0 (its page
    // headers name the configured cluster), and PostgreSQL, finding another
    // system's WAL, ends recovery early; walpush would archive this cluster's
    // history files under the other cluster, where no restore looks.
    Fixture fx;
    const std::string name = "000000010000000000000003";
    PushWalFile(*fx.storage, fx.config, fx.Segment(name));  // cluster kSysId
    TempDir data;
    std::string control(8192, '\0');
    walstore::test::StoreLe64(reinterpret_cast<uint8_t*>(control.data()), 4242ull);
    WriteFile(data / "global/pg_control", control);
    WriteFile(data / "pg_wal/00000002.history", "1\t0/3000000\tx\n");
    walstore::test::ScopedChdir cd(data.path());
    fx.config.system_id = kSysId;
    CHECK_CODE(FetchWalFile(*fx.storage, fx.config, name, "pg_wal/RECOVERYXLOG"),
               ErrorCode::kSystemIdMismatch);
    CHECK_FALSE(walstore::test::Exists(data / "pg_wal/RECOVERYXLOG"));
    CHECK_CODE(PushWalFile(*fx.storage, fx.config, "pg_wal/00000002.history"),
               ErrorCode::kSystemIdMismatch);
    CHECK_FALSE(fx.storage->Stat(WalObjectKey(kSysId, ParseWalFileNameOrThrow("00000002.history"))));
  }
}
