// WorkerThreads, UsableCpus, CpuMaxLimit (include/walstore/config.h).
#include <walstore/config.h>
#include <walstore/number.h>

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <iterator>

namespace walstore {

std::optional<int> CpuMaxLimit(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' ')) {
    cpu_max.remove_suffix(1);
  }
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto quota = TryParseNumber<uint64_t>(cpu_max.substr(0, space));
  const auto period = TryParseNumber<uint64_t>(cpu_max.substr(space + 1));
  if (!quota || !period || *period == 0) return std::nullopt;  // "max": no limit
  const uint64_t cpus = *quota / *period + (*quota % *period != 0);
  return static_cast<int>(std::clamp<uint64_t>(cpus, 1, kMaxParallel));
}

int UsableCpus() {
  int cpus = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  std::ifstream file("/sys/fs/cgroup/cpu.max");
  const std::string text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  if (const auto limit = CpuMaxLimit(text)) cpus = std::min(cpus, *limit);
  return cpus;
}

int WorkerThreads(int parallel, int default_cap) {
  if (parallel > 0) return std::min(parallel, kMaxParallel);
  return std::clamp(UsableCpus(), 1, default_cap);
}

}  // namespace walstore
