// Tests for src/walctl/progress_display.cc: what walctl prints for the
// progress the library reports, on a terminal and in a log.
#include "progress_display.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace walstore::walctl {
namespace {

using backup::Progress;

constexpr uint64_t kMiB = 1 << 20;

struct Screen {
  std::vector<std::string> writes;
  double clock = 1000;
  ProgressDisplay Make(bool terminal) {
    ProgressDisplay::Output out;
    out.terminal = terminal;
    out.write = [this](std::string_view text) { writes.emplace_back(text); };
    out.now = [this] { return clock; };
    return ProgressDisplay("restore", std::move(out));
  }
};

Progress At(uint64_t done, uint64_t total, bool finished = false) {
  Progress p;
  p.done_bytes = done;
  p.total_bytes = total;
  p.finished = finished;
  return p;
}

TEST_SUITE("walctl_progress") {
  TEST_CASE("in a log: whole lines every 10 %, never a carriage return, one at 100 %") {
    Screen screen;
    ProgressDisplay display = screen.Make(false);
    for (uint64_t mib = 1; mib <= 100; ++mib) {  // 1 MiB per 0.1 s: 10 MiB/s
      screen.clock += 0.1;
      display.Show(At(mib * kMiB, 100 * kMiB));
    }
    display.Show(At(100 * kMiB, 100 * kMiB, true));
    REQUIRE(screen.writes.size() == 11);  // 10 %, 20 %, ... 100 %, and done
    for (const auto& line : screen.writes) {
      CHECK(line.find('\r') == std::string::npos);
      CHECK(line.find('\n') == std::string::npos);  // the logger ends the line
      CHECK(line.starts_with("restore: "));
    }
    CHECK(screen.writes[0] == "restore: 10.0 MiB of 100.0 MiB (10%), 10.0 MiB/s, ETA 9.0s");
    CHECK(screen.writes.back().starts_with("restore: done, 100.0 MiB of 100.0 MiB (100%)"));
  }

  TEST_CASE("in a log: a line every 10 s when the percentage moves slowly or is unknown") {
    Screen screen;
    ProgressDisplay display = screen.Make(false);
    for (int i = 1; i <= 25; ++i) {
      screen.clock += 1;
      display.Show(At(i * kMiB, 0));
    }
    REQUIRE(screen.writes.size() == 2);  // at 10 s and 20 s
    CHECK(screen.writes[0] == "restore: 10.0 MiB, 1.0 MiB/s");
  }

  TEST_CASE("on a terminal: one redrawn line with bar, rate and ETA, a newline at the end") {
    Screen screen;
    ProgressDisplay display = screen.Make(true);
    screen.clock += 1;
    display.Show(At(25 * kMiB, 100 * kMiB));
    display.Show(At(26 * kMiB, 100 * kMiB));  // too soon: not drawn
    screen.clock += 3;
    display.Show(At(100 * kMiB, 100 * kMiB, true));
    REQUIRE(screen.writes.size() == 2);
    CHECK(screen.writes[0] ==
          "\rwalctl: restore [#####...............] 25.0 MiB of 100.0 MiB (25%), 25.0 MiB/s, "
          "ETA 3.0s");
    CHECK(screen.writes[1].starts_with("\rwalctl: restore [####################] 100.0 MiB"));
    CHECK(screen.writes[1].ends_with("\n"));
    CHECK(screen.writes[0].find('\n') == std::string::npos);
  }
}

}  // namespace
}  // namespace walstore::walctl
