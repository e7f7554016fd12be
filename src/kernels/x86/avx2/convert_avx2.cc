// AVX2 row conversions (f16, bf16 -> f32) and the read-bandwidth sum: 8 lanes, tails via a copy.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vmath_avx2.h"

namespace quamba::kernels::x86::avx2 {

void ConvertF16(const void* src, int64_t n, float* dst) {
  const auto* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LoadF16(s + i));
  if (i < n) {
    alignas(16) uint16_t tmp[8] = {};
    for (int64_t j = i; j < n; ++j) tmp[j - i] = s[j];
    _mm256_maskstore_ps(dst + i, FirstLanes(n - i), LoadF16(tmp));
  }
}

void ConvertBF16(const void* src, int64_t n, float* dst) {
  const auto* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LoadBF16(s + i));
  if (i < n) {
    alignas(16) uint16_t tmp[8] = {};
    for (int64_t j = i; j < n; ++j) tmp[j - i] = s[j];
    _mm256_maskstore_ps(dst + i, FirstLanes(n - i), LoadBF16(tmp));
  }
}

uint64_t SumU64(const uint8_t* p, int64_t n) {
  // Four 32-byte loads per step into independent accumulators; the tail (< 128 bytes) goes
  // through a zero-padded copy so that no byte outside [p, p + n) is read.
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint8_t tail[128] = {};
  if (n > i) std::memcpy(tail, p + i, static_cast<size_t>(n - i));
  for (int j = 0; j < 128; j += 32)
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(tail + j)));
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

}  // namespace quamba::kernels::x86::avx2
