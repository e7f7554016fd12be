// Fills the avx512 entries of the kernel table; entries left alone keep the lower ISA's kernel.
// Also defines the x86_common.h test hooks for this ISA's vector math.
// GCC 12 warns about the deliberately undefined lanes inside its own AVX-512 intrinsics
// (GCC bug 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/vmath_avx512.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels::x86::avx512 {
namespace {

template <__m512 (*F)(__m512)>
void ApplyRow(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = FirstLanes(n - i);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

void ExpRow(const float* x, int64_t n, float* y) { ApplyRow<Exp>(x, n, y); }
void Exp2NonPositiveRow(const float* x, int64_t n, float* y) { ApplyRow<Exp2NonPositive>(x, n, y); }
void SoftplusRow(const float* x, int64_t n, float* y) { ApplyRow<Softplus>(x, n, y); }
void SiluRow(const float* x, int64_t n, float* y) { ApplyRow<Silu>(x, n, y); }

void FillTable(KernelTable* t) {
  t->matmul_f32 = MatMulF32;
  t->matmul_f16 = MatMulF16;
  t->matmul_bf16 = MatMulBF16;
  t->add_rms_norm = AddRmsNorm;
  t->causal_conv1d_silu = CausalConv1dSilu;
  t->selective_scan = SelectiveScan;
  t->convert_f16 = ConvertF16;
  t->convert_bf16 = ConvertBF16;
  t->sum_u64 = SumU64;
  FillQ8Table(t);  // q8_avx512.cc
}

}  // namespace quamba::kernels::x86::avx512
