// AVX-512 row conversions (f16, bf16 -> f32) and the read-bandwidth sum: 16 lanes, masked tails.
// GCC 12 warns about the deliberately undefined lanes inside its own AVX-512 intrinsics
// (GCC bug 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/check.h"
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/vmath_avx512.h"

namespace quamba::kernels::x86::avx512 {

void ConvertF16(const void* src, int64_t n, float* dst) {
  const auto* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, LoadF16(s + i));
  if (i < n) {
    const __mmask16 m = FirstLanes(n - i);
    _mm512_mask_storeu_ps(dst + i, m, LoadF16(s + i, m));
  }
}

void ConvertBF16(const void* src, int64_t n, float* dst) {
  const auto* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, LoadBF16(s + i));
  if (i < n) {
    const __mmask16 m = FirstLanes(n - i);
    _mm512_mask_storeu_ps(dst + i, m, LoadBF16(s + i, m));
  }
}

uint64_t SumU64(const uint8_t* p, int64_t n) {
  // Four 64-byte loads per step into independent accumulators; the masked tail reads only the
  // bytes inside [p, p + n) (zeros elsewhere), so the sum of the final partial word comes out
  // zero-extended as the contract says.
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
  }
  for (; i < n; i += 64) {
    const int64_t r = n - i;
    const __mmask64 m = r >= 64 ? ~__mmask64{0} : (__mmask64{1} << r) - 1;
    a0 = _mm512_add_epi64(a0, _mm512_maskz_loadu_epi8(m, p + i));
  }
  const __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, s);
  uint64_t t = 0;
  for (uint64_t v : lanes) t += v;
  return t;
}

}  // namespace quamba::kernels::x86::avx512
