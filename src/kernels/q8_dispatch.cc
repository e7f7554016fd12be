// Int8 kernel tables (kernels/q8.h): filled once per ISA, generic entries first, then each ISA
// overrides what it specialises. Also the per-thread scratch of the int8 backends.
#include <cstdlib>
#include <mutex>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/q8.h"
#include "kernels/q8_internal.h"

namespace quamba::kernels {

namespace x86::avx2 {
void FillQ8Table(Q8KernelTable* t);  // src/kernels/x86/avx2/q8_avx2.cc
}
namespace x86::avx512 {
void FillQ8Table(Q8KernelTable* t);  // src/kernels/x86/avx512/q8_avx512.cc
}

namespace {

Q8KernelTable q8_tables[kNumIsas];
std::once_flag q8_once[kNumIsas];

void BuildQ8(Isa isa) {
  Q8KernelTable& t = q8_tables[static_cast<int>(isa)];
  t.isa = isa;
  generic::FillQ8Table(&t);
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) x86::avx2::FillQ8Table(&t);
  if (isa == Isa::kAvx512) x86::avx512::FillQ8Table(&t);
}

constexpr int kNumQ8Slots = 3;

struct Q8ScratchSet {
  void* ptr[kNumQ8Slots] = {};
  int64_t cap[kNumQ8Slots] = {};
  ~Q8ScratchSet() {
    for (void* p : ptr) std::free(p);
  }
};

thread_local Q8ScratchSet q8_scratch;

}  // namespace

const Q8KernelTable& Q8KernelsFor(Isa isa) {
  QM_CHECK(IsaSupported(isa), "ISA %s requested but not supported", IsaName(isa));
  const int i = static_cast<int>(isa);
  std::call_once(q8_once[i], BuildQ8, isa);
  return q8_tables[i];
}

const Q8KernelTable& DefaultQ8Kernels() { return Q8KernelsFor(DefaultKernels().isa); }

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
