// walstore object format, version 2 (written down in docs/format.md; version 1
// objects of earlier builds stay readable).
//
// Every object in a repository (WAL segment, history file, backup file) is
//   header (128 bytes) | data record* | end record
// The header says how to read the rest (codec, cipher, key id, chunk size)
// and, when known before writing, the plaintext size and SHA-256.  Each data
// record holds one chunk of at most chunk_size plaintext bytes, compressed on
// its own and, with encryption, sealed with AES-256-GCM under a per-object key
// (HKDF of the master key and the header's random salt) with the record
// index as nonce and the header, record header and identity (below) as
// associated data.  The
// end record carries the record count, plaintext size and SHA-256.
//
// A reader therefore detects truncation (no end record), reordering (index),
// any flipped bit (header check, GCM tag, decompression, SHA-256), a wrong key
// (key id), an unknown version (kUnsupportedFormat), an object under another
// name (kMisplaced) and, with a key configured, an unencrypted object
// (kUnauthenticated), and needs memory for a few chunks whatever the object
// size.
//
// Version 2 binds every object to its identity, the storage key it is
// written under ("<system-id>/wal/.../<segment>", "<system-id>/backup/<label>/
// backup.json", ...): the identity is part of every record's GCM associated
// data (encrypted objects) or of the stored SHA-256 (unencrypted ones), and an
// 8-byte identity hash in the header lets a reader report an object copied or
// moved to another name (kMisplaced) before decoding anything.  Version 2
// record indices are 48 bits (64 in the nonce), so the counter cannot wrap.
// Version 1 objects carry no binding: they decode under any name.
//
// Contracts common to everything below:
// - Ownership: an encoder or decoder keeps a reference to its sink or source
//   (which must outlive it) and copies the options and identity; a Key is
//   used only while the constructor runs (the per-object key derived from it
//   is kept, and wiped when the object is destroyed).  Neither finishes nor
//   closes the stream it was given.
// - Threads: one encoder or decoder is used by one thread at a time; distinct
//   ones are independent.  EncodeOptions::threads > 1, DecodeOptions::
//   threads > 1 and the decoder's hashing use helper threads that the
//   object owns and joins before its destructor returns, also after an
//   exception.  The free functions keep no
//   state and may be called from any thread.
// - Damaged input never yields plaintext that is then vouched for: a
//   truncated, bit-flipped, reordered or spliced object throws Error
//   kCorrupt, an unknown version / codec / cipher in an intact header
//   kUnsupportedFormat, a missing or wrong key kWrongKey, an object under
//   another name kMisplaced, an unencrypted object under a key
//   kUnauthenticated (docs/format.md, "What a reader checks", lists every
//   check with its message).  Errors of the underlying stream propagate as
//   they are.
//
// Implementation: src/lib/format/ (object_layout.h names every offset;
// object_header.cc, object_record.cc, object_encoder.cc, object_decoder.cc).
#pragma once

#include <walstore/codec.h>
#include <walstore/crypto.h>
#include <walstore/stream.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace walstore {

inline constexpr size_t kObjectHeaderSize = 128;
inline constexpr uint16_t kObjectFormatVersion = 2;        // written
inline constexpr uint16_t kOldestObjectFormatVersion = 1;  // still read
// Data records one version 2 object may hold: the record index has 48 bits
// (and the end record's index is their count).  The encoder refuses to go further
// (kConfig: a larger chunk_size is needed) instead of reusing a GCM nonce.
inline constexpr uint64_t kMaxRecordsPerObject = (uint64_t{1} << 48) - 1;
inline constexpr uint32_t kMaxChunkSize = 16u << 20;

enum class Cipher : uint8_t { kNone = 0, kAes256Gcm = 1 };

struct ObjectHeader {
  uint16_t version = kObjectFormatVersion;
  Codec codec = Codec::kNone;
  Cipher cipher = Cipher::kNone;
  uint32_t chunk_size = 1u << 20;
  uint64_t key_id = 0;                // 0 when not encrypted
  std::array<uint8_t, 32> salt{};     // per-object random salt (encrypted objects)
  std::array<uint8_t, 8> identity_hash{};  // version 2: ObjectIdentityHash(identity)
  bool has_digest = false;            // plaintext size and digest below are set
  uint64_t plaintext_size = 0;
  Sha256Digest plaintext_sha256{};
};

// Parses and checks a header (magic, header check, version, known codec and
// cipher).  Throws kCorrupt / kUnsupportedFormat with `what` in the message.
ObjectHeader ParseObjectHeader(Bytes header_bytes, const std::string& what);
// Reads kObjectHeaderSize bytes from `in` and parses them; a shorter stream
// is kCorrupt ("truncated header").
ObjectHeader ReadObjectHeader(ReadStream& in, const std::string& what);

// The first 8 bytes of SHA-256("walstore-object-identity" || identity): what a
// version 2 header stores at offset 56 for the storage key `identity`.
std::array<uint8_t, 8> ObjectIdentityHash(std::string_view identity);

