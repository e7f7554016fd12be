// Portable float32 kernels: the production fallback on any CPU, no intrinsics. Written for
// clarity first; the compiler's baseline (SSE2) auto-vectorisation is all they get.
#pragma once

#include "kernels/kernels.h"

namespace quamba::kernels::generic {

void GemmF32F32ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmF32F16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmF32BF16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void AddRmsNorm(float* residual, const float* h, const float* w, int64_t n, float eps, float* y);
void CausalConv1dSilu(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w,
                      const float* b, int d_conv, float* state, float* y, int64_t ldy,
                      int64_t c_begin, int64_t c_end);
void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end);
void ConvertF16(const void* src, int64_t n, float* dst);
void ConvertBF16(const void* src, int64_t n, float* dst);
uint64_t SumU64(const uint8_t* p, int64_t n);

// Every entry of the table (float and int8).
void FillTable(KernelTable* t);

}  // namespace quamba::kernels::generic
