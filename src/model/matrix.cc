#include "model/matrix.h"

#include "core/check.h"

namespace quamba {

void MatMulRange(const kernels::KernelTable& k, const float* x, int64_t M, int64_t ldx,
                 const MatrixRef& w, float* y, int64_t ldy, int64_t nb, int64_t ne) {
  kernels::WeightDesc wd;
  wd.data = w.data;
  if (w.s4()) {
    const bool r16 = w.q4_rows16 != nullptr;
    wd.format = r16 ? kernels::WeightFormat::kS4Rows16 : kernels::WeightFormat::kS4Group;
    wd.data = r16 ? w.q4_rows16 : w.data;
    wd.scales = r16 ? w.scales_rows16 : w.scales;
    wd.group = w.group;
  } else {
    wd.format = kernels::FloatWeightFormat(w.dtype);
  }
  wd.rows = w.rows;
  wd.cols = w.cols;
  const kernels::GemmFn f = k.Gemm(kernels::NumType::kF32, wd, kernels::NumType::kF32);
  QM_CHECK(f != nullptr, "no float GEMM for weight dtype %s", DTypeName(w.dtype));
  kernels::GemmArgs g;
  g.M = M;
  g.K = w.cols;
  g.x = x;
  g.ldx = ldx;
  g.w = &wd;
  g.y = y;
  g.ldy = ldy;
  f(g, nb, ne);
}

uint64_t MatrixRef::bytes() const {
  if (s4()) return static_cast<uint64_t>(rows) * (cols / 2 + (cols / group) * sizeof(float));
  if (dtype == DType::kI8) return static_cast<uint64_t>(rows) * (cols + sizeof(float));
  return static_cast<uint64_t>(rows) * cols * DTypeSize(dtype);
}

void MatMulRangeF32(const kernels::KernelTable& k, const float* x, int64_t M, int64_t K,
                    int64_t ldx, const float* w, int64_t N, float* y, int64_t ldy, int64_t nb,
                    int64_t ne) {
  MatMulRange(k, x, M, ldx, MatrixRef{w, DType::kF32, N, K}, y, ldy, nb, ne);
}

}  // namespace quamba