struct EncodeOptions {
  CompressionSpec compression;
  const Key* key = nullptr;          // nullptr: no encryption
  uint32_t chunk_size = 1u << 20;
  // When the caller knows the plaintext's size and SHA-256 in advance (walpush
  // hashes the segment first), they go into the header, so test-before-
  // overwrite can compare without decoding.  The encoder still verifies them
  // and throws kInternal if the data written does not match.
  std::optional<std::pair<uint64_t, Sha256Digest>> known_digest;
  // Set when the sink can replace what it was given first (see
  // ObjectWriter::RewriteHead): without known_digest, Finish() passes it the
  // final header carrying the size and SHA-256, so one pass over the data
  // yields a header with the digest.  Bytes 64.. of the header are outside
  // the records' associated data precisely so they can be written last.
  std::function<void(Bytes header)> rewrite_header;
  int threads = 1;                   // >1: compress/encrypt chunks in parallel
  // The storage key the object is written under (relative to the repository
  // root, e.g. "<system-id>/wal/<TTTTTTTTLLLLLLLL>/<segment>"): the object
  // decodes only under this name.
  std::string identity;
  // Data records the object may hold; only tests lower it (a real object reaches
  // kMaxRecordsPerObject only with a tiny chunk size and petabytes of data).
  uint64_t max_records = kMaxRecordsPerObject;
};

// What a reader accepts.
struct DecodeOptions {
  // The keys that may decrypt (the current key first, then keys rotated out;
  // see Config::ReadKeys()).  Non-empty means "a key is configured": an
  // unencrypted object is then refused with kUnauthenticated, because anyone
  // who can write to the repository can write one, unless allow_plaintext
  // (config allow_plaintext_objects, for a migration to encryption).
  std::vector<Key> keys;
  bool allow_plaintext = false;
  // >1: records are read ahead on the calling thread and authenticated,
  // decrypted and decompressed on L helper threads, at most L records ahead
  // of the one served, where L = min(threads, kMaxDecodeThreads,
  // max(1, kDecodeReadAheadBudget / the object header's chunk_size)), and
  // no more than the records the header announces (an object of one data
  // record is decoded serially).  Memory: 2 x (L + 2) chunk buffers instead
  // of 4; the records read ahead before the one served is authenticated
  // hold at most about kDecodeReadAheadBudget (64 MiB, whatever the header
  // claims); worst case 2 x (4 + 2) x 16 MiB = 192 MiB of buffers at the
  // largest chunk size, 2 x 66 x 1 MiB = 132 MiB at the default one.  The
  // plaintext served, the checks and the errors are those of threads = 1,
  // in the same order: a record's error (of the source, or of the record)
  // surfaces when that record is due, after every record before it was
  // served, and no record after it is.  After an error, every later Read()
  // or DecodeTo() rethrows that same error (whatever `threads`).
  int threads = 1;
};

// DecodeOptions::threads: the most helper threads one decoder starts, and
// the bytes of records it may read ahead (chunk_size each).
inline constexpr int kMaxDecodeThreads = 64;
inline constexpr uint64_t kDecodeReadAheadBudget = 64u << 20;

// Encodes plaintext written to it into `sink`.  Finish() writes the end
// record (it does not finish the sink).  Abandoning it before Finish()
// leaves an object without end record, which every reader refuses.
class ObjectEncoder : public WriteStream {
 public:
  ObjectEncoder(WriteStream& sink, const EncodeOptions& options);
  ~ObjectEncoder() override;
  void Write(Bytes data) override;
  void Finish() override;
  // After Finish(): the plaintext's size and SHA-256, and bytes written to sink.
  uint64_t plaintext_size() const;
  const Sha256Digest& plaintext_sha256() const;
  uint64_t encoded_size() const;
  const ObjectHeader& header() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decodes an object read from `source`: Read() yields verified plaintext.
// The header is read and checked in the constructor, so a wrong key or an
// unknown version fails before any plaintext is produced.  Read() returns 0
// only after the end record has been verified (size and SHA-256); any damage
// throws kCorrupt.  Plaintext of a chunk is returned only after that chunk
// authenticated (encrypted objects); the whole-object SHA-256 is known only at
// the end, so callers must not publish what they wrote before Read() == 0.
// `identity` is the storage key the object was read from (see
// EncodeOptions::identity): a version 2 object written under another name
// throws kMisplaced (header identity hash) or fails authentication / its
// stored checksum (kCorrupt).  `what` names the object in messages (the
// storage description and key); empty means `identity`.
class ObjectDecoder : public ReadStream {
 public:
  // Chooses among options.keys by the key id in the header.
  ObjectDecoder(ReadStream& source, const DecodeOptions& options, std::string identity,
                std::string what = {});
  // One key (or none): with a key, unencrypted objects are refused.
  ObjectDecoder(ReadStream& source, const Key* key, std::string identity, std::string what = {});
  ~ObjectDecoder() override;
  size_t Read(MutableBytes out) override;
  // Push mode: writes the rest of the plaintext to `sink` straight from the
  // decoder's chunk buffers (no copy through a caller buffer) and returns
  // after the end record verified, with the plaintext size.  The same
  // guarantees as Read(): everything written before it returns is
  // unverified as a whole, so the caller publishes only after it returned.
  // Does not call sink.Finish().  May follow Read() calls.
  uint64_t DecodeTo(WriteStream& sink);
  const ObjectHeader& header() const;
  // Valid once Read() returned 0.
  const Sha256Digest& plaintext_sha256() const;
  uint64_t plaintext_size() const;
  // Memory accounting (DecodeOptions::threads): the most records that were
  // read ahead of the one served at once (0 with threads = 1), and the chunk-
  // sized buffers the decoder holds (fixed when it is constructed).
  size_t peak_records_read_ahead() const;
  size_t chunk_buffers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

const char* CipherName(Cipher cipher);

}  // namespace walstore
