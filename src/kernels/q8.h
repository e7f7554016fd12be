// Int8 (W8A8) op contracts: the building blocks of Quamba's int8 Mamba-1 block (spec §2.3). Their
// entries live in the one KernelTable of kernels.h (which includes this header), with the same
// conventions as the float ops: activations are
// token-major (L, C) with a row stride in elements; linear weights are (N, K) row-major int8,
// plain (no packing on disk or in memory); each kernel produces the half-open output range it
// is given and is single-threaded and allocation-free apart from per-thread scratch grown on
// first use. Every entry has an exact-integer / float64 oracle in kernels/ref/q8_ref.h and is
// tested against it on every ISA the host supports (tests/kernels/q8_*_test.cc).
//
// Rounding, everywhere (docs/numerics.md): RoundS8(v) = clamp(round-half-to-even(v), -128, 127),
// computed as clamp-then-round in float (equal for integer bounds), NaN -> -128. The float
// products feeding it are part of each op's contract (written fl(...) below), so the
// quantize, GEMM-epilogue and Hadamard outputs are bit-identical across ISAs and oracles.
#pragma once

#include <cstdint>

#include "kernels/scan_layout.h"

namespace quamba::kernels {

// GEMM accumulators are exact in int32 when K * 128 * 128 <= 2^31 - 1 (any int8 values).
inline constexpr int64_t kGemmS8MaxK = 131071;
// Dynamic quantization floor: scale = max(absmax, kMinAbsMax) / 127 (spec §8.3: absmax >= 1e-5),
// so an all-zero row gets a finite scale and quantizes to zeros.
inline constexpr float kMinAbsMax = 1e-5f;

// q[l*ldq + c] = RoundS8(fl(x[l*ldx + c] * m[c])), m[c] = col_mult ? fl(inv_scale * col_mult[c])
// : inv_scale, for rows l < L and columns c < C. col_mult (C) carries SmoothQuant's
// per-channel division (pass 1/s_c). q may not alias x.
using QuantizeF32ToS8Fn = void (*)(const float* x, int64_t L, int64_t C, int64_t ldx,
                                   float inv_scale, const float* col_mult, int8_t* q,
                                   int64_t ldq);

// Fused residual add + RMSNorm + quantize (Quamba's first quantization point, one row):
//   residual (n) += h (n) if h != nullptr;  r = residual
//   y = fl(fl(r * inv_rms) * w),  inv_rms = fl(1 / sqrt(sum(r^2)/n + eps)), sum in double
//   static  (inv_scale > 0):  q = RoundS8(fl(y * inv_scale)); returns 1 / inv_scale
//   dynamic (inv_scale <= 0): s = fl(max(max_i |y_i|, kMinAbsMax) / 127);
//                             q = RoundS8(fl(y * fl(1 / s))); returns s (per-token baseline).
// y is never stored. q (n).
using AddRmsNormQuantFn = float (*)(float* residual, const float* h, const float* w, int64_t n,
                                    float eps, float inv_scale, int8_t* q);

// The int8 GEMMs (GemmS8S8ToS32 / ToS8 / ToF32) are GemmFn entries of the KernelTable: see
// GemmArgs in kernels.h for their operands and epilogue.

// Int8 depthwise causal conv1d + bias + SiLU (spec §2.3 #4-5, csrc/causal_conv1d quant kernel):
//   acc[t, c] = sum_{k<d_conv} w[k, c] * xin[t - (d_conv-1) + k, c]          (int32, exact)
//   v = acc * sa[c] + bias[c]                       (fp32, the SIMD kernels fuse it into one FMA)
//   y_f32 = SiLU(v)  or  y = RoundS8(fl(SiLU(v) * iy[c]))
// with the scalar (per-tensor, Mamba-1) factors unless a per-channel array is given (Quamba2's
// x / B / C slices with their own input, weight, bias and output scales, spec §2.5 #3-4):
//   sa[c]   = scale_acc ? scale_acc[c] : fl(scale_w * scale_x)
//   bias[c] = bias_f32 ? bias_f32[c] : b ? fl(scale_b * b[c]) : 0
//   iy[c]   = inv_scale_y_ch ? inv_scale_y_ch[c] : inv_scale_y
// xin[-j] for j = 1..d_conv-1 is state[(d_conv-1) - j, c] (previous int8 inputs, oldest first;
// zeros for a new sequence); on return state holds the last d_conv-1 inputs. Channels
// [c_begin, c_end); L = 1 is the decode step.
struct Conv1dS8Args {
  int64_t L = 0, C = 0;
  int d_conv = 4;                // 1..8
  const int8_t* x = nullptr;     // (L, C), row stride ldx, scale scale_x
  int64_t ldx = 0;
  float scale_x = 1.0f;
  const int8_t* w = nullptr;     // (d_conv, C), scale scale_w
  float scale_w = 1.0f;
  const int8_t* b = nullptr;     // (C) or null, scale scale_b
  float scale_b = 1.0f;
  int8_t* state = nullptr;       // (d_conv-1, C), in/out, same scale as x
  int8_t* y = nullptr;           // (L, C), row stride ldy: int8 output (when y_f32 is null)
  float* y_f32 = nullptr;        // (L, C), row stride ldy: float output instead, if non-null
  int64_t ldy = 0;
  float inv_scale_y = 1.0f;      // 1 / s_out for the int8 output
  // Per-channel forms; null: the scalars above.
  const float* scale_acc = nullptr;       // (C) fl(s_w[c] * s_x[c])
  const float* bias_f32 = nullptr;        // (C) float bias, e.g. fl(s_b[c] * b[c]); b is ignored
  const float* inv_scale_y_ch = nullptr;  // (C) 1 / s_out[c] for the int8 output
};
using CausalConv1dSiluS8Fn = void (*)(const Conv1dS8Args& a, int64_t c_begin, int64_t c_end);

// Selective scan with int8 inputs (spec §2.3 #10-12, quant_sscan_fwd_kernel): exactly the float
// recurrence of kernels.h ScanArgs (including its `layout` addressing) after in-kernel
// dequantisation v = fl(scale * float(q)) of u, delta, B, C, z. delta_bias, A, D are float
// (dequantised once at load). State fp32 carried in and out; y fp32 = (sum_n h C + D u) * SiLU(z)
// (no gate if z is null).
struct ScanS8Args {
  int64_t L = 0, d_inner = 0, d_state = 0;
  const int8_t* u = nullptr;          // (L, d_inner), stride ldu
  int64_t ldu = 0;
  float scale_u = 1.0f;
  const int8_t* delta = nullptr;      // (L, d_inner), stride ld_delta; dt_proj output, pre-bias
  int64_t ld_delta = 0;
  float scale_delta = 1.0f;
  const float* delta_bias = nullptr;  // (d_inner)
  const float* A = nullptr;           // (d_inner, d_state) = -exp(A_log)
  const int8_t* B = nullptr;          // (L, d_state), stride ld_bc
  const int8_t* C = nullptr;          // (L, d_state), stride ld_bc
  int64_t ld_bc = 0;
  float scale_B = 1.0f, scale_C = 1.0f;  // Mamba-1: both = the x_proj output scale
  const float* D = nullptr;           // (d_inner)
  const int8_t* z = nullptr;          // (L, d_inner), stride ldz; may be null
  int64_t ldz = 0;
  float scale_z = 1.0f;
  float* state = nullptr;             // (d_inner, d_state), in/out
  float* y = nullptr;                 // (L, d_inner), stride ldy
  int64_t ldy = 0;
  ScanLayout layout;                  // default: Mamba-1 (the shapes above)
};
using SelectiveScanS8Fn = void (*)(const ScanS8Args& a, int64_t c_begin, int64_t c_end);

// Walsh-Hadamard transform of each row, n = K * 2^k with K in {1, 12, 40} (HadamardSizeOk):
// H_n = (H_K (x) H_{2^k}) / sqrt(n) acting on element i = c * 2^k + j (c < K, j < 2^k): the
// Sylvester transform inside each of the K contiguous chunks (butterfly stages h = 1, 2, 4, ...),
// then H_K across chunks (sum over c' ascending), then one multiply.
//   f32: x (L, n) rows of stride ldx, in place: x <- fl(t * fl(1/sqrt(n))), t = the unnormalised
//        transform.
//   s8:  q (L, n) stride ldq = RoundS8(fl(t * fl(inv_scale * fl(1/sqrt(n))))); x unchanged.
using HadamardF32Fn = void (*)(float* x, int64_t L, int64_t n, int64_t ldx);
using HadamardF32ToS8Fn = void (*)(const float* x, int64_t L, int64_t n, int64_t ldx,
                                   float inv_scale, int8_t* q, int64_t ldq);

// Hadamard sizes: n = K * 2^k, K in {1, 12, 40}, n >= 1. Sets K and log2 of the power of two.
bool HadamardSizeOk(int64_t n, int* K = nullptr, int* log2_pow2 = nullptr);
// The K x K +-1 matrix (row-major, K in {1, 12, 40}) used across chunks: H_12 = Paley II for
// q = 5 (first row +-++++++++++), H_40 = H_2 (x) Paley I for q = 19, generated by the rules of
// Dao-AILab/fast-hadamard-transform csrc/code_gen.py (had_12_paley, had_40_tpal); see
// docs/numerics.md. QM_CHECKs K.
const int8_t* HadamardFactor(int K);

}  // namespace quamba::kernels
