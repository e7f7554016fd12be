#include "model/int8_gemm.h"

namespace quamba {

void KernelInt8Gemm::Run(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                         const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                         int64_t ldy) {
  pool_.ParallelRange(w.rows, 64, [&](int64_t nb, int64_t ne) {
    RunRange(x, M, K, ldx, w, a, a_stride, b, y8, yf, ldy, nb, ne);
  });
}

void KernelInt8Gemm::RunRange(const int8_t* x, int64_t M, int64_t K, int64_t ldx,
                              const QMatrix& w, const float* a, int64_t a_stride, float b,
                              int8_t* y8, float* yf, int64_t ldy, int64_t nb, int64_t ne) {
  kernels::WeightDesc wd;
  wd.rows = w.rows;
  wd.cols = w.cols;
  wd.scale = w.scale;
  if (w.s4()) {  // W4A8: group scales in the kernel; w.scale is 1 (folded into b by the caller)
    const bool r16 = w.q4_rows16 != nullptr;
    wd.format = r16 ? kernels::WeightFormat::kS4Rows16 : kernels::WeightFormat::kS4Group;
    wd.data = r16 ? w.q4_rows16 : w.q4;
    wd.scales = r16 ? w.scales_rows16 : w.scales;
    wd.group = w.group;
  } else {
    wd.format = kernels::WeightFormat::kS8PerTensor;
    wd.data = w.q;
  }
  kernels::GemmArgs g;
  g.M = M;
  g.K = K;
  g.x = x;
  g.ldx = ldx;
  g.w = &wd;
  g.a = a;
  g.a_stride = a_stride;
  g.b = b;
  g.col = w.col;
  g.y = y8 != nullptr ? static_cast<void*>(y8) : static_cast<void*>(yf);
  g.ldy = ldy;
  q8_.Gemm(kernels::NumType::kS8, wd, y8 != nullptr ? kernels::NumType::kS8 : kernels::NumType::kF32)(
      g, nb, ne);
}

}  // namespace quamba
