// `--simulate`: the int8 x int8 -> int32 (and W4A8 int8 x 4-bit per-group) products of the int8
// blocks done in float32 instead,
// over the same integer-grid values (x_q and W_q as floats) with the same epilogue:
//   acc = x_q @ W_q^T (a float GEMM: exact while partial sums stay below 2^24, i.e. always for
//   K * 128 * 128 < 2^24, K < 1024), y = fl(acc * fl(a[m] * b)), RoundS8 for an int8 output.
// Every quantization point upstream and downstream is the int8 block's own, so simulation and
// integer kernels agree bit for bit where the float sums are exact: the mode checks the integer
// GEMM kernels (VNNI offsets, wrap-around, requantizing epilogues) against plain float
// arithmetic end to end.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/q8.h"
#include "model/int8_gemm.h"
#include "model/matrix.h"

namespace quamba {

class SimulatedInt8Gemm final : public Int8Gemm {
 public:
  // Makes float grid copies (q, not s*q) of `matrices` (every int8 matrix the model's blocks
  // and head use); scratch for max_rows rows of up to max_k inputs and max_n_int8_out int8
  // outputs.
  SimulatedInt8Gemm(ThreadPool& pool, const kernels::KernelTable& k,
                    const kernels::KernelTable& q8, const std::vector<QMatrix>& matrices,
                    int64_t max_rows, int64_t max_k, int64_t max_n_int8_out);
  void Run(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w, const float* a,
           int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy) override;
  void RunRange(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                const float* a, int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy,
                int64_t nb, int64_t ne) override;

 private:
  const float* Grid(const QMatrix& w) const;
  // Columns [nb, ne) from x already converted to float (xf (M, K)); acc: scratch of stride ld_acc
  // for int8 outputs.
  void Columns(const float* xf, int64_t M, int64_t K, const QMatrix& w, const float* a,
               int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy, float* acc,
               int64_t ld_acc, int64_t nb, int64_t ne);
  ThreadPool& pool_;
  const kernels::KernelTable& k_;
  const kernels::KernelTable& q8_;
  // By QMatrix::key(): int8 q as floats (N, K); 4-bit code - 8 as floats (K / group, N, group).
  std::unordered_map<const void*, std::vector<float>> grid_;
  std::vector<float> x_;    // (max_rows, max_k) x as floats
  std::vector<float> acc_;  // (max_rows, max_n_int8_out) accumulators of int8-output GEMMs
};

}  // namespace quamba
