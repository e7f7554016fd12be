// Op-level kernel API. Kernels know nothing of Mamba: they see matrices, vectors and recurrences.
// One KernelTable per ISA, float and int8 entries together (the int8 contracts are in q8.h), is
// filled once (dispatch.cc); the model holds a reference to the one in use. Every entry has a float64 / exact-integer oracle in kernels/ref/ and is tested against it
// on every ISA the host supports (tests/kernels/).
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

// y (M, n_end-n_begin slice of N) = x (M, K) @ W (N, K)^T, fp32 accumulation.
// x row stride ldx, y row stride ldy (y[m*ldy + n] for n in [n_begin, n_end)). W rows have
// stride K. The weight element type is in the function's name.
using MatMulFn = void (*)(const float* x, int64_t M, int64_t K, int64_t ldx, const void* w,
                          int64_t n_begin, int64_t n_end, float* y, int64_t ldy);

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

// Selective scan of Mamba-1 (selective_scan_ref with delta_softplus=True, z gate), channels
// [c_begin, c_end), state (d_inner, d_state) carried in and out:
//   dt[t,c]  = softplus(delta[t,c] + delta_bias[c])   (softplus(v) = v > 20 ? v : log1p(exp v))
//   h[c,n]   = exp(dt * A[c,n]) * h[c,n] + dt * B[t,n] * u[t,c]
//   y[t,c]   = (sum_n h[c,n] * C[t,n] + D[c] * u[t,c]) * SiLU(z[t,c])   (no gate if z null)
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
  MatMulFn matmul_f32 = nullptr;   // W float32
  MatMulFn matmul_f16 = nullptr;   // W IEEE half
  MatMulFn matmul_bf16 = nullptr;  // W bfloat16
  AddRmsNormFn add_rms_norm = nullptr;
  CausalConv1dSiluFn causal_conv1d_silu = nullptr;
  SelectiveScanFn selective_scan = nullptr;
  ConvertRowFn convert_f16 = nullptr;
  ConvertRowFn convert_bf16 = nullptr;
  SumU64Fn sum_u64 = nullptr;
  // Int8 ops (q8.h).
  QuantizeF32ToS8Fn quantize_f32_s8 = nullptr;
  AddRmsNormQuantFn add_rms_norm_quant = nullptr;
  GemmS8S8ToS32Fn gemm_s8s8_s32 = nullptr;
  GemmS8S8ToS8Fn gemm_s8s8_s8 = nullptr;
  GemmS8S8ToF32Fn gemm_s8s8_f32 = nullptr;
  CausalConv1dSiluS8Fn causal_conv1d_silu_s8 = nullptr;
  SelectiveScanS8Fn selective_scan_s8 = nullptr;
  HadamardF32Fn hadamard_f32 = nullptr;
  HadamardF32ToS8Fn hadamard_quant = nullptr;

  MatMulFn MatMulFor(DType w) const;    // QM_CHECKs that w is F32/F16/BF16
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
