// The kS4Rows16 weight unpack shared by the AVX-512 W4A16 GEMV (gemm_s4_avx512.cc) and the
// float GEMM's 4-bit packer (gemm_f32_avx512.cc). Include only from files built with the
// AVX-512 flags.
#pragma once

#include <immintrin.h>

namespace quamba::kernels::x86::avx512 {

// Weights (code - 8) of k = 8 s + i, i = 0..7, for the 16 rows of a 64-byte layout step v (lane
// r: row r's dword, byte i % 4, low nibble for i < 4, high for i >= 4). vpermps reads the low 4
// bits of each index, so (dword >> shift) indexes a table of code - 8 directly: one shift and
// one permute per k.
inline void Rows16Weights(__m512i v, __m512* w) {
  const __m512 tbl = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  w[0] = _mm512_permutexvar_ps(v, tbl);
  w[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), tbl);
  w[2] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 16), tbl);
  w[3] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 24), tbl);
  w[4] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tbl);
  w[5] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), tbl);
  w[6] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 20), tbl);
  w[7] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 28), tbl);
}

}  // namespace quamba::kernels::x86::avx512
