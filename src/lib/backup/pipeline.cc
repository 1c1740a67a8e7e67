#include "backup/pipeline.h"

#include <walstore/error.h>

#include <algorithm>
#include <cstring>

namespace walstore::backup {

bool BlockQueue::Push(std::vector<uint8_t> block) {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return blocks_.size() < depth_ || closed_ || aborted_; });
  if (closed_ || aborted_) return false;
  blocks_.push_back(std::move(block));
  changed_.notify_all();
  return true;
}

std::optional<std::vector<uint8_t>> BlockQueue::Pop() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return !blocks_.empty() || closed_ || aborted_; });
  if (aborted_ || blocks_.empty()) return std::nullopt;
  std::vector<uint8_t> block = std::move(blocks_.front());
  blocks_.pop_front();
  changed_.notify_all();
  return block;
}

void BlockQueue::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  changed_.notify_all();
}

void BlockQueue::Abort() {
  std::lock_guard lock(mu_);
  aborted_ = true;
  blocks_.clear();
  changed_.notify_all();
}

namespace {

// Ends the queue when a worker leaves, normally or by an exception, so the
// other side never waits for a thread that is gone.
struct AbortOnExit {
  BlockQueue& queue;
  ~AbortOnExit() { queue.Abort(); }
};
struct CloseOnExit {  // the consumer still drains what was queued
  BlockQueue& queue;
  ~CloseOnExit() { queue.Close(); }
};

}  // namespace

BackgroundWriter::BackgroundWriter(WriteStream& downstream, size_t block_size, size_t depth)
    : queue_(depth), block_size_(block_size) {
  current_.reserve(block_size_);
  worker_ = std::async(std::launch::async, [this, &downstream] {
    AbortOnExit guard{queue_};
    while (auto block = queue_.Pop()) downstream.Write(Bytes(block->data(), block->size()));
  });
}

BackgroundWriter::~BackgroundWriter() {
  queue_.Abort();
  if (worker_.valid()) worker_.wait();
}

void BackgroundWriter::PushCurrent() {
  if (current_.empty()) return;
  if (!queue_.Push(std::move(current_))) {
    worker_.get();  // rethrows the worker's error
    Fail(ErrorCode::kInternal, "background writer stopped");
  }
  current_ = {};
  current_.reserve(block_size_);
}

void BackgroundWriter::Write(Bytes data) {
  while (!data.empty()) {
    size_t n = std::min(data.size(), block_size_ - current_.size());
    current_.insert(current_.end(), data.begin(), data.begin() + static_cast<long>(n));
    data = data.subspan(n);
    if (current_.size() == block_size_) PushCurrent();
  }
}

void BackgroundWriter::Finish() {
  if (finished_) return;
  PushCurrent();
  queue_.Close();
  finished_ = true;
  worker_.get();
}

PrefetchReader::PrefetchReader(ReadStream& source, size_t block_size, size_t depth)
    : queue_(depth) {
  worker_ = std::async(std::launch::async, [this, &source, block_size] {
    CloseOnExit guard{queue_};
    for (;;) {
      std::vector<uint8_t> block(block_size);
      size_t n = ReadFully(source, MutableBytes(block.data(), block.size()));
      if (n == 0) break;
      block.resize(n);
      if (!queue_.Push(std::move(block))) return;
    }
  });
}

PrefetchReader::~PrefetchReader() {
  queue_.Abort();
  if (worker_.valid()) worker_.wait();
}

size_t PrefetchReader::Read(MutableBytes out) {
  if (out.empty() || ended_) return 0;
  while (pos_ == current_.size()) {
    auto block = queue_.Pop();
    if (!block) {
      ended_ = true;
      worker_.get();  // rethrows the reader's error, if that is why it ended
      return 0;
    }
    current_ = std::move(*block);
    pos_ = 0;
  }
  size_t n = std::min(out.size(), current_.size() - pos_);
  std::memcpy(out.data(), current_.data() + pos_, n);
  pos_ += n;
  return n;
}

}  // namespace walstore::backup
