// AVX-512 Mamba-1 selective scan: one zmm lane per channel, 16 channels per block.
//
// Prefill (L > 4): for a block of 16 channels the (16, d_state) slice of the state is
// transposed so that vector n holds h[c0..c0+15, n]; with d_state == 16 those 16 vectors are
// carried across all L steps (in registers, with whatever the compiler spills staying in L1)
// and transposed back at the end. exp(dt * A) = 2^(dt * A log2 e) with A log2(e) formed once
// per block, so each state and step costs one multiply, vmath's Exp2NonPositive and two FMAs.
// softplus(delta), D*u and the SiLU(z) gate are vectorised over the same 16 channels in
// separate passes per chunk of steps (Prologue / Epilogue), off the recurrence's critical path.
// Decode (L <= 4, d_state == 16): one zmm per channel holds its 16 states untransposed, which
// saves the three 16x16 transposes that dominate a single step (ScanBlockRows16).
// Other d_state values keep the transposed state in an L1-resident scratch; channels that do
// not fill a block of 16 go to the generic kernel.
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
constexpr int kT = 16;  // time steps per chunk
// Up to this many steps the row (untransposed) decode path is used for d_state == 16.
constexpr int64_t kRowsMaxL = 4;

// The recurrence's serial dependency runs through h only; softplus(delta), D*u and the SiLU(z)
// gate do not depend on it. They are computed for a chunk of up to kT steps in separate,
// fully parallel passes (Prologue / Epilogue) so that their long latency (exp, log1p, divide)
// stays off the recurrence's critical path.
struct Chunk {
  alignas(64) float dt[kT * kW];   // softplus(delta + delta_bias)
  alignas(64) float dtu[kT * kW];  // dt * u
  alignas(64) float u[kT * kW];    // u
  alignas(64) float out[kT * kW];  // sum_n h * C
};

inline void Prologue(const ScanArgs& a, int64_t t0, int64_t tn, int64_t c0, __m512 bias, __m512 d,
                     Chunk* ch) {
  for (int64_t j = 0; j < tn; ++j) {
    const int64_t t = t0 + j;
    const __m512 u = _mm512_loadu_ps(a.u + t * a.ldu + c0);
    const __m512 dt = Softplus(_mm512_add_ps(_mm512_loadu_ps(a.delta + t * a.ld_delta + c0), bias));
    _mm512_store_ps(ch->dt + j * kW, dt);
    _mm512_store_ps(ch->dtu + j * kW, _mm512_mul_ps(dt, u));
    _mm512_store_ps(ch->u + j * kW, u);
  }
}

// y[t, c0..c0+15] = fma(D, u, out) * SiLU(z). Runs after the chunk's u was consumed, so y may
// alias u.
inline void Epilogue(const ScanArgs& a, int64_t t0, int64_t tn, int64_t c0, __m512 d,
                     const Chunk& ch) {
  for (int64_t j = 0; j < tn; ++j) {
    const int64_t t = t0 + j;
    __m512 out = _mm512_fmadd_ps(d, _mm512_load_ps(ch.u + j * kW), _mm512_load_ps(ch.out + j * kW));
    if (a.z != nullptr) out = _mm512_mul_ps(out, Silu(_mm512_loadu_ps(a.z + t * a.ldz + c0)));
    _mm512_storeu_ps(a.y + t * a.ldy + c0, out);
  }
}

// d_state == 16: the block's state lives in 16 zmm registers across all L steps.
void ScanBlockState16(const ScanArgs& a, int64_t c0) {
  constexpr int N = 16;
  __m512 h[N];
  alignas(64) float at[N * kW];  // at[n*16 + i] = A[c0+i, n] * log2(e)
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
    for (int n = 0; n < N; ++n) {
      _mm512_store_ps(at + n * kW, _mm512_mul_ps(t[n], _mm512_set1_ps(kLog2e)));
    }
  }
  const __m512 bias = _mm512_loadu_ps(a.delta_bias + c0);
  const __m512 d = _mm512_loadu_ps(a.D + c0);
  Chunk ch;
  for (int64_t t0 = 0; t0 < a.L; t0 += kT) {
    const int64_t tn = a.L - t0 < kT ? a.L - t0 : kT;
    Prologue(a, t0, tn, c0, bias, d, &ch);
    for (int64_t j = 0; j < tn; ++j) {
      const __m512 dt = _mm512_load_ps(ch.dt + j * kW);
      const __m512 dtu = _mm512_load_ps(ch.dtu + j * kW);
      const float* bt = a.B + (t0 + j) * a.ld_bc;
      const float* ct = a.C + (t0 + j) * a.ld_bc;
      __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 16
      for (int n = 0; n < N; ++n) {
        const __m512 da = Exp2NonPositive(_mm512_mul_ps(dt, _mm512_load_ps(at + n * kW)));
        h[n] = _mm512_fmadd_ps(da, h[n], _mm512_mul_ps(dtu, _mm512_set1_ps(bt[n])));
        acc[n % 2] = _mm512_fmadd_ps(h[n], _mm512_set1_ps(ct[n]), acc[n % 2]);
      }
      _mm512_store_ps(ch.out + j * kW, _mm512_add_ps(acc[0], acc[1]));
    }
    Epilogue(a, t0, tn, c0, d, ch);
  }
  Transpose16x16(h);
#pragma GCC unroll 16
  for (int i = 0; i < kW; ++i) _mm512_storeu_ps(a.state + (c0 + i) * N, h[i]);
}

