// Portable int8 kernels (kernels/q8.h contracts), no intrinsics: the production fallback on any
// CPU and the per-entry default of every ISA's table.
// Fills the int8 entries (generic::FillTable calls it).
#pragma once

#include "kernels/kernels.h"

namespace quamba::kernels::generic {

void QuantizeF32ToS8(const float* x, int64_t L, int64_t C, int64_t ldx, float inv_scale,
                     const float* col_mult, int8_t* q, int64_t ldq);
float AddRmsNormQuant(float* residual, const float* h, const float* w, int64_t n, float eps,
                      float inv_scale, int8_t* q);
void GemmS8S8ToS32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S8ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S8ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
// S8 x S4 (q4_generic.cc): also the fallback of the SIMD versions for groups they do not tile.
void GemmS8S4ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmS8S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void GemmF32S4ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end);
void CausalConv1dSiluS8(const Conv1dS8Args& a, int64_t c_begin, int64_t c_end);
void SelectiveScanS8(const ScanS8Args& a, int64_t c_begin, int64_t c_end);
void HadamardF32(float* x, int64_t L, int64_t n, int64_t ldx);
void HadamardF32ToS8(const float* x, int64_t L, int64_t n, int64_t ldx, float inv_scale, int8_t* q,
                     int64_t ldq);

void FillQ8Table(KernelTable* t);

}  // namespace quamba::kernels::generic
