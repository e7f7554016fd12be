// The per-thread scratch of the int8 backends (kernels/q8_internal.h).
#include <cstdlib>

#include "core/check.h"
#include "kernels/q8_internal.h"

namespace quamba::kernels {

namespace {

constexpr int kNumQ8Slots = 5;

struct Q8ScratchSet {
  void* ptr[kNumQ8Slots] = {};
  int64_t cap[kNumQ8Slots] = {};
  ~Q8ScratchSet() {
    for (void* p : ptr) std::free(p);
  }
};

thread_local Q8ScratchSet q8_scratch;

}  // namespace

namespace q8 {

void* Scratch(Q8Slot slot, int64_t bytes) {
  const int i = static_cast<int>(slot);
  if (bytes > q8_scratch.cap[i]) {
    std::free(q8_scratch.ptr[i]);
    // Whole cache lines plus one spare line (kernels may read a vector past a row's end), and
    // 1.5x growth so alternating shapes do not reallocate every call.
    int64_t cap = bytes + bytes / 2 + 64;
    cap = (cap + 63) / 64 * 64;
    q8_scratch.ptr[i] = std::aligned_alloc(64, static_cast<size_t>(cap));
    QM_CHECK(q8_scratch.ptr[i] != nullptr, "out of memory for %lld scratch bytes",
             static_cast<long long>(cap));
    q8_scratch.cap[i] = cap - 64;
  }
  return q8_scratch.ptr[i];
}

}  // namespace q8
}  // namespace quamba::kernels
