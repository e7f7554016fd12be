// Hadamard rotation and weight folding (see hadamard.h); the transform itself is the int8
// kernel table's hadamard_f32, bit-identical on every ISA.
#include "quant/hadamard.h"

#include "kernels/kernels.h"

namespace quamba {

Status CheckHadamardSize(int64_t n) {
  if (kernels::HadamardSizeOk(n)) return Status::Ok();
  return Status::Error(StrFormat(
      "failed to apply the Hadamard transform with n = %lld: n must be 2^k, 12*2^k or 40*2^k",
      static_cast<long long>(n)));
}

Status HadamardTransformRows(const kernels::KernelTable& k, float* x, int64_t rows, int64_t n,
                             int64_t ld) {
  QM_RETURN_IF_ERROR(CheckHadamardSize(n));
  if (ld < n) {
    return Status::Error(StrFormat("failed to apply the Hadamard transform with row stride %lld: "
                                   "must be at least n = %lld",
                                   static_cast<long long>(ld), static_cast<long long>(n)));
  }
  k.hadamard_f32(x, rows, n, ld);
  return Status::Ok();
}

Status FoldHadamardIntoWeight(const kernels::KernelTable& k, float* W, int64_t N, int64_t n) {
  return HadamardTransformRows(k, W, N, n, n);
}

}  // namespace quamba
