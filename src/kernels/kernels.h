// Op-level kernel API. Kernels know nothing of Mamba: they see matrices, vectors and recurrences.
// One KernelTable per ISA, float and int8 entries together (the int8 contracts are in q8.h), is
// filled once (dispatch.cc); the model holds a reference to the one in use. Every entry has a
// float64 / exact-integer oracle in kernels/ref/ and is tested against it on every ISA the host
// supports (tests/kernels/).
//
// Layout conventions: activations are token-major, (L, C) with a row stride `ld` in elements
// (so a column slice of a wider matrix can be passed without a copy). Weights of linear layers
// are (N, K) row-major, as PyTorch stores nn.Linear.weight. Threading is the caller's job: each
// kernel takes the half-open output range [begin, end) it must produce and is otherwise
// single-threaded and allocation-free (except a per-thread scratch buffer grown on first use).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/q8.h"
#include "kernels/ssd.h"

namespace quamba::kernels {

enum class Isa : uint8_t { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };
constexpr int kNumIsas = 3;

const char* IsaName(Isa isa);  // "generic", "avx2", "avx512"
bool ParseIsa(const char* name, Isa* out);
// Every CPU feature the ISA's code is compiled for (cpuid) and the OS register state it needs
// (xgetbv) are present: IsaSupportedBy(isa, HostFeatures()) of kernels/cpu_features.h.
bool IsaSupported(Isa isa);
// Supported ISAs, lowest first; always contains kGeneric.
std::vector<Isa> AvailableIsas();

// ---------------------------------------------------------------------------------------------
// GEMM / GEMV: y (M, N) = x (M, K) @ W (N, K)^T with an epilogue, one entry point per
// (activation, weight, output) element type, looked up in the table (KernelTable::Gemm).

// Element types as kernel names spell them (<Op><A><W>To<Out>): kS4 = 4-bit weight codes.
enum class NumType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kS8 = 3, kS4 = 4, kS32 = 5 };
inline constexpr int kNumNumTypes = 6;
const char* NumTypeName(NumType t);  // "F32", "F16", "BF16", "S8", "S4", "S32"

// How a weight matrix is stored and scaled.
enum class WeightFormat : uint8_t {
  kF32,          // float32 (N, K)
  kF16,          // IEEE half (N, K)
  kBF16,         // bfloat16 (N, K)
  kS8PerTensor,  // int8 (N, K), w = scale * q
  kS8PerRow,     // int8 (N, K), w[n, :] = scales[n] * q[n, :] (per output channel)
  kS4Group,      // 4-bit codes, w[n, k] = scales[n * (K / group) + k / group] * (code - kS4Zero)
  kS4Rows16,     // the same codes and scales interleaved in blocks of 16 rows (PackS4Rows16)
};
// The element type a GEMM sees: kF32, kF16, kBF16, kS8 (both int8 formats) or kS4.
NumType WeightNumType(WeightFormat f);
// kF32 / kF16 / kBF16 for a float tensor dtype; QM_CHECKs the dtype.
WeightFormat FloatWeightFormat(DType t);

// 4-bit layout (kS4Group; fixed now, kernels come with the W4 issue): codes 0..15 with offset
// kS4Zero (w = scale * (code - 8)), packed two per byte along K: byte j of row n holds k = 2j in
// its low nibble and k = 2j + 1 in its high nibble; rows of K / 2 bytes (K even). On disk
// U8 (N, K/2) with F32 scales (N, K/group), group 128.
inline constexpr int kS4Zero = 8;
// Code k (0..15) of a row of 4-bit codes in that layout.
inline int S4Code(const uint8_t* row, int64_t k) {
  const uint8_t b = row[k / 2];
  return k % 2 == 0 ? (b & 0x0F) : (b >> 4);
}

