// AVX-512 AddRmsNorm, CausalConv1dSilu and row conversions: 16 lanes, masked tails.
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
namespace {

// One block of <= 16 channels [c0, c0 + lanes(mask)) for all L steps; D = d_conv.
// The window win[0..D-2] (previous inputs, oldest first) stays in registers.
template <int D>
void ConvBlock(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w, const float* b,
               float* state, float* y, int64_t ldy, int64_t c0, __mmask16 mask) {
  constexpr int P = D - 1;
  __m512 wk[D];
  __m512 win[D];  // win[P] is the current input
#pragma GCC unroll 8
  for (int k = 0; k < D; ++k) wk[k] = _mm512_maskz_loadu_ps(mask, w + k * C + c0);
#pragma GCC unroll 8
  for (int j = 0; j < P; ++j) win[j] = _mm512_maskz_loadu_ps(mask, state + j * C + c0);
  const __m512 bias = b != nullptr ? _mm512_maskz_loadu_ps(mask, b + c0) : _mm512_setzero_ps();
  for (int64_t t = 0; t < L; ++t) {
    win[P] = _mm512_maskz_loadu_ps(mask, x + t * ldx + c0);
    __m512 acc = bias;
#pragma GCC unroll 8
    for (int k = 0; k < D; ++k) acc = _mm512_fmadd_ps(wk[k], win[k], acc);
    _mm512_mask_storeu_ps(y + t * ldy + c0, mask, Silu(acc));
#pragma GCC unroll 8
    for (int j = 0; j < P; ++j) win[j] = win[j + 1];
  }
#pragma GCC unroll 8
  for (int j = 0; j < P; ++j) _mm512_mask_storeu_ps(state + j * C + c0, mask, win[j]);
}

template <int D>
void ConvAll(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w, const float* b,
             float* state, float* y, int64_t ldy, int64_t c_begin, int64_t c_end) {
  for (int64_t c0 = c_begin; c0 < c_end; c0 += 16) {
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
