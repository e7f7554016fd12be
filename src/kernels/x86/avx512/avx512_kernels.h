// AVX-512 (F/BW/VL/DQ) kernels. Math, shapes and layouts are those of the matching typedefs in
// kernels/kernels.h; only what differs (vector widths, blocking, approximations) is noted here.
// Declared for avx512_table.cc and the benchmarks; callers go through the KernelTable.
#pragma once

#include "kernels/kernels.h"

namespace quamba::kernels::x86::avx512 {

// M <= 4: GEMV that streams each W row once and reuses it for all M rows of x; M <= 16: that
// GEMV per chunk of 4 rows; M >= 17: packed GEMM, 12x32 register tile, W panels widened to f32
// in per-thread scratch.
void GemmF32F32ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmF32F16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmF32BF16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
// The float GEMM's packed loop nest (any M) with a kS4Rows16 weight (W4A16 prefill), packed
// straight from the layout: w = fl(scale * (code - 8)), then fp32 accumulation.
void GemmF32S4Rows16Packed(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void ConvertF16(const void* src, int64_t n, float* dst);
void ConvertBF16(const void* src, int64_t n, float* dst);
uint64_t SumU64(const uint8_t* p, int64_t n);
// gemm_s8_avx512.cc (see there for the blocking); the epilogue's col is applied per output
// (GEMV) or per vector of columns (GEMM tiles).
void GemmS8S8ToS32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S8ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S8ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S4ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmF32S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);

// Width-generic bodies (src/kernels/simd/*.inc) compiled for this ISA in simd_avx512.cc.
// AddRmsNorm / AddRmsNormQuant: sum of squares accumulated in double, as generic.
void AddRmsNorm(float* residual, const float* h, const float* w, int64_t n, float eps, float* y);
float AddRmsNormQuant(float* residual, const float* h, const float* w, int64_t n, float eps,
                      float inv_scale, int8_t* q);
// Conv: kLanes channels per vector, masked channel tail; d_conv <= 8.
void CausalConv1dSilu(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w,
                      const float* b, int d_conv, float* state, float* y, int64_t ldy,
                      int64_t c_begin, int64_t c_end);
void CausalConv1dSiluS8(const Conv1dS8Args& a, int64_t c_begin, int64_t c_end);
// Scan: kLanes channels per vector, masked channel tail; the transposed (d_state, kLanes) block
// state in registers (d_state 16, >= 32 registers) or L1 scratch; float decode with
// d_state == kLanes in row form (simd/scan.inc).
void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end);
void SelectiveScanS8(const ScanS8Args& a, int64_t c_begin, int64_t c_end);
void QuantizeF32ToS8(const float* x, int64_t L, int64_t C, int64_t ldx, float inv_scale,
                     const float* col_mult, int8_t* q, int64_t ldq);
void HadamardF32(float* x, int64_t L, int64_t n, int64_t ldx);
void HadamardF32ToS8(const float* x, int64_t L, int64_t n, int64_t ldx, float inv_scale, int8_t* q,
                     int64_t ldq);

}  // namespace quamba::kernels::x86::avx512
