// Vector traits of the AVX2 + FMA backend: the operations the width-generic kernel bodies in
// src/kernels/simd/*.inc are written in (docs/kernels.md lists the contract of each). 8 float
// lanes; AVX2 has no byte- or 16-bit-masked loads, so a Mask carries the lane count as well as
// the vmaskmov mask, and int8 tails go through a small stack copy (masked-off lanes are neither
// read nor written and load as 0, as on AVX-512).
// Include only from src/kernels/x86/avx2/*.cc (compiled with the AVX2 flags).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/x86/avx2/vmath_avx2.h"

namespace quamba::kernels::x86::avx2 {

struct Vec {
  static constexpr int kLanes = 8;
  // Vector registers: the scan keeps a d_state x kLanes state block in registers when
  // 2 * d_state <= kRegisters (never for Mamba's d_state 16 here: it lives in L1 scratch).
  static constexpr int kRegisters = 16;
  using F = __m256;
  using I = __m256i;
  using D = __m256d;
  struct Mask {
    __m256i lanes;  // all-ones in the first n lanes
    int64_t n;      // lane count, min(n, kLanes)
  };

  static Mask FirstN(int64_t n) { return {FirstLanes(n), n < kLanes ? n : kLanes}; }

  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Load(const float* p, Mask m) {
    return m.n >= kLanes ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m.lanes);
  }
  static void Store(float* p, F v, Mask m) {
    if (m.n >= kLanes) {
      _mm256_storeu_ps(p, v);
    } else {
      _mm256_maskstore_ps(p, m.lanes, v);
    }
  }
  static F LoadAligned(const float* p) { return _mm256_load_ps(p); }
  static void StoreAligned(float* p, F v) { _mm256_store_ps(p, v); }
  static F LoadS8(const int8_t* p, Mask m) {
    __m128i v;
    if (m.n >= kLanes) {
      v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    } else {
      int8_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::memcpy(t, p, static_cast<size_t>(m.n));
      v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t));
    }
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
  }
  static void StoreS8(int8_t* p, I v, Mask m) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    const __m128i b = _mm_packs_epi16(w, w);
    if (m.n >= kLanes) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
    } else {
      alignas(16) int8_t t[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(t), b);
      std::memcpy(p, t, static_cast<size_t>(m.n));
    }
  }

  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Abs(F a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static float ReduceMax(F v) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 8; ++i) m = std::fmax(m, t[i]);
    return m;
  }

  // RoundS8 as int32 lanes (max(v, lo) returns lo for NaN; cvtps rounds half to even).
  static I RoundClamp(F v) {
    v = _mm256_max_ps(v, _mm256_set1_ps(-128.0f));
    v = _mm256_min_ps(v, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(v);
  }
  static I ToInt(F v) { return _mm256_cvtps_epi32(v); }

  // vmath_avx2.h.
  static F Exp2NonPositive(F t) { return avx2::Exp2NonPositive(t); }
  static F Softplus(F v) { return avx2::Softplus(v); }
  static F Silu(F v) { return avx2::Silu(v); }

  static void Transpose(F r[kLanes]) { Transpose8x8(r); }
  // Lane i of the result = sum of the lanes of v[i]: pairwise hadds, then the two 128-bit halves.
  static F ReduceAddRows(const F v[kLanes]) {
    const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20),
                         _mm256_permute2f128_ps(q0, q1, 0x31));
  }

  static D LowToDouble(F v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static D HighToDouble(F v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
  static D ZeroD() { return _mm256_setzero_pd(); }
  static D AddD(D a, D b) { return _mm256_add_pd(a, b); }
  static D FmaD(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
  // (s0 + s2) + (s1 + s3): halves first, as AVX-512's reduction.
  static double ReduceAddD(D v) {
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  }
};

// Sum of the 8 int32 lanes modulo 2^32, in vector adds only.
inline int32_t HSumEpi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace quamba::kernels::x86::avx2
