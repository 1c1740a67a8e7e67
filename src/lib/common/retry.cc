#include <walstore/log.h>
#include <walstore/retry.h>

#include <algorithm>
#include <random>
#include <thread>

namespace walstore {

void WithRetry(const RetryPolicy& policy, const std::string& what,
               const std::function<void()>& attempt) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + policy.total_budget;
  std::minstd_rand random(std::random_device{}());
  auto ceiling = policy.first_delay;
  for (int number = 1;; ++number) {
    try {
      attempt();
      return;
    } catch (const Error& error) {
      if (!error.retryable() || number >= policy.max_attempts) throw;
      // Full jitter: sleep a random time in [0, ceiling].
      std::uniform_int_distribution<long> pick(0, ceiling.count());
      std::chrono::milliseconds delay(pick(random));
      if (Clock::now() + delay >= deadline) throw;
      Log(LogLevel::kWarning, "{} failed (attempt {} of {}): {}; retrying in {} ms", what, number,
          policy.max_attempts, error.what(), delay.count());
      std::this_thread::sleep_for(delay);
      ceiling = std::min(ceiling * 2, policy.max_delay);
    }
  }
}

}  // namespace walstore
