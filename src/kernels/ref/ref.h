// Reference oracles for every op in kernels/kernels.h: slow, obvious, float64. They read the same
// float32 / f16 / bf16 inputs as the production kernels and compute in double, so the difference
// between a kernel and its oracle is the kernel's own rounding (and approximation) error only.
// Used by tests/kernels/ and never in the engine. Shapes and layouts are exactly those of
// kernels.h; outputs are double so a test can measure the error of the float result.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace quamba::kernels::ref {

// Scalar definitions, shared by the oracles and by tests that check SIMD approximations.
double Silu(double v);            // v / (1 + exp(-v))
double Softplus(double v);        // v > 20 ? v : log1p(exp(v)), the upstream threshold
double F16ToDouble(uint16_t h);   // exact IEEE binary16 decode, written independently of dtype.h
double BF16ToDouble(uint16_t b);  // exact bfloat16 decode

// y (M, [n_begin, n_end) slice of N) = x (M, K) @ W (N, K)^T in double.
// x row stride ldx, y row stride ldy (y[m*ldy + n]). When abs_dot != nullptr it receives
// sum_k |x[m,k] * W[n,k]| at the same positions (the scale of a dot product's rounding error).
void MatMulF32(const float* x, int64_t M, int64_t K, int64_t ldx, const float* w, int64_t n_begin,
               int64_t n_end, double* y, int64_t ldy, double* abs_dot = nullptr);
void MatMulF16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w,
               int64_t n_begin, int64_t n_end, double* y, int64_t ldy, double* abs_dot = nullptr);
void MatMulBF16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w,
                int64_t n_begin, int64_t n_end, double* y, int64_t ldy, double* abs_dot = nullptr);

// residual (n) += h (n) when h != nullptr (in float: a single rounding, as the kernels do), then
// y (n) = residual * (mean(residual^2) + eps)^-1/2 * w, in double.
void AddRmsNorm(float* residual, const float* h, const float* w, int64_t n, float eps, double* y);

// Depthwise causal conv1d + bias + SiLU over channels [c_begin, c_end), as kernels.h states.
// state (d_conv-1, C) float in/out (it only ever holds copies of inputs, so float is exact);
// b may be null (no bias); y (L, C) stride ldy in double.
void CausalConv1dSilu(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w,
                      const float* b, int d_conv, float* state, double* y, int64_t ldy,
                      int64_t c_begin, int64_t c_end);

// Mamba-1 selective scan over channels [c_begin, c_end), as kernels.h states, with the
// recurrence in double. Reads a's inputs; ignores a.state and a.y and uses instead
// state (d_inner, d_state) double in/out and y (L rows, stride a.ldy) double out.
void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end, double* state, double* y);

// dst (n) = src (n) decoded exactly.
void ConvertF16(const uint16_t* src, int64_t n, double* dst);
void ConvertBF16(const uint16_t* src, int64_t n, double* dst);
// SumU64Fn, one byte at a time: byte i adds byte << 8 (i % 8) (exact modulo 2^64).
uint64_t SumU64(const uint8_t* p, int64_t n);

}  // namespace quamba::kernels::ref
