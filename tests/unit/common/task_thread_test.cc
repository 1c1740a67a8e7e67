// Tests for src/lib/common/task_thread.cc.
#include <doctest/doctest.h>

#include <walstore/error.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/task_thread.h"
#include "test_util.h"

using namespace walstore;

TEST_SUITE("task_thread") {
  TEST_CASE("runs tasks in submission order, off the calling thread") {
    TaskThread worker;
    std::vector<int> order;  // only the worker appends
    std::atomic<int> off_thread{0};
    const auto caller = std::this_thread::get_id();
    for (int i = 0; i < 200; ++i) {
      const uint64_t ticket = worker.Submit([&, i] {
        if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        order.push_back(i);
        if (std::this_thread::get_id() != caller) ++off_thread;
      });
      CHECK(ticket == static_cast<uint64_t>(i + 1));
    }
    worker.WaitAll();
    REQUIRE(order.size() == 200);
    for (int i = 0; i < 200; ++i) CHECK(order[static_cast<size_t>(i)] == i);
    CHECK(off_thread.load() == 200);
  }

  TEST_CASE("WaitFor returns once that task and every earlier one ran") {
    TaskThread worker;
    std::atomic<int> done{0};
    for (int i = 0; i < 10; ++i) {
      worker.Submit([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ++done;
      });
    }
    worker.WaitFor(4);
    CHECK(done.load() >= 4);
    worker.WaitFor(4);  // waiting again for a finished ticket returns at once
    worker.WaitAll();
    CHECK(done.load() == 10);
  }

  TEST_CASE("a task's error reaches the waiter; later tasks still run") {
    TaskThread worker;
    std::atomic<int> ran{0};
    worker.Submit([&] { ++ran; });
    worker.Submit([] { Fail(ErrorCode::kInternal, "task failed on purpose"); });
    worker.Submit([&] { ++ran; });
    CHECK_CODE(worker.WaitAll(), ErrorCode::kInternal);
    CHECK(ran.load() == 2);
    worker.WaitAll();  // the error was reported once
  }

  TEST_CASE("Quiesce waits for every task and keeps errors for the next wait") {
    TaskThread worker;
    std::atomic<int> ran{0};
    worker.Submit([] { Fail(ErrorCode::kInternal, "task failed on purpose"); });
    for (int i = 0; i < 5; ++i) {
      worker.Submit([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ++ran;
      });
    }
    worker.Quiesce();
    CHECK(ran.load() == 5);
    CHECK_CODE(worker.WaitAll(), ErrorCode::kInternal);
  }

  TEST_CASE("the destructor runs what is still queued before it returns") {
    std::vector<int> results(50, 0);
    {
      TaskThread worker;
      for (size_t i = 0; i < results.size(); ++i) {
        worker.Submit([&results, i] {
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          results[i] = 1;
        });
      }
    }
    for (int r : results) CHECK(r == 1);
  }

  TEST_CASE("an unused worker starts no thread and destroys cleanly") {
    TaskThread worker;
    worker.WaitAll();
  }
}
