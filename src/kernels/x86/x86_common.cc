#include "kernels/x86/x86_common.h"

#include <cstdlib>
#include <new>

#include "core/check.h"

namespace quamba::kernels::x86 {
namespace {

struct ScratchSet {
  float* ptr[kNumScratchSlots] = {};
  int64_t cap[kNumScratchSlots] = {};
  ~ScratchSet() {
    for (float* p : ptr) std::free(p);
  }
};

thread_local ScratchSet scratch;

}  // namespace

float* Scratch(ScratchSlot slot, int64_t n_floats) {
  const int i = static_cast<int>(slot);
  if (n_floats > scratch.cap[i]) {
    std::free(scratch.ptr[i]);
    // Round up to whole cache lines (aligned_alloc wants a multiple of the alignment) and grow
    // by at least 1.5x so alternating shapes do not reallocate every call.
    int64_t cap = n_floats + n_floats / 2;
    cap = (cap + 15) / 16 * 16;
    scratch.ptr[i] = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    QM_CHECK(scratch.ptr[i] != nullptr, "out of memory for %lld scratch floats",
             static_cast<long long>(cap));
    scratch.cap[i] = cap;
  }
  return scratch.ptr[i];
}

}  // namespace quamba::kernels::x86
