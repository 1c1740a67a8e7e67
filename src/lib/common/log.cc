#include <walstore/log.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace walstore {
namespace {

std::mutex g_mutex;
std::string g_program = "walstore";
std::atomic<LogLevel> g_level{LogLevel::kNotice};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "ERROR";
    case LogLevel::kWarning: return "WARNING";
    case LogLevel::kNotice: return "NOTICE";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kDebug: return "DEBUG";
  }
  return "LOG";
}

void WriteLine(const char* label, std::string_view message) {
  std::lock_guard lock(g_mutex);
  // One fwrite per line so concurrent processes' lines do not interleave.
  std::string line = fmt::format("{}: {}:  {}\n", g_program, label, message);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetLogProgram(std::string_view program) {
  std::lock_guard lock(g_mutex);
  g_program = program;
}
void SetLogLevel(LogLevel level) { g_level = level; }
LogLevel GetLogLevel() { return g_level; }

void LogMessage(LogLevel level, std::string_view message) {
  if (level <= g_level) WriteLine(LevelName(level), message);
}

void LogHint(std::string_view hint) {
  if (!hint.empty()) WriteLine("HINT", hint);
}

}  // namespace walstore
