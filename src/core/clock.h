// Wall-clock seconds for timing (steady: never goes backwards).
#pragma once

#include <chrono>

namespace quamba {

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace quamba