// kS4Rows16, the 4-bit GEMMs' load-time layout (W4A8 and W4A16): rows in blocks of kS4BlockRows (N
// padded up to a multiple: padding rows have codes kS4Zero and scales 0). Block b holds rows
// 16b .. 16b + 15 in 8 K bytes at data + 8 K b; within it, per step s of 8 consecutive k, 64
// bytes at offset 64 s whose byte 4 r + i (r < 16, i < 4) holds code[16 b + r, 8 s + i] in its
// low nibble and code[16 b + r, 8 s + 4 + i] in its high nibble. Scales (N / 16, K / group, 16):
// scales[(b * (K / group) + g) * 16 + r]. So one 64-byte load feeds 16 rows, each 32-bit lane a
// row with 4 consecutive k (vpdpbusd's shape), and a group's sums end in the lanes of one vector
// with no horizontal reduction. group % 16 == 0 (whole pairs of steps per group).
inline constexpr int64_t kS4BlockRows = 16;
inline constexpr int64_t S4Rows16Padded(int64_t n) {
  return (n + kS4BlockRows - 1) / kS4BlockRows * kS4BlockRows;
}

struct WeightDesc {
  WeightFormat format = WeightFormat::kF32;
  const void* data = nullptr;     // (N, K) row-major, row stride K elements (kS4Group: K/2 bytes)
  int64_t rows = 0;               // N (bounds n_end)
  int64_t cols = 0;               // K
  float scale = 1.0f;             // kS8PerTensor: the tensor's scale
  const float* scales = nullptr;  // kS8PerRow: (N); kS4Group: (N, K / group); kS4Rows16 above
  int64_t group = 128;            // kS4Group, kS4Rows16: K elements per scale
};

// Code (0..15) and group scale of element (n, k) of a kS4Group or kS4Rows16 weight.
int S4CodeAt(const WeightDesc& w, int64_t n, int64_t k);
float S4ScaleAt(const WeightDesc& w, int64_t n, int64_t k);
// Rewrites a kS4Group weight (group % 16 == 0) as kS4Rows16 into `codes`
// (S4Rows16Padded(N) * K / 2 bytes) and `scales` (S4Rows16Padded(N) * K / group floats); returns
// the new descriptor (same rows, cols, group). Same values: every kernel gives the same bits on
// either layout.
WeightDesc PackS4Rows16(const WeightDesc& w, uint8_t* codes, float* scales);

// Operands of one GEMM; each kernel computes columns n in [n_begin, n_end) of y (M, N), row
// stride ldy, from all K. x's element type is the activation type, y's the output type.
//
// Float activations (F32 x F32/F16/BF16 -> F32): y = sum_k x[m, k] w[n, k], fp32 accumulation
// in an ISA-specific order, weights widened exactly. No epilogue: a and col must be null.
//
// Int8 (S8 x S8, weights kS8PerTensor or kS8PerRow): acc[m, n] = sum_k x[m, k] q[n, k] in int32,
// exact for K <= kGemmS8MaxK; with s_m = fl(a[m * a_stride] * b) and
// c_mn = col ? fl(s_m * col[n]) : s_m:
//   ToS32: y = acc                                  (a, b, col ignored: tests, custom epilogues)
//   ToS8:  y = RoundS8(fl(fl(float(acc)) * c_mn))
//   ToF32: y = fl(fl(float(acc)) * c_mn)
// a_stride 0: one static input scale; 1: per-token dynamic scales. The kernels read only
// w->data: the weight scale is the caller's, folded into b (kS8PerTensor) or passed as col
// (kS8PerRow: col = w->scales, or their product with another per-column factor such as
// 1 / s_out[n]). col null gives exactly the per-tensor epilogue. M <= 8 is the decode GEMV
// (streams each W row once); larger M the prefill GEMM (W panels packed on the fly).
//
// Int8 activations, 4-bit weights (S8 x S4, kS4Group with group G: K % G == 0, G even): per
// group g of G consecutive k, acc_g[m, n] = sum_{k in g} x[m, k] (code[n, k] - kS4Zero), exact
// in int32 (|acc_g| <= 1024 G); t[m, n] = the float32 sum over g in ascending order of
// fl(scales[n, g] * float(acc_g)), starting from 0 with one rounding per addition (no fused
// multiply-add); with s_m and c_mn as above (b holds no weight scale: the group scales do)
//   ToS8:  y = RoundS8(fl(t * c_mn))
//   ToF32: y = fl(t * c_mn)
// Identical bits on every ISA (quamba2-spec §2.7 "engine form": more exact than QQQ's int8
// expansion of the codes).
//
// Float activations, 4-bit weights (F32 x S4, W4A16): y = sum_g scales[n, g] *
// sum_{k in g} x[m, k] (code[n, k] - kS4Zero), fp32 accumulation in an ISA-specific order (each
// group's sum first, then the scaled group sums); no epilogue (a and col null). Within
// (G + K / G + 8) u sum_k |scales (code - 8) x| of the exact value (the longest chain of
// roundings: G group additions, K / G scaled sums, the products and a final reduction); for
// M > 16 (prefill) within (K + 8) u sum_k |...|: a kernel may then dequantize W to float32 (one
// rounding per weight) and run the float GEMM (K additions).
struct GemmArgs {
  int64_t M = 0, K = 0;
  const void* x = nullptr;           // (M, K), row stride ldx
  int64_t ldx = 0;
  const WeightDesc* w = nullptr;     // (N, K); K == w->cols
  // Epilogue of the integer GEMMs.
  const float* a = nullptr;          // (M), stride a_stride
  int64_t a_stride = 0;
  float b = 1.0f;
  const float* col = nullptr;        // (N) per output column, or null
  void* y = nullptr;                 // (M, N), row stride ldy
  int64_t ldy = 0;
};
using GemmFn = void (*)(const GemmArgs& g, int64_t n_begin, int64_t n_end);

