// Byte streams: the two small interfaces every pipeline stage implements.
//
// A pipeline is a chain of decorators (ClickHouse's WriteBuffer model): each
// stage transforms bytes and passes them to the next stage it was given.
// Stages never own their downstream unless they say so; the caller builds the
// chain on the stack and finishes it from the outermost stage inward.
//
// Finishing is explicit.  A WriteStream destroyed without Finish() is
// abandoned: whatever reaches a repository through it is never published
// (see storage.h, ObjectWriter).
//
// Not thread-safe: one thread uses a stream at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace walstore {

using Bytes = std::span<const uint8_t>;
using MutableBytes = std::span<uint8_t>;

class WriteStream {
 public:
  WriteStream() = default;
  WriteStream(const WriteStream&) = delete;
  WriteStream& operator=(const WriteStream&) = delete;
  virtual ~WriteStream() = default;

  // Consumes all of `data` (may buffer).  Throws Error on failure.
  virtual void Write(Bytes data) = 0;
  // Flushes buffered data and writes any trailer.  Does NOT finish the
  // downstream stage: the owner of the chain finishes (or commits) each stage.
  virtual void Finish() = 0;
};

class ReadStream {
 public:
  ReadStream() = default;
  ReadStream(const ReadStream&) = delete;
  ReadStream& operator=(const ReadStream&) = delete;
  virtual ~ReadStream() = default;

  // Reads up to out.size() bytes into out.  Returns 0 only at the end of the
  // stream (never for a short read in the middle).  Throws Error on failure,
  // including a stream that ends before its format says it should.
  virtual size_t Read(MutableBytes out) = 0;
};

// Reads until `out` is full or the stream ends; returns the bytes read.
size_t ReadFully(ReadStream& in, MutableBytes out);

// Copies `in` to `out` with a bounded buffer; returns the bytes copied.
// Does not call out.Finish().
uint64_t Copy(ReadStream& in, WriteStream& out, size_t buffer_size = 1 << 20);

// A WriteStream that appends to a std::string (tests, small objects).
class StringWriteStream : public WriteStream {
 public:
  void Write(Bytes data) override;
  void Finish() override {}
  const std::string& data() const { return data_; }
  std::string& data() { return data_; }

 private:
  std::string data_;
};

// A ReadStream over a caller-owned buffer, which must outlive it.
class MemoryReadStream : public ReadStream {
 public:
  explicit MemoryReadStream(Bytes data) : data_(data) {}
  explicit MemoryReadStream(std::string_view data)
      : data_(reinterpret_cast<const uint8_t*>(data.data()), data.size()) {}
  size_t Read(MutableBytes out) override;

 private:
  Bytes data_;
  size_t pos_ = 0;
};

inline Bytes AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace walstore
