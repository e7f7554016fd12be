// Mamba-2 (state space duality) ops: the chunked SSD prefill, the recurrent SSD scan (one token
// at a time: the decode step), and the grouped gated RMSNorm fused with the D skip and the gate.
// Model-agnostic in the kernels' sense: heads, groups and states, no Mamba names beyond the
// math. Layout (quamba2-spec §1.5): channel c = h * P + p of H heads with P channels each; head h
// reads B/C group g = h / (H / G), whose N states sit at g * N of a token's B (or C) row; the
// state is (H, P, N) with n contiguous. Threading is the caller's: each kernel produces heads
// [h_begin, h_end) (rows for the norm) and is otherwise single-threaded; per-thread scratch grows
// on first use.
#pragma once

#include <cmath>
#include <cstdint>

namespace quamba::kernels {

// The tokens of one sequence, for the SSD kernels.
struct SsdArgs {
  int64_t L = 0;                    // tokens
  int64_t H = 0, P = 0, N = 0, G = 1;
  const float* x = nullptr;         // (L, H*P), row stride ldx
  int64_t ldx = 0;
  const float* B = nullptr;         // (L, G*N), row stride ldbc
  const float* C = nullptr;         // (L, G*N), row stride ldbc
  int64_t ldbc = 0;
  const float* dt = nullptr;        // (L, H) raw dt, row stride lddt
  int64_t lddt = 0;
  const float* dt_bias = nullptr;   // (H)
  float dt_min = 0.0f, dt_max = HUGE_VALF;  // Δ clamped into [dt_min, dt_max] after softplus
  const float* A = nullptr;         // (H) = -exp(A_log)
  float* state = nullptr;           // (H, P, N) in/out
  float* y = nullptr;               // (L, H*P), row stride ldy; no D term (see GatedNormArgs)
  int64_t ldy = 0;
};

// Both SSD kernels compute, for heads [h_begin, h_end) and tokens t = 0..L-1:
//   Δ_t[h]   = clamp(softplus(dt[t,h] + dt_bias[h]), dt_min, dt_max)   (softplus threshold 20)
//   S[h,p,n] = exp(Δ_t[h] A[h]) S[h,p,n] + Δ_t[h] x[t,h,p] B[t,g,n]
//   y[t,h,p] = Σ_n S[h,p,n] C[t,g,n]
// SsdScan runs that recurrence token by token (the decode step at L = 1; a recurrent prefill of
// L tokens gives the same bits as L decode steps). SsdChunk computes the same function in the
// chunked form of quamba2-spec §1.6 (intra-chunk as small GEMMs with exp(cum[l] - cum[s])
// decays, the carried state applied once per chunk), for L <= kSsdMaxChunk: different rounding,
// not the same bits.
using SsdFn = void (*)(const SsdArgs& a, int64_t h_begin, int64_t h_end);
inline constexpr int64_t kSsdMaxChunk = 256;

// Grouped gated RMSNorm (mamba_ssm RMSNormGated, norm_before_gate=False, group_size = C / G),
// rows [row_begin, row_end):
//   v[t,c]   = (y[t,c] + D[c / P] x[t,c]) * SiLU(z[t,c])          (D term only when D != null)
//   out[t,c] = v[t,c] / sqrt(mean_{c' in group of c} v[t,c']^2 + eps) * w[c]
// Groups are G contiguous runs of C / G channels; the mean in double.
struct GatedNormArgs {
  int64_t L = 0, C = 0, G = 1, P = 1;
  const float* y = nullptr;  // (L, C), row stride ldy
  int64_t ldy = 0;
  const float* x = nullptr;  // (L, C), row stride ldx (with D)
  int64_t ldx = 0;
  const float* D = nullptr;  // (C / P) or null
  const float* z = nullptr;  // (L, C), row stride ldz
  int64_t ldz = 0;
  const float* w = nullptr;  // (C)
  float eps = 1e-5f;
  float* out = nullptr;      // (L, C), row stride ldo; may alias y
  int64_t ldo = 0;
};
using GatedRmsNormFn = void (*)(const GatedNormArgs& a, int64_t row_begin, int64_t row_end);

}  // namespace quamba::kernels
