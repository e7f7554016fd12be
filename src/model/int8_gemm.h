// How a block runs its int8 GEMMs: with the integer kernels (KernelInt8Gemm), or, for
// `--simulate`, as float GEMMs over the same integer grid with the same epilogue
// (SimulatedInt8Gemm in model/simulate.h). Blocks and the lm_head call this interface only, so
// the simulation is a second implementation beside the int8 kernels, not a mode of the runtime.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/q8.h"
#include "model/matrix.h"

namespace quamba {

class Int8Gemm {
 public:
  virtual ~Int8Gemm() = default;
  // y (M, N) = epilogue(x (M, K) int8, row stride ldx, @ w^T): the kernels/q8.h GEMM contract
  // with output scale fl(a[m * a_stride] * b); int8 output into y8 (RoundS8) when non-null, else
  // float into yf. Threads split the N output columns.
  virtual void Run(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                   const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                   int64_t ldy) = 0;
  // The same for output columns [nb, ne) only, on the calling thread (for blocks that fuse a
  // GEMM with the per-channel step after it inside one parallel region).
  virtual void RunRange(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                        const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                        int64_t ldy, int64_t nb, int64_t ne) = 0;
};

// The integer kernels of `q8`.
class KernelInt8Gemm final : public Int8Gemm {
 public:
  KernelInt8Gemm(ThreadPool& pool, const kernels::KernelTable& q8) : pool_(pool), q8_(q8) {}
  void Run(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w, const float* a,
           int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy) override;
  void RunRange(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                const float* a, int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy,
                int64_t nb, int64_t ne) override;

 private:
  ThreadPool& pool_;
  const kernels::KernelTable& q8_;
};

}  // namespace quamba
