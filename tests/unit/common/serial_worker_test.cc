// Tests for src/lib/common/serial_worker.cc.
#include <doctest/doctest.h>

#include <walstore/error.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/serial_worker.h"
#include "test_util.h"

using namespace walstore;
using walstore::test::ThrownCode;

TEST_SUITE("serial_worker") {
  TEST_CASE("tasks run one after another, in submission order, off the caller's thread") {
    SerialWorker worker;
    std::vector<int> order;  // only the worker touches it until WaitAll
    std::thread::id ran_on;
    for (int i = 0; i < 100; ++i) {
      worker.Submit([&order, &ran_on, i] {
        order.push_back(i);
        ran_on = std::this_thread::get_id();
      });
    }
    worker.WaitAll();
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(order[i] == i);
    CHECK(ran_on != std::this_thread::get_id());
  }

  TEST_CASE("tickets count up; WaitFor returns once that task and those before it ran") {
    SerialWorker worker;
    std::atomic<int> done{0};
    const uint64_t first = worker.Submit([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++done;
    });
    const uint64_t second = worker.Submit([&] { ++done; });
    CHECK(second == first + 1);
    worker.WaitFor(first);
    CHECK(done.load() >= 1);
    worker.WaitFor(second);
    CHECK(done.load() == 2);
    worker.WaitFor(0);  // nothing to wait for
  }

  TEST_CASE("a task's exception is rethrown by the waits; later tasks still run") {
    SerialWorker worker;
    std::atomic<bool> later{false};
    worker.Submit([] { Fail(ErrorCode::kLocalIo, "task failed"); });
    const uint64_t next = worker.Submit([&] { later = true; });
    CHECK(ThrownCode([&] { worker.WaitFor(next); }) == "kLocalIo");
    CHECK(later.load());
    CHECK(ThrownCode([&] { worker.WaitAll(); }) == "kLocalIo");
  }

  TEST_CASE("destruction drops tasks not started and waits for the running one") {
    std::atomic<int> ran{0};
    {
      SerialWorker worker;
      worker.Submit([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ++ran;
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let it start
      for (int i = 0; i < 10; ++i) worker.Submit([&] { ran += 100; });
    }
    CHECK(ran.load() == 1);
  }
}
