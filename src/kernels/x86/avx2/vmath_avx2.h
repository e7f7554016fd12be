// AVX2+FMA+F16C elementwise math shared by the avx2 kernels: exp, softplus, SiLU, an 8x8
// transpose and widening loads. Include only from src/kernels/x86/avx2/*.cc (built with AVX2
// flags); everything lives in the avx2 namespace so no other ISA's copy can be merged with it.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace quamba::kernels::x86::avx2 {

// The same degree-6 fit of exp(r) on |r| <= ln2/2 as the avx512 vmath (relative fit error
// 2.5e-9), with every coefficient doubled (exact) so the result comes out as 2 p(r) and the
// scale can be 2^(k-1): see Exp.
inline constexpr float kExp2C6 = 2 * 1.394111896e-03f;
inline constexpr float kExp2C5 = 2 * 8.375134319e-03f;
inline constexpr float kExp2C4 = 2 * 4.166635126e-02f;
inline constexpr float kExp2C3 = 2 * 1.666641533e-01f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693145751953125f;  // 16 significant bits: k*kLn2Hi exact
inline constexpr float kLn2Lo = 1.428606820309417232e-06f;
inline constexpr float kLnFltMin = -87.3365448f;  // ln(2^-126)
inline constexpr float kLnFltMax = 88.7228394f;   // ln(FLT_MAX)

// exp(x) for 8 lanes: x = k ln2 + r, exp(x) = (2 p(r)) * 2^(k-1). Building 2^(k-1) in the
// exponent field covers k in [-125, 128], i.e. every normal result up to FLT_MAX, without a
// second scaling step. Limits (documented, and asserted by tests/kernels/vmath_test.cc):
// results below 2^-125.5 (~1.7e-38) are flushed to +0 (absolute error < 1.7e-38); x above
// ln(FLT_MAX) gives FLT_MAX or +inf; elsewhere |error| <= ~1.1 ulp. NaN propagates.
inline __m256 Exp(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(kLnFltMin), x);  // operand order: returns x if x is NaN
  x = _mm256_min_ps(_mm256_set1_ps(kLnFltMax), x);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kExp2C6), r, _mm256_set1_ps(kExp2C5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExp2C4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExp2C3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.0f));
  // k = -126 (x < -125.5 ln2) gives a zero exponent field: the flush to +0 described above.
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(126)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// The avx512 vmath's degree-6 fit of 2^f on |f| <= 1/2, coefficients doubled (exact) so the
// scale can be 2^(k-1) as in Exp.
inline constexpr float kPow2C1 = 2 * 6.931471825e-01f;
inline constexpr float kPow2C2 = 2 * 2.402265072e-01f;
inline constexpr float kPow2C3 = 2 * 5.550327152e-02f;
inline constexpr float kPow2C4 = 2 * 9.618056938e-03f;
inline constexpr float kPow2C5 = 2 * 1.340044197e-03f;
inline constexpr float kPow2C6 = 2 * 1.546145650e-04f;
inline constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: t + it rounds t to an integer

// 2^t for t <= 0 (up to t < 128 works), the scan's exp(dt * A) with log2(e) folded into A.
// k = round(t) by the magic-number add, whose float bits also hold k as an integer
// (0x4B400000 + k), so 2^(k-1) is one integer add and shift. Error <= 0.97 ulp (avx512 vmath);
// results below 2^-125.5 flush to +0 as in Exp.
inline __m256 Exp2NonPositive(__m256 t) {
  t = _mm256_max_ps(_mm256_set1_ps(-126.0f), t);  // returns t if t is NaN
  const __m256 magic = _mm256_set1_ps(kRoundMagic);
  const __m256 tm = _mm256_add_ps(t, magic);
  const __m256 f = _mm256_sub_ps(t, _mm256_sub_ps(tm, magic));
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kPow2C6), f, _mm256_set1_ps(kPow2C5));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kPow2C4));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kPow2C3));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kPow2C2));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kPow2C1));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.0f));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_castps_si256(tm), _mm256_set1_epi32(126 - 0x4B400000)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// log1p(e) for e in [0, 1] via 2 atanh(e / (2 + e)); see vmath_avx512.h for the error bound.
inline __m256 Log1pUnit(__m256 e) {
  const __m256 s = _mm256_div_ps(e, _mm256_add_ps(_mm256_set1_ps(2.0f), e));
  const __m256 s2 = _mm256_mul_ps(s, s);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(2.0f / 13), s2, _mm256_set1_ps(2.0f / 11));
  q = _mm256_fmadd_ps(q, s2, _mm256_set1_ps(2.0f / 9));
  q = _mm256_fmadd_ps(q, s2, _mm256_set1_ps(2.0f / 7));
  q = _mm256_fmadd_ps(q, s2, _mm256_set1_ps(2.0f / 5));
  q = _mm256_fmadd_ps(q, s2, _mm256_set1_ps(2.0f / 3));
  q = _mm256_fmadd_ps(q, s2, _mm256_set1_ps(2.0f));
  return _mm256_mul_ps(s, q);
}

// softplus(v) = v > 20 ? v : log1p(exp(v)), as max(v, 0) + log1p(exp(-|v|)) below the threshold.
inline __m256 Softplus(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 neg_abs = _mm256_or_ps(v, sign);  // -|v|
  const __m256 sp = _mm256_add_ps(_mm256_max_ps(v, _mm256_setzero_ps()), Log1pUnit(Exp(neg_abs)));
  const __m256 big = _mm256_cmp_ps(v, _mm256_set1_ps(20.0f), _CMP_GT_OQ);
  return _mm256_blendv_ps(sp, v, big);
}

// SiLU(v) = v / (1 + exp(-v)).
inline __m256 Silu(__m256 v) {
  const __m256 e = Exp(_mm256_sub_ps(_mm256_setzero_ps(), v));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// Transposes the 8x8 matrix whose rows are r[0..7] in place (r[j] becomes column j).
inline void Transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4g + j]: in 128-bit lane L, column 4L + j of rows 4g..4g+3.
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);      // columns 0..3 (low lanes)
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);  // columns 4..7 (high lanes)
  }
}

// Lane mask (all-ones lanes) for the first n (<= 8) lanes, for maskload / maskstore.
inline __m256i FirstLanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 8 ? n : 8)), idx);
}

// Widening loads of 8 weights.
inline __m256 LoadF32(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 LoadF16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 LoadBF16(const uint16_t* p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

}  // namespace quamba::kernels::x86::avx2
