// Messages on stderr in a form that reads well inside the PostgreSQL server
// log (archive_command / restore_command stderr lands there):
//   walpush: ERROR:  000000010000000000000003 already archived with different content ...
//   walpush: HINT:  ...
// Thread-safe.  Never pass secrets.
#pragma once

#include <walstore/config.h>

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace walstore {

void SetLogProgram(std::string_view program);   // "walpush", ...
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void LogMessage(LogLevel level, std::string_view message);
void LogHint(std::string_view hint);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level <= GetLogLevel()) LogMessage(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace walstore
