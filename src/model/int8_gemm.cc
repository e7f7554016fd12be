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
  kernels::GemmS8Args g;
  g.M = M;
  g.K = K;
  g.x = x;
  g.ldx = ldx;
  g.w = w.q;
  g.a = a;
  g.a_stride = a_stride;
  g.b = b;
  if (y8 != nullptr) {
    q8_.gemm_s8s8_s8(g, y8, ldy, nb, ne);
  } else {
    q8_.gemm_s8s8_f32(g, yf, ldy, nb, ne);
  }
}

}  // namespace quamba
