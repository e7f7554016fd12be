// AVX-512 VNNI S8 x S4 GEMM (int8 activations, 4-bit group-scaled weights); contract in
// kernels.h, bit-identical to generic::GemmS8S4To*. Built with -ffp-contract=off
// (CMakeLists.txt): the contract rounds each group product and each sum separately.
//
// One 64-byte load holds 128 codes of a W row: low nibbles are the even k, high nibbles the odd
// k. x is split once per call into the same order (per 128 k: 64 even bytes, then 64 odd), so
//   vpdpbusd(code_lo, x_even) + vpdpbusd(code_hi, x_odd) = sum_k code[n, k] x[m, k]
// with the codes (0..15) as vpdpbusd's unsigned operand directly; the offset term
// kS4Zero * sum_{k in g} x[m, k] is computed once per call and group. Per group the 16 lanes are
// reduced to the exact int32 acc_g, and t = fl(t + fl(scale * acc_g)) runs in ascending g as in
// the contract. W rows are streamed one after another (one forward stream per thread); the
// rest (x split, row loop, epilogues, the generic fallback) is kernels/q4_impl.inc.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx512/avx512_kernels.h"

namespace quamba::kernels::x86::avx512 {
namespace {

using q8::Q8Slot;

constexpr int64_t kS4Block = 128;              // k per 64-byte load of codes
constexpr int64_t kS4PrefetchBytes = 2048;     // ahead on the W stream

// Sum of the 16 lanes (no wrap-around possible: |lane| <= 15 * 128 * 8 per block).
inline int32_t HSum(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// t[m] for x rows m0 .. m0 + M - 1 against W row n.
template <int M>
inline void RowGroupSums(const uint8_t* row, const float* scales, const int8_t* xs,
                         const int32_t* zx, int64_t K, int64_t group, float* t) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const int64_t ng = K / group;
  float sum[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) sum[m] = 0.0f;
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[M];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
    for (int64_t k = gi * group; k < (gi + 1) * group; k += kS4Block) {
      _mm_prefetch(reinterpret_cast<const char*>(row + k / 2 + kS4PrefetchBytes), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(row + k / 2);
      const __m512i lo = _mm512_and_si512(v, nib);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const int8_t* xm = xs + m * K + k;
        acc[m] = _mm512_dpbusd_epi32(acc[m], lo, _mm512_loadu_si512(xm));
        acc[m] = _mm512_dpbusd_epi32(acc[m], hi, _mm512_loadu_si512(xm + kS4Block / 2));
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const int32_t a = HSum(acc[m]) - zx[m * ng + gi];
      const float term = scales[gi] * static_cast<float>(a);
      sum[m] = sum[m] + term;
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) t[m] = sum[m];
}

}  // namespace

#include "kernels/q4_impl.inc"

}  // namespace quamba::kernels::x86::avx512
