// The retry helper: the one place besides main() that catches walstore::Error.
#pragma once

#include <walstore/error.h>

#include <chrono>
#include <functional>
#include <string>

namespace walstore {

struct RetryPolicy {
  int max_attempts = 8;
  std::chrono::milliseconds first_delay{100};
  std::chrono::milliseconds max_delay{5000};
  std::chrono::milliseconds total_budget{120000};  // stop retrying after this
};

// Runs `attempt` until it returns without throwing, an Error that is not
// retryable is thrown, or the policy is exhausted (then the last Error is
// rethrown).  Waits with exponential backoff and full jitter between
// attempts, logging each retry at LogLevel::kWarning with `what`.
void WithRetry(const RetryPolicy& policy, const std::string& what,
               const std::function<void()>& attempt);

}  // namespace walstore
