// Vector traits of the AVX-512 backend: the operations the width-generic kernel bodies in
// src/kernels/simd/*.inc are written in (docs/kernels.md lists the contract of each). 16 float
// lanes, tails by __mmask16 (masked-off lanes are neither read nor written and load as 0).
// Include only from src/kernels/x86/avx512/*.cc (compiled with the AVX-512 flags).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/x86/avx512/vmath_avx512.h"

namespace quamba::kernels::x86::avx512 {

struct Vec {
  static constexpr int kLanes = 16;
  // Vector registers: the scan keeps a d_state x kLanes state block in registers when
  // 2 * d_state <= kRegisters.
  static constexpr int kRegisters = 32;
  using F = __m512;   // kLanes floats
  using I = __m512i;  // kLanes int32
  using D = __m512d;  // kLanes / 2 doubles
  using Mask = __mmask16;

  // The first n lanes (n >= 0; n >= kLanes: all).
  static Mask FirstN(int64_t n) { return FirstLanes(n); }

  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void Store(float* p, F v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  // Whole vectors at 64-byte aligned addresses (the kernels' own scratch).
  static F LoadAligned(const float* p) { return _mm512_load_ps(p); }
  static void StoreAligned(float* p, F v) { _mm512_store_ps(p, v); }
  // int8 lanes widened to float (exact).
  static F LoadS8(const int8_t* p, Mask m) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
  }
  // Low byte of each int32 lane (values already in int8 range).
  static void StoreS8(int8_t* p, I v, Mask m) { _mm512_mask_cvtepi32_storeu_epi8(p, m, v); }

  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }  // a * b + c, one rounding
  static F Max(F a, F b) { return _mm512_max_ps(a, b); }
  static F Abs(F a) { return _mm512_abs_ps(a); }
  static float ReduceMax(F v) { return _mm512_reduce_max_ps(v); }

  // RoundS8 as int32 lanes: clamp first (max(v, -128) returns -128 for NaN), then vcvtps2dq
  // rounds half to even under the default MXCSR.
  static I RoundClamp(F v) {
    v = _mm512_max_ps(v, _mm512_set1_ps(-128.0f));
    v = _mm512_min_ps(v, _mm512_set1_ps(127.0f));
    return _mm512_cvtps_epi32(v);
  }
  // Float lanes holding integers in int32 range -> int32 (exact).
  static I ToInt(F v) { return _mm512_cvtps_epi32(v); }

  // vmath_avx512.h: exp(dt A) as 2^t, softplus (threshold 20), SiLU.
  static F Exp2NonPositive(F t) { return avx512::Exp2NonPositive(t); }
  static F Softplus(F v) { return avx512::Softplus(v); }
  static F Silu(F v) { return avx512::Silu(v); }

  // Transposes the kLanes x kLanes matrix whose rows are r[0..kLanes-1] in place.
  static void Transpose(F r[kLanes]) { Transpose16x16(r); }
  // Lane i of the result = sum of the lanes of v[i] (any order; used by the float decode scan).
  static F ReduceAddRows(const F v[kLanes]);

  // Double accumulation (sum of squares of the RMSNorms): lanes [0, kLanes/2) and
  // [kLanes/2, kLanes) of a float vector, widened exactly; the final reduction's order is this
  // ISA's (the norm contract allows any order of the double sum).
  static D LowToDouble(F v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
  static D HighToDouble(F v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  static D ZeroD() { return _mm512_setzero_pd(); }
  static D AddD(D a, D b) { return _mm512_add_pd(a, b); }
  static D FmaD(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
  static double ReduceAddD(D v) { return _mm512_reduce_add_pd(v); }
};

// Horizontal sums of 16 vectors by a shuffle/add tree (~40 ops). Stage 1 halves 128-bit lanes
// pairwise, stage 2 leaves in lane L of q[j] four partial sums of w[4j + L], stage 3 adds within
// lanes, giving element 4L + j = sum of w[4j + L]. Reading the inputs as w[4j + L] = v[4L + j]
// makes that element i = sum v[i].
inline __m512 Vec::ReduceAddRows(const __m512 v[16]) {
  auto w = [&](int k) -> const __m512& { return v[4 * (k % 4) + k / 4]; };
  __m512 t[8], q[4];
  for (int i = 0; i < 8; ++i) {  // [a.l0+a.l2, a.l1+a.l3, b.l0+b.l2, b.l1+b.l3]
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w(2 * i), w(2 * i + 1), 0x44),
                         _mm512_shuffle_f32x4(w(2 * i), w(2 * i + 1), 0xEE));
  }
  for (int j = 0; j < 4; ++j) {
    q[j] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * j], t[2 * j + 1], 0x88),
                         _mm512_shuffle_f32x4(t[2 * j], t[2 * j + 1], 0xDD));
  }
  const __m512 y0 = _mm512_add_ps(_mm512_unpacklo_ps(q[0], q[1]), _mm512_unpackhi_ps(q[0], q[1]));
  const __m512 y1 = _mm512_add_ps(_mm512_unpacklo_ps(q[2], q[3]), _mm512_unpackhi_ps(q[2], q[3]));
  const __m512d a = _mm512_castps_pd(y0), b = _mm512_castps_pd(y1);
  return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                       _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
}

// Sum of the 16 int32 lanes modulo 2^32, in vector adds only (_mm512_reduce_add_epi32 finishes
// with signed scalar adds, undefined behaviour for the wrapped u8 x s8 sums of the int8 GEMV).
inline int32_t HSumEpi32(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace quamba::kernels::x86::avx512
