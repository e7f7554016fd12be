#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/clock.h"
#include "core/status.h"

namespace quamba {
std::string FormatDuration(double s) {
  if (s < 60) return StrFormat("%.1fs", s);
  if (s < 3600) return StrFormat("%dm%02ds", (int)(s / 60), (int)s % 60);
  return StrFormat("%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

Progress::Progress(std::string what, int64_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), start_(NowSeconds()),
      tty_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (!finished_ && tty_) std::fprintf(stderr, "\n");
}

void Progress::Update(int64_t done) {
  done_ = done;
  const double now = NowSeconds();
  if (tty_) {
    if (now - last_draw_ < 0.1 && done < total_) return;
    last_draw_ = now;
    Draw(false);
  } else {
    const int decile = total_ > 0 ? (int)(10 * done / total_) : 10;
    if (decile != last_decile_) {
      last_decile_ = decile;
      Draw(false);
    }
  }
}

void Progress::Draw(bool final) {
  const double el = NowSeconds() - start_;
  const double frac = total_ > 0 ? std::min(1.0, (double)done_ / total_) : 1.0;
  std::string eta = final ? "done in " + FormatDuration(el)
                          : (done_ > 0 ? "ETA " + FormatDuration(el / frac - el) : "ETA ?");
  const int width = 30, fill = (int)(frac * width);
  std::string bar(fill, '=');
  if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
  std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld %s, %s%s", tty_ ? "\r" : "", what_.c_str(),
               bar.c_str(), (int)(100 * frac), (long long)done_, (long long)total_,
               unit_.c_str(), eta.c_str(), tty_ && !final ? "   " : "\n");
  std::fflush(stderr);
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  done_ = total_;
  Draw(true);
}

}  // namespace quamba
