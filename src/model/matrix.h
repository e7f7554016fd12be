// Weight matrices as the blocks see them: views into the mapped checkpoint.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace quamba {

// A matrix used in place by the float-activation GEMMs, row-major (N, K): F32/F16/BF16, or
// 4-bit codes (dtype U8: packed two per byte along K, kernels::kS4Group layout) with one float
// scale per row and group of `group` columns (W4A16).
struct MatrixRef {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  // U8 (4-bit codes): (rows, cols / group) scales. I8 (an int8 embedding table): one scale per
  // row, group = cols.
  const float* scales = nullptr;
  int64_t group = 0;
  // U8: the same codes and scales in the kernels' kS4Rows16 layout (repacked at load), which
  // MatMulRange runs; data and scales stay for the tools. Null: run data as it is.
  const uint8_t* q4_rows16 = nullptr;
  const float* scales_rows16 = nullptr;
  bool s4() const { return dtype == DType::kU8; }
  // Bytes of the stored matrix (codes and scales).
  uint64_t bytes() const;
};

// A weight of the int8-activation GEMMs, (N, K) row-major: int8 with one symmetric scale
// (W ~= scale * q), or (W4A8) 4-bit codes with group scales (kernels::kS4Group layout:
// W ~= scales[n, k / group] * (code - 8), and `scale` is 1: the group scales carry it, so a
// block's epilogue factor `scale * s_in / s_out` is the same expression for both).
struct QMatrix {
  const int8_t* q = nullptr;      // int8 (N, K)
  const uint8_t* q4 = nullptr;    // or 4-bit codes (N, K / 2)
  const float* scales = nullptr;  // q4: (N, K / group)
  int64_t group = 0;              // q4
  // The same codes and scales in the kernels' kS4Rows16 layout (repacked at load: one 64-byte
  // load feeds 16 rows), which the kernels run; q4 and scales stay for the simulation and the
  // tools. Null: run q4 as it is.
  const uint8_t* q4_rows16 = nullptr;
  const float* scales_rows16 = nullptr;
  int64_t rows = 0, cols = 0;
  float scale = 0;
  // Per output row n, a factor of the GEMM epilogue (kernels.h GemmArgs::col), or null: Mamba-2's
  // in_proj carries fl(s_w[slice(n)] / s_out[slice(n)]) for its z | x | B | C | dt slices.
  const float* col = nullptr;
  bool s4() const { return q4 != nullptr; }
  // The data pointer that identifies the matrix (simulation grids are keyed by it).
  const void* key() const { return s4() ? static_cast<const void*>(q4) : q; }
};

// Columns [nb, ne) of y (M, N) = x (M, K) @ W^T (row strides ldx, ldy) with the float GEMM of
// `k` for W's dtype, on the calling thread.
void MatMulRange(const kernels::KernelTable& k, const float* x, int64_t M, int64_t ldx,
                 const MatrixRef& w, float* y, int64_t ldy, int64_t nb, int64_t ne);
// The same for a float32 matrix given as a pointer (N rows of K).
void MatMulRangeF32(const kernels::KernelTable& k, const float* x, int64_t M, int64_t K,
                    int64_t ldx, const float* w, int64_t N, float* y, int64_t ldy, int64_t nb,
                    int64_t ne);

}  // namespace quamba
