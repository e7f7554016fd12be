// Progress with ETA on stderr for long work (calibration, evaluation). On a terminal it redraws
// one line; otherwise (CI logs, pipes) it prints a line at every 10% so logs stay short.
#pragma once

#include <cstdint>
#include <string>

namespace quamba {

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit);
  void Update(int64_t done);  // cheap; redraws at most ~10 times a second
  void Finish();               // final line with the elapsed time
  ~Progress();

 private:
  void Draw(bool final);
  std::string what_, unit_;
  int64_t total_, done_ = 0;
  double start_, last_draw_ = 0;
  int last_decile_ = -1;
  bool tty_, finished_ = false;
};

std::string FormatDuration(double seconds);  // "1m23s", "4.2s"

}  // namespace quamba
