#include "progress_display.h"

#include <unistd.h>
#include <walstore/backup/util.h>
#include <walstore/log.h>

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

namespace walstore::walctl {

using backup::FormatBytes;
using backup::FormatDuration;

ProgressDisplay::ProgressDisplay(std::string operation, Output output)
    : operation_(std::move(operation)), output_(std::move(output)) {
  start_ = output_.now();
  last_shown_ = start_;
}

std::string ProgressDisplay::Describe(const backup::Progress& p, double now) const {
  const double elapsed = now - start_;
  const double rate = elapsed > 0 ? static_cast<double>(p.done_bytes) / elapsed : 0;
  std::string text = FormatBytes(p.done_bytes);
  if (p.total_bytes > 0) {
    const uint64_t percent = std::min<uint64_t>(100, p.done_bytes * 100 / p.total_bytes);
    text += fmt::format(" of {} ({}%)", FormatBytes(p.total_bytes), percent);
  }
  if (p.finished) return text + fmt::format(" in {}, {}/s", FormatDuration(elapsed),
                                            FormatBytes(static_cast<uint64_t>(rate)));
  text += fmt::format(", {}/s", FormatBytes(static_cast<uint64_t>(rate)));
  if (p.total_bytes > p.done_bytes && rate > 0) {
    text += ", ETA " + FormatDuration(static_cast<double>(p.total_bytes - p.done_bytes) / rate);
  }
  return text;
}

void ProgressDisplay::Show(const backup::Progress& p) {
  const double now = output_.now();
  if (output_.terminal) {
    if (!p.finished && now - last_shown_ < kTerminalInterval) return;
    last_shown_ = now;
    std::string bar;
    if (p.total_bytes > 0) {
      constexpr int kWidth = 20;
      const int filled =
          static_cast<int>(std::min<uint64_t>(kWidth, p.done_bytes * kWidth / p.total_bytes));
      bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
    }
    std::string line = fmt::format("walctl: {} {}{}", operation_, bar, Describe(p, now));
    const size_t width = line.size();
    if (width < last_width_) line.append(last_width_ - width, ' ');  // erase the longer last line
    last_width_ = width;
    output_.write("\r" + line + (p.finished ? "\n" : ""));
    return;
  }
  int step = last_percent_step_;
  if (p.total_bytes > 0) {
    step = static_cast<int>(std::min<uint64_t>(100, p.done_bytes * 100 / p.total_bytes)) /
           kLogPercentStep;
  }
  if (!p.finished && step <= last_percent_step_ && now - last_shown_ < kLogInterval) return;
  last_shown_ = now;
  last_percent_step_ = step;
  output_.write(fmt::format("{}: {}{}", operation_, p.finished ? "done, " : "", Describe(p, now)));
}

void AddProgressOptions(CLI::App& cmd, ProgressChoice& choice) {
  auto* on = cmd.add_flag("--progress", choice.on,
                          "show progress (default: when stderr is a terminal): a bar on a "
                          "terminal, else a log line every 10 % or 10 s");
  cmd.add_flag("--no-progress", choice.off, "never show progress")->excludes(on);
}

backup::ProgressCallback MakeProgressDisplay(const std::string& operation,
                                             const ProgressChoice& choice, const Config& config) {
  const bool terminal = isatty(STDERR_FILENO) != 0;
  const bool show =
      !choice.off && (choice.on || (terminal && config.log_level >= LogLevel::kNotice));
  if (!show) return {};
  ProgressDisplay::Output output;
  output.terminal = terminal;
  if (terminal) {
    output.write = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stderr);
      std::fflush(stderr);
    };
  } else {
    output.write = [](std::string_view text) { LogMessage(LogLevel::kNotice, text); };
  }
  output.now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  auto display = std::make_shared<ProgressDisplay>(operation, std::move(output));
  return [display](const backup::Progress& p) { display->Show(p); };
}

}  // namespace walstore::walctl
