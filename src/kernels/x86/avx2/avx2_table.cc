// Fills the avx2 entries of the kernel table; entries left alone keep the lower ISA's kernel.
// Also defines the x86_common.h test hooks for this ISA's vector math.
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vmath_avx2.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels::x86::avx2 {
namespace {

template <__m256 (*F)(__m256)>
void ApplyRow(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = FirstLanes(n - i);
    _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(x + i, m)));
  }
}

}  // namespace

void ExpRow(const float* x, int64_t n, float* y) { ApplyRow<Exp>(x, n, y); }
void Exp2NonPositiveRow(const float* x, int64_t n, float* y) { ApplyRow<Exp2NonPositive>(x, n, y); }
void SoftplusRow(const float* x, int64_t n, float* y) { ApplyRow<Softplus>(x, n, y); }
void SiluRow(const float* x, int64_t n, float* y) { ApplyRow<Silu>(x, n, y); }

void FillTable(KernelTable* t) {
  t->SetGemm(NumType::kF32, NumType::kF32, NumType::kF32, GemmF32F32ToF32);
  t->SetGemm(NumType::kF32, NumType::kF16, NumType::kF32, GemmF32F16ToF32);
  t->SetGemm(NumType::kF32, NumType::kBF16, NumType::kF32, GemmF32BF16ToF32);
  t->SetGemm(NumType::kS8, NumType::kS8, NumType::kS32, GemmS8S8ToS32);
  t->SetGemm(NumType::kS8, NumType::kS8, NumType::kS8, GemmS8S8ToS8);
  t->SetGemm(NumType::kS8, NumType::kS8, NumType::kF32, GemmS8S8ToF32);
  t->SetGemm(NumType::kS8, NumType::kS4, NumType::kS8, GemmS8S4ToS8);
  t->SetGemm(NumType::kS8, NumType::kS4, NumType::kF32, GemmS8S4ToF32);
  t->SetGemm(NumType::kF32, NumType::kS4, NumType::kF32, GemmF32S4ToF32);
  t->add_rms_norm = AddRmsNorm;
  t->causal_conv1d_silu = CausalConv1dSilu;
  t->selective_scan = SelectiveScan;
  t->convert_f16 = ConvertF16;
  t->convert_bf16 = ConvertBF16;
  t->sum_u64 = SumU64;
  t->quantize_f32_s8 = QuantizeF32ToS8;
  t->add_rms_norm_quant = AddRmsNormQuant;
  t->causal_conv1d_silu_s8 = CausalConv1dSiluS8;
  t->selective_scan_s8 = SelectiveScanS8;
  t->hadamard_f32 = HadamardF32;
  t->hadamard_quant = HadamardF32ToS8;
}

}  // namespace quamba::kernels::x86::avx2
