// Scalar row operations shared by every int8 backend: the rounding rule and the Hadamard row
// transform. Everything is in an anonymous namespace so each translation unit (compiled with its
// own ISA flags) keeps a private copy: no inline function here can be merged across ISAs.
#pragma once

#include <cstdint>

namespace quamba::kernels::q8 {
namespace {

// RoundS8(v) = clamp(round-half-to-even(v), -128, 127), NaN -> -128. Clamping first is equal to
// clamping after for integer bounds; then adding and subtracting 1.5 * 2^23 rounds |v| < 2^22 to
// an integer in the current rounding mode (round-to-nearest-even by default), exactly what
// std::nearbyint does, without a libm call on baseline x86-64.
inline int8_t RoundS8(float v) {
  if (!(v >= -128.0f)) v = -128.0f;  // also NaN
  if (v > 127.0f) v = 127.0f;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  // IEEE semantics (no -ffast-math) forbid folding (v + kMagic) - kMagic into v.
  return static_cast<int8_t>(static_cast<int>((v + kMagic) - kMagic));
}

// Unnormalised H_K (x) H_{2^k} on one row v (n = K * p, p = 2^k), in place; tmp (n) scratch.
// Stage order is part of the contract (bit-identical results on every ISA): Sylvester butterflies
// (a, b) -> (a + b, a - b) with h = 1, 2, 4, ... inside each chunk of p, then
// out[c, j] = sum over c' ascending of +-v[c', j] with the signs of row c of hk (K x K).
inline void HadamardRowUnnormalised(float* v, int K, int64_t p, const int8_t* hk, float* tmp) {
  for (int c = 0; c < K; ++c) {
    float* x = v + c * p;
    for (int64_t h = 1; h < p; h *= 2) {
      for (int64_t i = 0; i < p; i += 2 * h) {
        for (int64_t j = i; j < i + h; ++j) {
          const float a = x[j], b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
  }
  if (K == 1) return;
  for (int c = 0; c < K; ++c) {
    float* out = tmp + c * p;
    const int8_t* row = hk + c * K;
    if (row[0] > 0) {
      for (int64_t j = 0; j < p; ++j) out[j] = v[j];
    } else {
      for (int64_t j = 0; j < p; ++j) out[j] = -v[j];
    }
    for (int cc = 1; cc < K; ++cc) {
      const float* src = v + cc * p;
      if (row[cc] > 0) {
        for (int64_t j = 0; j < p; ++j) out[j] = out[j] + src[j];
      } else {
        for (int64_t j = 0; j < p; ++j) out[j] = out[j] - src[j];
      }
    }
  }
  for (int64_t i = 0; i < K * p; ++i) v[i] = tmp[i];
}

}  // namespace
}  // namespace quamba::kernels::q8