// Horizontal sums of 16 vectors: lane i of the result = sum of the 16 lanes of v[i], by a
// shuffle/add tree (~40 ops). Stage 1 halves 128-bit lanes pairwise, stage 2 leaves in lane L
// of q[j] four partial sums of w[4j + L], stage 3 adds within lanes, giving element 4L + j =
// sum of w[4j + L]. Reading the inputs as w[4j + L] = v[4L + j] makes that element i = sum v[i].
inline __m512 ReduceAdd16(const __m512 v[16]) {
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

// Decode path, d_state == 16 and few steps: one zmm per channel holds that channel's 16
// states straight from the (d_inner, d_state) layout, so no transposes are needed; the 16
// per-channel dot products with C are reduced together by ReduceAdd16. Per channel and step
// this costs a few ops more than the transposed path but saves its three 16x16 transposes
// (~190 shuffles per block), which dominate when L is small.
void ScanBlockRows16(const ScanArgs& a, int64_t c0) {
  constexpr int N = 16;
  const __m512 bias = _mm512_loadu_ps(a.delta_bias + c0);
  const __m512 d = _mm512_loadu_ps(a.D + c0);
  const __m512 log2e = _mm512_set1_ps(kLog2e);
  Chunk ch;
  for (int64_t t0 = 0; t0 < a.L; t0 += kT) {
    const int64_t tn = a.L - t0 < kT ? a.L - t0 : kT;
    Prologue(a, t0, tn, c0, bias, d, &ch);
    for (int64_t j = 0; j < tn; ++j) {
      const __m512 b = _mm512_loadu_ps(a.B + (t0 + j) * a.ld_bc);
      const __m512 c = _mm512_loadu_ps(a.C + (t0 + j) * a.ld_bc);
      __m512 v[kW];
#pragma GCC unroll 16
      for (int i = 0; i < kW; ++i) {
        float* hp = a.state + (c0 + i) * N;
        // Same rounding as the transposed path: dt * float(A log2 e).
        const __m512 at = _mm512_mul_ps(_mm512_loadu_ps(a.A + (c0 + i) * N), log2e);
        const __m512 da = Exp2NonPositive(_mm512_mul_ps(_mm512_set1_ps(ch.dt[j * kW + i]), at));
        const __m512 h = _mm512_fmadd_ps(da, _mm512_loadu_ps(hp),
                                         _mm512_mul_ps(_mm512_set1_ps(ch.dtu[j * kW + i]), b));
        _mm512_storeu_ps(hp, h);
        v[i] = _mm512_mul_ps(h, c);
      }
      _mm512_store_ps(ch.out + j * kW, ReduceAdd16(v));
    }
    Epilogue(a, t0, tn, c0, d, ch);
  }
}

// Any d_state: the transposed block state ht (N, 16) and (A log2 e)^T (N, 16) live in scratch (L1
// for the usual sizes). Loads/stores move 16-state chunks through the register transpose.
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
      _mm512_store_ps(at + (n0 + j) * kW, _mm512_mul_ps(as[j], _mm512_set1_ps(kLog2e)));
    }
  }
  const __m512 bias = _mm512_loadu_ps(a.delta_bias + c0);
  const __m512 d = _mm512_loadu_ps(a.D + c0);
  Chunk ch;
  for (int64_t t0 = 0; t0 < a.L; t0 += kT) {
    const int64_t tn = a.L - t0 < kT ? a.L - t0 : kT;
    Prologue(a, t0, tn, c0, bias, d, &ch);
    for (int64_t j = 0; j < tn; ++j) {
      const __m512 dt = _mm512_load_ps(ch.dt + j * kW);
      const __m512 dtu = _mm512_load_ps(ch.dtu + j * kW);
      const float* bt = a.B + (t0 + j) * a.ld_bc;
      const float* ct = a.C + (t0 + j) * a.ld_bc;
      __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
      int64_t n = 0;
      for (; n + 2 <= N; n += 2) {
        const __m512 da0 = Exp2NonPositive(_mm512_mul_ps(dt, _mm512_load_ps(at + n * kW)));
        const __m512 da1 = Exp2NonPositive(_mm512_mul_ps(dt, _mm512_load_ps(at + (n + 1) * kW)));
        const __m512 h0 = _mm512_fmadd_ps(da0, _mm512_load_ps(ht + n * kW),
                                          _mm512_mul_ps(dtu, _mm512_set1_ps(bt[n])));
        const __m512 h1 = _mm512_fmadd_ps(da1, _mm512_load_ps(ht + (n + 1) * kW),
                                          _mm512_mul_ps(dtu, _mm512_set1_ps(bt[n + 1])));
        _mm512_store_ps(ht + n * kW, h0);
        _mm512_store_ps(ht + (n + 1) * kW, h1);
        acc0 = _mm512_fmadd_ps(h0, _mm512_set1_ps(ct[n]), acc0);
        acc1 = _mm512_fmadd_ps(h1, _mm512_set1_ps(ct[n + 1]), acc1);
      }
      if (n < N) {
        const __m512 da = Exp2NonPositive(_mm512_mul_ps(dt, _mm512_load_ps(at + n * kW)));
        const __m512 h0 = _mm512_fmadd_ps(da, _mm512_load_ps(ht + n * kW),
                                          _mm512_mul_ps(dtu, _mm512_set1_ps(bt[n])));
        _mm512_store_ps(ht + n * kW, h0);
        acc0 = _mm512_fmadd_ps(h0, _mm512_set1_ps(ct[n]), acc0);
      }
      _mm512_store_ps(ch.out + j * kW, _mm512_add_ps(acc0, acc1));
    }
    Epilogue(a, t0, tn, c0, d, ch);
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
  if (a.d_state == 16 && a.L <= kRowsMaxL) {
    for (int64_t c0 = c_begin; c0 < full_end; c0 += kW) ScanBlockRows16(a, c0);
  } else if (a.d_state == 16) {
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