// y (n) = x (n) * rsqrt(mean(x^2) + eps) * w (n). When h != nullptr, first residual += h and
// normalise the updated residual (the fused add + norm of mamba_ssm's Block). y may alias h.
using AddRmsNormFn = void (*)(float* residual, const float* h, const float* w, int64_t n,
                              float eps, float* y);

// Depthwise causal conv1d + bias + SiLU over channels [c_begin, c_end):
//   y[t, c] = SiLU(b[c] + sum_{k<d_conv} w[k, c] * xin[t - (d_conv-1) + k, c])
// where xin[-j] for j = 1..d_conv-1 is state[(d_conv-1) - j, c] (the previous inputs, oldest
// first; zeros for a new sequence). On return state holds the last d_conv-1 inputs.
// x (L, C) stride ldx; w (d_conv, C); b (C); state (d_conv-1, C); y (L, C) stride ldy.
// y must not alias x. L = 1 is the decode step.
using CausalConv1dSiluFn = void (*)(const float* x, int64_t L, int64_t C, int64_t ldx,
                                    const float* w, const float* b, int d_conv, float* state,
                                    float* y, int64_t ldy, int64_t c_begin, int64_t c_end);

// Selective scan (selective_scan_ref with delta_softplus=True, z gate), channels
// [c_begin, c_end), state (d_inner, d_state) carried in and out:
//   dt[t,c]  = softplus(delta[t,c] + delta_bias[c])   (softplus(v) = v > 20 ? v : log1p(exp v))
//   h[c,n]   = exp(dt * A[c,n]) * h[c,n] + dt * B[t,c,n] * u[t,c]
//   y[t,c]   = (sum_n h[c,n] * C[t,c,n] + D[c] * u[t,c]) * SiLU(z[t,c])   (no gate if z null)
// with A, B, C, delta, delta_bias and D addressed through `layout` (scan_layout.h): the
// defaults give Mamba-1's shapes noted below, ScanLayout::Mamba2() a Mamba-2 SSD step.
struct ScanArgs {
  int64_t L = 0, d_inner = 0, d_state = 0;
  const float* u = nullptr;           // (L, d_inner), stride ldu
  int64_t ldu = 0;
  const float* delta = nullptr;       // (L, d_inner), stride ld_delta; before bias/softplus
  int64_t ld_delta = 0;
  const float* delta_bias = nullptr;  // (d_inner)
  const float* A = nullptr;           // (d_inner, d_state) = -exp(A_log)
  const float* B = nullptr;           // (L, d_state), stride ld_bc
  const float* C = nullptr;           // (L, d_state), stride ld_bc
  int64_t ld_bc = 0;
  const float* D = nullptr;           // (d_inner)
  const float* z = nullptr;           // (L, d_inner), stride ldz; may be null
  int64_t ldz = 0;
  float* state = nullptr;             // (d_inner, d_state), in/out
  float* y = nullptr;                 // (L, d_inner), stride ldy; may alias u only if ldy == ldu
  int64_t ldy = 0;
  ScanLayout layout;                  // default: Mamba-1 (the shapes above)
};
using SelectiveScanFn = void (*)(const ScanArgs& a, int64_t c_begin, int64_t c_end);

