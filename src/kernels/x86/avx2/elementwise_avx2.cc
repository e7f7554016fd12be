// AVX2 AddRmsNorm, CausalConv1dSilu and row conversions: 8 lanes, masked tails.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/check.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vmath_avx2.h"

namespace quamba::kernels::x86::avx2 {
namespace {

// One block of <= 8 channels [c0, c0 + lanes(mask)) for all L steps; D = d_conv. The window
// win[0..D-2] (previous inputs, oldest first) stays in registers.
template <int D>
void ConvBlock(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w, const float* b,
               float* state, float* y, int64_t ldy, int64_t c0, __m256i mask) {
  constexpr int P = D - 1;
  __m256 wk[D];
  __m256 win[D];  // win[P] is the current input
#pragma GCC unroll 8
  for (int k = 0; k < D; ++k) wk[k] = _mm256_maskload_ps(w + k * C + c0, mask);
#pragma GCC unroll 8
  for (int j = 0; j < P; ++j) win[j] = _mm256_maskload_ps(state + j * C + c0, mask);
  const __m256 bias = b != nullptr ? _mm256_maskload_ps(b + c0, mask) : _mm256_setzero_ps();
  for (int64_t t = 0; t < L; ++t) {
    win[P] = _mm256_maskload_ps(x + t * ldx + c0, mask);
    __m256 acc = bias;
#pragma GCC unroll 8
    for (int k = 0; k < D; ++k) acc = _mm256_fmadd_ps(wk[k], win[k], acc);
    _mm256_maskstore_ps(y + t * ldy + c0, mask, Silu(acc));
#pragma GCC unroll 8
    for (int j = 0; j < P; ++j) win[j] = win[j + 1];
  }
#pragma GCC unroll 8
  for (int j = 0; j < P; ++j) _mm256_maskstore_ps(state + j * C + c0, mask, win[j]);
}

template <int D>
void ConvAll(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w, const float* b,
             float* state, float* y, int64_t ldy, int64_t c_begin, int64_t c_end) {
  for (int64_t c0 = c_begin; c0 < c_end; c0 += 8) {
    ConvBlock<D>(x, L, C, ldx, w, b, state, y, ldy, c0, FirstLanes(c_end - c0));
  }
}

}  // namespace

void CausalConv1dSilu(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w,
                      const float* b, int d_conv, float* state, float* y, int64_t ldy,
                      int64_t c_begin, int64_t c_end) {
  QM_DCHECK(d_conv >= 1 && d_conv <= 8, "d_conv %d outside 1..8", d_conv);
  switch (d_conv) {
    case 1:
      return ConvAll<1>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 2:
      return ConvAll<2>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 3:
      return ConvAll<3>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 4:
      return ConvAll<4>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 5:
      return ConvAll<5>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 6:
      return ConvAll<6>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 7:
      return ConvAll<7>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    case 8:
      return ConvAll<8>(x, L, C, ldx, w, b, state, y, ldy, c_begin, c_end);
    default:
      QM_CHECK(false, "d_conv %d outside 1..8", d_conv);
  }
}

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
