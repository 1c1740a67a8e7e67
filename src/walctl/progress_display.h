// How walctl shows the progress the library reports (walstore/backup/progress.h)
// on stderr:
//   on a terminal   one line redrawn in place (\r) at most 5 times a second:
//                   a bar, bytes done of the total, rate and ETA, ended by a
//                   newline when the transfer finishes;
//   otherwise       (a log file, PostgreSQL's log, a pipe) ordinary log lines
//                   "walctl: NOTICE:  restore: 1.2 GiB of 4.0 GiB (30%), ..."
//                   every 10 % and at least every 10 s, and one at 100 %;
//                   never a \r.
#pragma once

#include <walstore/backup/progress.h>
#include <walstore/config.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace walstore::walctl {

class ProgressDisplay {
 public:
  struct Output {
    bool terminal = false;
    // Terminal: raw text (with \r); otherwise: one log message per call.
    std::function<void(std::string_view)> write;
    std::function<double()> now;  // seconds, monotonic
  };
  ProgressDisplay(std::string operation, Output output);

  void Show(const backup::Progress& progress);

  static constexpr double kTerminalInterval = 0.2;  // seconds between redraws
  static constexpr double kLogInterval = 10;        // seconds between log lines at most
  static constexpr int kLogPercentStep = 10;        // and a line every this many percent

 private:
  std::string Describe(const backup::Progress& progress, double now) const;

  std::string operation_;
  Output output_;
  double start_;
  double last_shown_;
  int last_percent_step_ = 0;
  size_t last_width_ = 0;
};

// --progress / --no-progress of a command.
struct ProgressChoice {
  bool on = false;
  bool off = false;
};
void AddProgressOptions(CLI::App& cmd, ProgressChoice& choice);

// The callback for `operation` ("backup", "restore") on stderr: empty (no
// progress) with --no-progress, or without --progress when stderr is not a
// terminal or the log level is below notice (-q).
backup::ProgressCallback MakeProgressDisplay(const std::string& operation,
                                             const ProgressChoice& choice, const Config& config);

}  // namespace walstore::walctl
