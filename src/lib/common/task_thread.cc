#include "common/task_thread.h"

#include <algorithm>

namespace walstore {

TaskThread::~TaskThread() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

uint64_t TaskThread::Submit(std::function<void()> task) {
  std::packaged_task<void()> packaged(std::move(task));
  pending_.push_back(packaged.get_future());
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(packaged));
  }
  if (thread_.joinable()) {
    changed_.notify_one();
  } else {
    thread_ = std::thread([this] { Run(); });
  }
  return ++submitted_;
}

void TaskThread::WaitFor(uint64_t ticket) {
  const size_t count = static_cast<size_t>(
      std::min<uint64_t>(pending_.size(), ticket > waited_ ? ticket - waited_ : 0));
  // Every covered task runs before anything is reported.
  for (size_t i = 0; i < count; ++i) pending_[i].wait();
  for (size_t i = 0; i < count; ++i) {
    std::future<void> done = std::move(pending_.front());
    pending_.pop_front();
    ++waited_;
    done.get();  // rethrows what the task threw; later tickets stay for the next wait
  }
}

void TaskThread::Quiesce() noexcept {
  for (const auto& pending : pending_) pending.wait();
}

void TaskThread::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    // Drains the queue before stopping: queued tasks may use buffers the
    // owner frees right after the destructor returns.
    changed_.wait(lock, [&] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;
    std::packaged_task<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();  // stores the result or the exception in the task's future
    lock.lock();
  }
}

}  // namespace walstore