// dst (n) = float(src (n)) for a row of an f32 / f16 / bf16 tensor (embedding lookup).
using ConvertRowFn = void (*)(const void* src, int64_t n, float* dst);

// Sum of the n / 8 little-endian uint64 words at p, plus the last n % 8 bytes as one
// zero-extended word, modulo 2^64. Its job is to read every byte as fast as the memory system
// allows: it is the read-bandwidth ceiling that `quamba bench` measures decode against. p needs
// no alignment.
using SumU64Fn = uint64_t (*)(const uint8_t* p, int64_t n);

struct KernelTable {
  Isa isa = Isa::kGeneric;
  AddRmsNormFn add_rms_norm = nullptr;
  CausalConv1dSiluFn causal_conv1d_silu = nullptr;
  SelectiveScanFn selective_scan = nullptr;
  ConvertRowFn convert_f16 = nullptr;
  ConvertRowFn convert_bf16 = nullptr;
  SumU64Fn sum_u64 = nullptr;
  // Int8 ops (q8.h).
  QuantizeF32ToS8Fn quantize_f32_s8 = nullptr;
  AddRmsNormQuantFn add_rms_norm_quant = nullptr;
  CausalConv1dSiluS8Fn causal_conv1d_silu_s8 = nullptr;
  SelectiveScanS8Fn selective_scan_s8 = nullptr;
  HadamardF32Fn hadamard_f32 = nullptr;
  HadamardF32ToS8Fn hadamard_quant = nullptr;
  // Mamba-2 (kernels/ssd.h).
  SsdFn ssd_scan = nullptr;
  SsdFn ssd_chunk = nullptr;
  GatedRmsNormFn gated_rms_norm = nullptr;

  // GEMMs by (activation, weight, output) element type, filled from the backends' type-named
  // functions (GemmF32F32ToF32, GemmF32F16ToF32, GemmF32BF16ToF32, GemmS8S8ToS32,
  // GemmS8S8ToS8, GemmS8S8ToF32, GemmS8S4ToS8, GemmS8S4ToF32, GemmF32S4ToF32). Read
  // through Gemm().
  GemmFn gemm_fns[kNumNumTypes][kNumNumTypes][kNumNumTypes] = {};

  // The kernel for that combination, or null when there is none.
  GemmFn Gemm(NumType act, NumType weight, NumType out) const;
  // Same, with the weight type of a descriptor's format.
  GemmFn Gemm(NumType act, const WeightDesc& w, NumType out) const {
    return Gemm(act, WeightNumType(w.format), out);
  }
  void SetGemm(NumType act, NumType weight, NumType out, GemmFn f);
  ConvertRowFn ConvertFor(DType w) const;  // F32 -> memcpy-based row copy
};

// The table for `isa` (QM_CHECKs IsaSupported). Entries an ISA does not specialise fall back
// to the generic ones.
const KernelTable& KernelsFor(Isa isa);
// The best supported ISA, or the one named by the QUAMBA_ISA environment variable
// (generic|avx2|avx512). Resolved once. If QUAMBA_ISA is unknown or unsupported the best table
// is returned and IsaOverrideError() says why (the CLI refuses to run then).
const KernelTable& DefaultKernels();
// Validates QUAMBA_ISA; empty string when fine, else a one-line message.
std::string IsaOverrideError();

}  // namespace quamba::kernels
