// AVX2 Mamba-1 selective scan: one ymm lane per channel, 8 channels per block.
//
// The block's (8, d_state) state slice is transposed into ht (d_state, 8) so that vector n holds
// h[c0..c0+7, n]. With 16 ymm registers the 16 state vectors of Mamba's d_state = 16 cannot all
// stay in registers next to exp's temporaries, so ht lives in an L1-resident buffer (a load and
// a store per state per step, cheap next to the ~17 vector ops of exp and the update).
// exp(dt * A) = 2^(dt * A log2 e) with A log2(e) formed once per block (vmath's
// Exp2NonPositive). The per-(t, channel) softplus / D skip / SiLU(z) gate are vectorised the
// same way. Channels that do not fill a block of 8 go to the generic kernel.
#include <immintrin.h>

#include <cstdint>

#include "kernels/generic/generic.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vmath_avx2.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels::x86::avx2 {
namespace {

constexpr int kW = 8;  // channels per block

// kN = d_state when known at compile time (16), 0 for any d_state (read from a).
template <int kN>
void ScanBlock(const ScanArgs& a, int64_t c0, float* ht, float* at) {
  const int64_t N = kN > 0 ? kN : a.d_state;
  // Transpose state and A in: ht[n*8 + i] = state[c0+i, n], at[n*8 + i] = A[c0+i, n] log2(e)
  // (exp(dt A) = 2^(dt A log2 e): one multiply and Exp2NonPositive per state and step).
  for (int64_t n0 = 0; n0 < N; n0 += 8) {
    const int64_t nn = N - n0 < 8 ? N - n0 : 8;
    const __m256i mask = FirstLanes(nn);
    __m256 hs[8], as[8];
    for (int i = 0; i < kW; ++i) {
      hs[i] = _mm256_maskload_ps(a.state + (c0 + i) * N + n0, mask);
      as[i] = _mm256_maskload_ps(a.A + (c0 + i) * N + n0, mask);
    }
    Transpose8x8(hs);
    Transpose8x8(as);
    for (int64_t j = 0; j < nn; ++j) {
      _mm256_store_ps(ht + (n0 + j) * kW, hs[j]);
      _mm256_store_ps(at + (n0 + j) * kW, _mm256_mul_ps(as[j], _mm256_set1_ps(kLog2e)));
    }
  }
  const __m256 bias = _mm256_loadu_ps(a.delta_bias + c0);
  const __m256 d = _mm256_loadu_ps(a.D + c0);
  for (int64_t t = 0; t < a.L; ++t) {
    const __m256 u = _mm256_loadu_ps(a.u + t * a.ldu + c0);
    const __m256 dt = Softplus(_mm256_add_ps(_mm256_loadu_ps(a.delta + t * a.ld_delta + c0), bias));
    const __m256 dtu = _mm256_mul_ps(dt, u);
    const float* bt = a.B + t * a.ld_bc;
    const float* ct = a.C + t * a.ld_bc;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t n = 0;
#pragma GCC unroll 8
    for (; n + 2 <= N; n += 2) {
      const __m256 da0 = Exp2NonPositive(_mm256_mul_ps(dt, _mm256_load_ps(at + n * kW)));
      const __m256 da1 = Exp2NonPositive(_mm256_mul_ps(dt, _mm256_load_ps(at + (n + 1) * kW)));
      const __m256 h0 = _mm256_fmadd_ps(da0, _mm256_load_ps(ht + n * kW),
                                        _mm256_mul_ps(dtu, _mm256_broadcast_ss(bt + n)));
      const __m256 h1 = _mm256_fmadd_ps(da1, _mm256_load_ps(ht + (n + 1) * kW),
                                        _mm256_mul_ps(dtu, _mm256_broadcast_ss(bt + n + 1)));
      _mm256_store_ps(ht + n * kW, h0);
      _mm256_store_ps(ht + (n + 1) * kW, h1);
      acc0 = _mm256_fmadd_ps(h0, _mm256_broadcast_ss(ct + n), acc0);
      acc1 = _mm256_fmadd_ps(h1, _mm256_broadcast_ss(ct + n + 1), acc1);
    }
    if (n < N) {
      const __m256 da = Exp2NonPositive(_mm256_mul_ps(dt, _mm256_load_ps(at + n * kW)));
      const __m256 h0 = _mm256_fmadd_ps(da, _mm256_load_ps(ht + n * kW),
                                        _mm256_mul_ps(dtu, _mm256_broadcast_ss(bt + n)));
      _mm256_store_ps(ht + n * kW, h0);
      acc0 = _mm256_fmadd_ps(h0, _mm256_broadcast_ss(ct + n), acc0);
    }
    __m256 out = _mm256_fmadd_ps(d, u, _mm256_add_ps(acc0, acc1));
    if (a.z != nullptr) out = _mm256_mul_ps(out, Silu(_mm256_loadu_ps(a.z + t * a.ldz + c0)));
    _mm256_storeu_ps(a.y + t * a.ldy + c0, out);
  }
  // Transpose the state back out.
  for (int64_t n0 = 0; n0 < N; n0 += 8) {
    const int64_t nn = N - n0 < 8 ? N - n0 : 8;
    const __m256i mask = FirstLanes(nn);
    __m256 hs[8];
    for (int j = 0; j < 8; ++j) {
      hs[j] = j < nn ? _mm256_load_ps(ht + (n0 + j) * kW) : _mm256_setzero_ps();
    }
    Transpose8x8(hs);
    for (int i = 0; i < kW; ++i) _mm256_maskstore_ps(a.state + (c0 + i) * N + n0, mask, hs[i]);
  }
}

}  // namespace

void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end) {
  const int64_t full_end = c_begin + (c_end - c_begin) / kW * kW;
  if (a.d_state > 0 && full_end > c_begin) {
    float* buf = Scratch(ScratchSlot::kMisc, 2 * a.d_state * kW);
    float* ht = buf;
    float* at = buf + a.d_state * kW;
    for (int64_t c0 = c_begin; c0 < full_end; c0 += kW) {
      if (a.d_state == 16) {
        ScanBlock<16>(a, c0, ht, at);
      } else {
        ScanBlock<0>(a, c0, ht, at);
      }
    }
  } else if (full_end > c_begin) {
    generic::SelectiveScan(a, c_begin, full_end);  // no state: y = D*u*SiLU(z)
  }
  if (full_end < c_end) generic::SelectiveScan(a, full_end, c_end);
}

}  // namespace quamba::kernels::x86::avx2
