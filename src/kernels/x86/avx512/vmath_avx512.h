// AVX-512 elementwise math shared by the avx512 kernels: exp, softplus, SiLU, a 16x16 transpose,
// widening loads. Include only from src/kernels/x86/avx512/*.cc (built
// with AVX-512 flags); the functions live in the avx512 namespace so no other ISA's copy can be
// merged with them.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace quamba::kernels::x86::avx512 {

// Minimax-style (Chebyshev-node) degree-6 fit of exp(r) on |r| <= ln2/2 * 1.0001; the fit's
// relative error is 2.5e-9 (0.04 ulp), so the result is dominated by float rounding in Horner.
// Measured: |error| <= 1.08 ulp of the exact exp over x in [-87.3, 88.7] (scalar emulation of
// this exact sequence, 6e7 points); tests/kernels/vmath_test.cc asserts <= 2 ulp.
inline constexpr float kExpC6 = 1.394111896e-03f;
inline constexpr float kExpC5 = 8.375134319e-03f;
inline constexpr float kExpC4 = 4.166635126e-02f;
inline constexpr float kExpC3 = 1.666641533e-01f;
inline constexpr float kLog2e = 1.44269504088896341f;
// Cody-Waite split of ln 2: kLn2Hi has 16 significant bits, so k * kLn2Hi is exact for
// |k| < 2^8 and x - k*kLn2Hi (one fma) is exact near the reduced range.
inline constexpr float kLn2Hi = 0.693145751953125f;
inline constexpr float kLn2Lo = 1.428606820309417232e-06f;

// exp(x) for 16 lanes. Range reduction x = k ln2 + r, |r| <= ln2/2; exp(x) = 2^k p(r) with the
// scaling done by vscalefps, which rounds subnormal results correctly and gives 0 below
// x ~ -103.9 and +inf above ~88.72. NaN propagates (the clamps return their x operand on NaN).
inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kExpC6), r, _mm512_set1_ps(kExpC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

// Degree-6 Chebyshev-node fit of 2^f on |f| <= 1/2 (relative fit error ~2.5e-9).
inline constexpr float kExp2C1 = 6.931471825e-01f;
inline constexpr float kExp2C2 = 2.402265072e-01f;
inline constexpr float kExp2C3 = 5.550327152e-02f;
inline constexpr float kExp2C4 = 9.618056938e-03f;
inline constexpr float kExp2C5 = 1.340044197e-03f;
inline constexpr float kExp2C6 = 1.546145650e-04f;
inline constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: t + it rounds t to an integer

// 2^t for t <= 0 (any t below 128 works), the scan's exp(dt * A) with log2(e) folded into A:
// k = round(t) by the magic-number add (two adds, off the FMA pipes), f = t - k exactly,
// 2^t = 2^k p(f) via vscalefps. Measured |error| <= 0.97 ulp (scalar emulation, 4e7 points on
// [-125, 1]); t < -151 gives 0. Folding log2(e) into A costs the caller one rounding of the
// argument (relative |t| u), the same order as the rounding of dt * A itself.
inline __m512 Exp2NonPositive(__m512 t) {
  t = _mm512_max_ps(_mm512_set1_ps(-151.0f), t);  // returns t if t is NaN
  const __m512 magic = _mm512_set1_ps(kRoundMagic);
  const __m512 k = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
  const __m512 f = _mm512_sub_ps(t, k);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kExp2C6), f, _mm512_set1_ps(kExp2C5));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

// log1p(e) for e in [0, 1]: with s = e / (2 + e) in [0, 1/3], log1p(e) = 2 atanh(s) =
// 2 (s + s^3/3 + s^5/5 + ...). Truncating after s^13/13 leaves a relative error below
// (1/9)^7 / 15 = 1.4e-8 (0.25 ulp); the division adds ~1 ulp.
inline __m512 Log1pUnit(__m512 e) {
  const __m512 s = _mm512_div_ps(e, _mm512_add_ps(_mm512_set1_ps(2.0f), e));
  const __m512 s2 = _mm512_mul_ps(s, s);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(2.0f / 13), s2, _mm512_set1_ps(2.0f / 11));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 9));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 7));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 5));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f / 3));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(2.0f));
  return _mm512_mul_ps(s, q);
}

// softplus(v) = v > 20 ? v : log1p(exp(v)) (the upstream threshold), evaluated for v <= 20 as
// max(v, 0) + log1p(exp(-|v|)), which is the same function without overflow or cancellation.
inline __m512 Softplus(__m512 v) {
  const __m512 abs_v = _mm512_abs_ps(v);
  const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), abs_v));
  const __m512 sp = _mm512_add_ps(_mm512_max_ps(v, _mm512_setzero_ps()), Log1pUnit(e));
  const __mmask16 big = _mm512_cmp_ps_mask(v, _mm512_set1_ps(20.0f), _CMP_GT_OQ);
  return _mm512_mask_blend_ps(big, sp, v);
}

// SiLU(v) = v / (1 + exp(-v)); exp(-v) = +inf for v < -88.7 gives -0 like the scalar form.
inline __m512 Silu(__m512 v) {
  const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), v));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// Transposes the 16x16 matrix whose rows are r[0..15] in place (r[j] becomes column j).
// Three shuffle stages: 32-bit pairs, 64-bit pairs, then a 4x4 transpose of 128-bit lanes.
inline void Transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[g][j]: in 128-bit lane L, column 4L+j of rows 4g..4g+3.
  __m512 u[4][4];
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[g][0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[g][1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[g][2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[g][3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[0][j], u[1][j], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(u[0][j], u[1][j], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[2][j], u[3][j], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[2][j], u[3][j], 0xEE);
    r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);       // column j      (lane 0)
    r[4 + j] = _mm512_shuffle_f32x4(v0, v2, 0xDD);   // column 4 + j  (lane 1)
    r[8 + j] = _mm512_shuffle_f32x4(v1, v3, 0x88);   // column 8 + j  (lane 2)
    r[12 + j] = _mm512_shuffle_f32x4(v1, v3, 0xDD);  // column 12 + j (lane 3)
  }
}

// Mask of the first n (0..16) lanes.
inline __mmask16 FirstLanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// Widening loads of 16 weights (lanes outside `m` read nothing and are 0).
inline __m512 LoadF32(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 LoadF16(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
inline __m512 LoadBF16(const uint16_t* p, __mmask16 m) {
  const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
inline __m512 LoadF32(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 LoadF16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 LoadBF16(const uint16_t* p) {
  const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

}  // namespace quamba::kernels::x86::avx512
