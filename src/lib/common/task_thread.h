// One background thread that runs tasks in the order they were submitted.
// Internal.  Used where a pipeline stage must stay sequential (SHA-256 over
// the chunks in order) but should run beside the caller's work, without the
// cost of starting a thread per chunk.
//
// Thread-safety: Submit/Wait* are called from one owning thread.  Tasks run
// one at a time, in submission order, on the background thread, which is
// started by the first Submit().  A task's exception travels back through
// its std::future and is rethrown by a Wait*() call that covers it.  The
// destructor runs every queued task first (they may point into the owner's
// buffers), then joins.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace walstore {

class TaskThread {
 public:
  TaskThread() = default;
  TaskThread(const TaskThread&) = delete;
  TaskThread& operator=(const TaskThread&) = delete;
  ~TaskThread();

  // Queues `task`; returns its ticket (1 for the first task, then 2, ...).
  uint64_t Submit(std::function<void()> task);
  // Blocks until the task with `ticket` and every earlier one have run, then
  // rethrows the first error among them not reported yet (one per call).
  void WaitFor(uint64_t ticket);
  // Blocks until every submitted task has run.
  void WaitAll() { WaitFor(submitted_); }
  // Blocks until every submitted task has run, reporting nothing: for a
  // caller that is already failing and must not leave a task using its
  // memory.  Errors stay for a later Wait*().
  void Quiesce() noexcept;

 private:
  void Run();

  // Owner thread only.
  std::deque<std::future<void>> pending_;  // tickets waited_ + 1 .. submitted_
  uint64_t submitted_ = 0;
  uint64_t waited_ = 0;
  std::thread thread_;
  // Shared with the background thread.
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::packaged_task<void()>> queue_;
  bool stopping_ = false;
};

}  // namespace walstore
