// A thread that runs tasks one after another, in the order they were
// submitted.  Internal.
//
// For pipelines that hand work to a helper many times per second (the
// encoder hashes and seals every chunk of a segment): one thread for the
// whole job instead of a new one per task, and a caller that can let the
// helper run behind and wait only when it needs a result.
//
// Submit() returns a ticket; WaitFor(ticket) returns once that task and all
// submitted before it ran, and rethrows the first exception any of them
// threw.  The destructor drops tasks that have not started, waits for the
// one running and joins the thread, so whatever the tasks use must outlive
// the worker (declare it after what it uses).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace walstore {

class SerialWorker {
 public:
  SerialWorker();
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Queues `task`; returns its ticket (1, 2, ...).
  uint64_t Submit(std::function<void()> task);
  // Waits until task `ticket` and those before it ran; rethrows the first
  // exception a task threw.
  void WaitFor(uint64_t ticket);
  // Waits for every task submitted so far.
  void WaitAll();

 private:
  void Run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;
  uint64_t submitted_ = 0;
  uint64_t done_ = 0;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace walstore
