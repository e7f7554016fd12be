// Oracles for kernels/q8.h: exact integer arithmetic (int64) for accumulators and float64 for
// everything else, slow and obvious. Tests compare every ISA's int8 kernels with these.
// Where a q8.h contract fixes float32 products (fl(...)), the *Contract helpers replicate them
// exactly, so quantize / GEMM-epilogue / Hadamard outputs can be compared bit for bit; the other
// oracles compute the same formulas in double.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace quamba::kernels::ref {

// clamp(nearbyint(v), -128, 127) with NaN -> -128 (the q8.h rule, computed with std::nearbyint).
int8_t RoundS8(double v);

// q = RoundS8(fl(x * m[c])), m[c] = col_mult ? fl(inv_scale * col_mult[c]) : inv_scale.
void QuantizeF32ToS8(const float* x, int64_t L, int64_t C, int64_t ldx, float inv_scale,
                     const float* col_mult, int8_t* q, int64_t ldq);

// residual += h (float, as the kernels do), then in double: y = r / sqrt(mean(r^2) + eps) * w;
// static (inv_scale > 0): q = RoundS8(y * inv_scale), returns 1 / inv_scale;
// dynamic: s = max(max|y|, kMinAbsMax) / 127, q = RoundS8(y / s), returns s.
// y_out (n), if non-null, receives y (the value before the scale) for error analysis.
double AddRmsNormQuant(float* residual, const float* h, const float* w, int64_t n, float eps,
                       float inv_scale, int8_t* q, double* y_out = nullptr);

// acc[m * ldacc + n] = sum_k x[m, k] * q[n, k] exactly, n in [n_begin, n_end), for int8 x and
// weights (kS8PerTensor / kS8PerRow; the weight's scales are not applied).
void GemmS8S8(const GemmArgs& g, int64_t n_begin, int64_t n_end, int64_t* acc, int64_t ldacc);
// The kernels.h int8 epilogues on one accumulator, replicating the float32 contract exactly:
// fl(fl(float(acc)) * fl(a * b)) and RoundS8 of it; with a column multiplier col,
// fl(fl(float(acc)) * fl(fl(a * b) * col)).
float EpilogueF32Contract(int64_t acc, float a, float b);
int8_t EpilogueS8Contract(int64_t acc, float a, float b);
float EpilogueF32Contract(int64_t acc, float a, float b, float col);
int8_t EpilogueS8Contract(int64_t acc, float a, float b, float col);

// Element (n, k) of a kS4Group weight in double: scales[n * (K / group) + k / group] *
// (code - kS4Zero), the code read from the documented nibble layout (kernels.h).
double S4Weight(const WeightDesc& w, int64_t n, int64_t k);

// The S8 x S4 GEMM's t (kernels.h) on columns [n_begin, n_end), replicating its float32
// contract exactly: per group the exact integer sum, then t = fl(t + fl(scale * float(acc_g)))
// in ascending g. t_abs (optional) receives sum_g |fl(scale * acc_g)| for error bounds.
void GemmS8S4Contract(const GemmArgs& g, int64_t n_begin, int64_t n_end, float* t, int64_t ldt,
                      double* t_abs = nullptr);
// The same product in double from the dequantised weights (S4Weight): sum_k x[m, k] w[n, k].
void GemmS8S4Double(const GemmArgs& g, int64_t n_begin, int64_t n_end, double* y, int64_t ldy);
// W4A16: sum_k x[m, k] w[n, k] in double for float x; y_abs (optional) receives
// sum_k |x w| (the scale of the kernels' rounding errors).
void GemmF32S4Double(const GemmArgs& g, int64_t n_begin, int64_t n_end, double* y, int64_t ldy,
                     double* y_abs = nullptr);

// Depthwise causal conv1d + bias + SiLU in double over channels [c_begin, c_end):
// y[t*ldy + c] = SiLU(sa sum_k w x + bias) (double; sa = scale_acc[c] or s_w s_x, bias =
// bias_f32[c] or s_b b[c]), state updated as the kernels do. Ignores a.y / a.y_f32 and the
// output scale (the caller applies inv_scale_y or inv_scale_y_ch).
void CausalConv1dSiluS8(const Conv1dS8Args& a, int64_t c_begin, int64_t c_end, double* y,
                        int64_t ldy);

// Selective scan on inputs dequantised in double (scale * q), recurrence in double. Ignores
// a.state and a.y; uses state (d_inner, d_state) double in/out and y (rows of stride a.ldy).
void SelectiveScanS8(const ScanS8Args& a, int64_t c_begin, int64_t c_end, double* state,
                     double* y);

// The unnormalised Hadamard matrix of size n (H_K (x) H_{2^k}, entries +-1), row-major n x n.
// QM_CHECKs HadamardSizeOk(n).
std::vector<int8_t> HadamardMatrix(int64_t n);
// y (L, n) = x (L, n; row stride ldx) @ H^T / sqrt(n) with the dense matrix, in double.
void HadamardDense(const float* x, int64_t L, int64_t n, int64_t ldx, double* y);

}  // namespace quamba::kernels::ref
