// Two-thread stream stages for walctl: overlap network / disk I/O with the
// CPU-heavy object pipeline (compression, encryption, hashing) without
// unbounded buffering.  At most `depth` blocks of `block_size` bytes are in
// flight, so memory stays bounded whatever the stream size.
//
// Errors in the background thread travel back through std::future: they are
// rethrown by the next Write()/Finish() (BackgroundWriter) or Read()
// (PrefetchReader) of the calling thread.  Destroying a stage early stops
// its thread and abandons what was in flight.
#pragma once

#include <walstore/stream.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <vector>

namespace walstore::backup {

// Blocks in flight between the two threads of a stage, besides the one each
// side holds.  Two keep both threads busy (the other side of each stage
// already buffers: the decoder's and encoder's chunk buffers); each block
// more is 1 MiB of RSS and did not make backup or restore faster (8 -> 2:
// -6 MiB, docs/benchmarks.md "Memory").
inline constexpr size_t kPipelineDepth = 2;

// A bounded FIFO of byte blocks between one producer and one consumer.
class BlockQueue {
 public:
  explicit BlockQueue(size_t depth) : depth_(depth) {}
  // Blocks while full; false when the queue was closed.
  bool Push(std::vector<uint8_t> block);
  // Blocks while empty; nullopt once closed and drained, or aborted.
  std::optional<std::vector<uint8_t>> Pop();
  // No more pushes; Pop() drains what is there.
  void Close();
  // Stops both sides at once (drops what is queued).
  void Abort();

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<uint8_t>> blocks_;
  size_t depth_;
  bool closed_ = false;
  bool aborted_ = false;
};

// Writes to `downstream` on a background thread.  Finish() waits until
// everything was written (it does not finish `downstream`).
class BackgroundWriter : public WriteStream {
 public:
  BackgroundWriter(WriteStream& downstream, size_t block_size = 1 << 20,
                   size_t depth = kPipelineDepth);
  ~BackgroundWriter() override;
  void Write(Bytes data) override;
  void Finish() override;

 private:
  void PushCurrent();

  BlockQueue queue_;
  size_t block_size_;
  std::vector<uint8_t> current_;
  std::future<void> worker_;
  bool finished_ = false;
};

// Reads `source` ahead on a background thread.
class PrefetchReader : public ReadStream {
 public:
  PrefetchReader(ReadStream& source, size_t block_size = 1 << 20,
                   size_t depth = kPipelineDepth);
  ~PrefetchReader() override;
  size_t Read(MutableBytes out) override;

 private:
  BlockQueue queue_;
  std::future<void> worker_;
  std::vector<uint8_t> current_;
  size_t pos_ = 0;
  bool ended_ = false;
};

}  // namespace walstore::backup
