// Weight matrices as the blocks see them: views into the mapped checkpoint.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace quamba {

// A float matrix used in place: stored dtype (F32/F16/BF16), row-major (N, K).
struct MatrixRef {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
};

// An int8 matrix (N, K) row-major with one symmetric scale: W ~= scale * q.
struct QMatrix {
  const int8_t* q = nullptr;
  int64_t rows = 0, cols = 0;
  float scale = 0;
};

}  // namespace quamba
