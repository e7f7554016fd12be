// AVX-512 Mamba-1 selective scan: one zmm lane per channel, 16 channels per block.
//
// For a block of 16 channels the (16, d_state) slice of the state is transposed so that vector
// n holds h[c0..c0+15, n]; with d_state == 16 those 16 vectors stay in registers for all L
// steps and are transposed back at the end. The per-(t, channel) work (softplus of delta, the
// D skip, the SiLU(z) gate) is vectorised the same way, and exp(dt * A) uses vmath's Exp.
// Other d_state values keep the transposed state in an L1-resident scratch instead; channels
// that do not fill a block of 16 go to the generic kernel.
// GCC 12 warns about the deliberately undefined lanes inside its own AVX-512 intrinsics
// (GCC bug 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "kernels/generic/generic.h"
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/vmath_avx512.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels::x86::avx512 {
namespace {

constexpr int kW = 16;  // channels per block

// The per-step values shared by all states of the block.
struct StepInputs {
  __m512 dt;   // softplus(delta + delta_bias)
  __m512 dtu;  // dt * u
  __m512 u;
};

inline StepInputs LoadStep(const ScanArgs& a, int64_t t, int64_t c0, __m512 bias) {
  StepInputs s;
  s.u = _mm512_loadu_ps(a.u + t * a.ldu + c0);
  s.dt = Softplus(_mm512_add_ps(_mm512_loadu_ps(a.delta + t * a.ld_delta + c0), bias));
  s.dtu = _mm512_mul_ps(s.dt, s.u);
  return s;
}

// y[t, c0..c0+15] = (acc + D*u) * SiLU(z).
inline void StoreOutput(const ScanArgs& a, int64_t t, int64_t c0, __m512 acc, __m512 d,
                        __m512 u) {
  __m512 out = _mm512_fmadd_ps(d, u, acc);
  if (a.z != nullptr) out = _mm512_mul_ps(out, Silu(_mm512_loadu_ps(a.z + t * a.ldz + c0)));
  _mm512_storeu_ps(a.y + t * a.ldy + c0, out);
}

// d_state == 16: the block's state lives in 16 zmm registers across all L steps.
void ScanBlockState16(const ScanArgs& a, int64_t c0) {
  constexpr int N = 16;
  __m512 h[N];
  alignas(64) float at[N * kW];  // at[n*16 + i] = A[c0+i, n]
  {
    __m512 t[N];
#pragma GCC unroll 16
    for (int i = 0; i < kW; ++i) {
      h[i] = _mm512_loadu_ps(a.state + (c0 + i) * N);
      t[i] = _mm512_loadu_ps(a.A + (c0 + i) * N);
    }
    Transpose16x16(h);
    Transpose16x16(t);
#pragma GCC unroll 16
    for (int n = 0; n < N; ++n) _mm512_store_ps(at + n * kW, t[n]);
  }
  const __m512 bias = _mm512_loadu_ps(a.delta_bias + c0);
  const __m512 d = _mm512_loadu_ps(a.D + c0);
  for (int64_t t = 0; t < a.L; ++t) {
    const StepInputs s = LoadStep(a, t, c0, bias);
    const float* bt = a.B + t * a.ld_bc;
    const float* ct = a.C + t * a.ld_bc;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int n = 0; n < N; n += 2) {
      const __m512 da0 = Exp(_mm512_mul_ps(s.dt, _mm512_load_ps(at + n * kW)));
      const __m512 da1 = Exp(_mm512_mul_ps(s.dt, _mm512_load_ps(at + (n + 1) * kW)));
      h[n] = _mm512_fmadd_ps(da0, h[n], _mm512_mul_ps(s.dtu, _mm512_set1_ps(bt[n])));
      h[n + 1] = _mm512_fmadd_ps(da1, h[n + 1], _mm512_mul_ps(s.dtu, _mm512_set1_ps(bt[n + 1])));
      acc0 = _mm512_fmadd_ps(h[n], _mm512_set1_ps(ct[n]), acc0);
      acc1 = _mm512_fmadd_ps(h[n + 1], _mm512_set1_ps(ct[n + 1]), acc1);
    }
    StoreOutput(a, t, c0, _mm512_add_ps(acc0, acc1), d, s.u);
  }
  Transpose16x16(h);
#pragma GCC unroll 16
  for (int i = 0; i < kW; ++i) _mm512_storeu_ps(a.state + (c0 + i) * N, h[i]);
}

// Any d_state: the transposed block state ht (N, 16) and A^T (N, 16) live in scratch (L1 for
// the usual sizes). Loads/stores move 16-state chunks through the register transpose.
void ScanBlockAnyState(const ScanArgs& a, int64_t c0, float* ht, float* at) {
  const int64_t N = a.d_state;
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const int64_t nn = N - n0 < 16 ? N - n0 : 16;
    const __mmask16 mask = FirstLanes(nn);
    __m512 hs[16], as[16];
    for (int i = 0; i < kW; ++i) {
      hs[i] = _mm512_maskz_loadu_ps(mask, a.state + (c0 + i) * N + n0);
      as[i] = _mm512_maskz_loadu_ps(mask, a.A + (c0 + i) * N + n0);
    }
    Transpose16x16(hs);
    Transpose16x16(as);
    for (int64_t j = 0; j < nn; ++j) {
      _mm512_store_ps(ht + (n0 + j) * kW, hs[j]);
      _mm512_store_ps(at + (n0 + j) * kW, as[j]);
    }
  }
  const __m512 bias = _mm512_loadu_ps(a.delta_bias + c0);
  const __m512 d = _mm512_loadu_ps(a.D + c0);
  for (int64_t t = 0; t < a.L; ++t) {
    const StepInputs s = LoadStep(a, t, c0, bias);
    const float* bt = a.B + t * a.ld_bc;
    const float* ct = a.C + t * a.ld_bc;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t n = 0; n < N; ++n) {
      const __m512 da = Exp(_mm512_mul_ps(s.dt, _mm512_load_ps(at + n * kW)));
      const __m512 hn = _mm512_fmadd_ps(da, _mm512_load_ps(ht + n * kW),
                                        _mm512_mul_ps(s.dtu, _mm512_set1_ps(bt[n])));
      _mm512_store_ps(ht + n * kW, hn);
      acc = _mm512_fmadd_ps(hn, _mm512_set1_ps(ct[n]), acc);
    }
    StoreOutput(a, t, c0, acc, d, s.u);
  }
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const int64_t nn = N - n0 < 16 ? N - n0 : 16;
    const __mmask16 mask = FirstLanes(nn);
    __m512 hs[16];
    for (int j = 0; j < 16; ++j) {
      hs[j] = j < nn ? _mm512_load_ps(ht + (n0 + j) * kW) : _mm512_setzero_ps();
    }
    Transpose16x16(hs);
    for (int i = 0; i < kW; ++i) _mm512_mask_storeu_ps(a.state + (c0 + i) * N + n0, mask, hs[i]);
  }
}

}  // namespace

void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end) {
  const int64_t full_end = c_begin + (c_end - c_begin) / kW * kW;
  if (a.d_state == 16) {
    for (int64_t c0 = c_begin; c0 < full_end; c0 += kW) ScanBlockState16(a, c0);
  } else if (a.d_state > 0) {
    float* buf = Scratch(ScratchSlot::kMisc, 2 * a.d_state * kW);
    for (int64_t c0 = c_begin; c0 < full_end; c0 += kW) {
      ScanBlockAnyState(a, c0, buf, buf + a.d_state * kW);
    }
  } else if (full_end > c_begin) {
    generic::SelectiveScan(a, c_begin, full_end);  // no state: y = D*u*SiLU(z)
  }
  if (full_end < c_end) generic::SelectiveScan(a, full_end, c_end);
}

}  // namespace quamba::kernels::x86::avx512
