// Tests of the MatMul kernels (f32 / f16 / bf16 weights) on every available ISA against the
// float64 oracles in kernels/ref: remainder sweeps over K, M and the output slice, cache-block
// boundaries, strides and misalignment, and the real Mamba projection shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

namespace quamba::kernels {
namespace {

using testing::AssertClose;
using testing::Buffer;
using testing::kU;
using testing::Rng;
using testing::Salt;

// Tolerance: |y - ref| <= (K + 2) * u * sum_k |x_k w_k|. Weights widen to f32 exactly and each
// product is fused into an fp32 accumulation; summing K terms in any order in fp32 errs by at
// most (K - 1) u sum|terms| + O(u^2) (Higham, Accuracy and Stability, 2nd ed., eq. 4.4). No
// smaller depth holds for every kernel: the packed GEMM sums each output in one lane over all K.
// The + 2 absorbs the O(u^2) terms and a final rounding. Small-K sweeps keep it tight enough to
// expose a dropped or duplicated term.
constexpr double kDotSlackTerms = 2;

// Sentinel written around the output slice: a kernel that writes outside [n_begin, n_end) or
// past M rows changes it.
constexpr float kSentinel = -12345.5f;

struct MatMulCase {
  int64_t M = 1, K = 1, n_begin = 0, n_end = 1;
  int64_t ldx_pad = 0;                               // ldx = K + ldx_pad
  int64_t ldy_pad = 0;                               // ldy = n_end + ldy_pad
  int64_t x_offset = 0, w_offset = 0, y_offset = 0;  // element offsets (misalignment)
};

void RunMatMulCase(Isa isa, DType wt, const MatMulCase& c) {
  const int64_t ldx = c.K + c.ldx_pad, ldy = c.n_end + c.ldy_pad;
  SCOPED_TRACE(::testing::Message()
               << DTypeName(wt) << " M=" << c.M << " K=" << c.K << " n=[" << c.n_begin << ","
               << c.n_end << ") ldx=" << ldx << " ldy=" << ldy << " offsets x" << c.x_offset << " w"
               << c.w_offset << " y" << c.y_offset);
  Rng rng(Salt({static_cast<int>(wt), c.M, c.K, c.n_begin, c.n_end, ldx, ldy}));

  // x: the K used columns random, the padding NaN (a kernel reading past K would poison y).
  Buffer<float> xb(c.M * ldx + c.x_offset);
  float* x = xb.data() + c.x_offset;
  for (int64_t m = 0; m < c.M; ++m) {
    rng.Fill(x + m * ldx, c.K, -1.0f, 1.0f);
    for (int64_t k = c.K; k < ldx; ++k) x[m * ldx + k] = NAN;
  }

  // W: only rows [n_begin, n_end) are initialised; the kernel must read no others.
  const int64_t w_elems = c.n_end * c.K + c.w_offset;
  Buffer<float> wf(wt == DType::kF32 ? w_elems : 0);
  Buffer<uint16_t> wh(wt == DType::kF32 ? 0 : w_elems);
  const void* w = nullptr;
  if (wt == DType::kF32) {
    float* p = wf.data() + c.w_offset;
    rng.Fill(p + c.n_begin * c.K, (c.n_end - c.n_begin) * c.K, -1.0f, 1.0f);
    w = p;
  } else {
    uint16_t* p = wh.data() + c.w_offset;
    for (int64_t i = c.n_begin * c.K; i < c.n_end * c.K; ++i) {
      const float v = rng.Uniform(-1.0f, 1.0f);
      p[i] = wt == DType::kF16 ? F32ToF16(v) : F32ToBF16(v);
    }
    w = p;
  }

  Buffer<float> yb(c.M * ldy + c.y_offset);
  float* y = yb.data() + c.y_offset;
  for (int64_t i = 0; i < c.M * ldy; ++i) y[i] = kSentinel;

  WeightDesc wd;
  wd.format = FloatWeightFormat(wt);
  wd.data = w;
  wd.rows = c.n_end;
  wd.cols = c.K;
  GemmArgs g;
  g.M = c.M;
  g.K = c.K;
  g.x = x;
  g.ldx = ldx;
  g.w = &wd;
  g.y = y;
  g.ldy = ldy;
  const GemmFn f = KernelsFor(isa).Gemm(NumType::kF32, wd, NumType::kF32);
  ASSERT_NE(f, nullptr) << DTypeName(wt);
  f(g, c.n_begin, c.n_end);

  // The oracle writes a compact (M, cols) result: W offset to row n_begin, columns [0, cols).
  const int64_t cols = c.n_end - c.n_begin;
  std::vector<double> yref(c.M * cols), abs_dot(c.M * cols);
  switch (wt) {
    case DType::kF32:
      ref::MatMulF32(x, c.M, c.K, ldx, static_cast<const float*>(w) + c.n_begin * c.K, 0, cols,
                     yref.data(), cols, abs_dot.data());
      break;
    case DType::kF16:
      ref::MatMulF16(x, c.M, c.K, ldx, static_cast<const uint16_t*>(w) + c.n_begin * c.K, 0, cols,
                     yref.data(), cols, abs_dot.data());
      break;
    default:
      ref::MatMulBF16(x, c.M, c.K, ldx, static_cast<const uint16_t*>(w) + c.n_begin * c.K, 0, cols,
                      yref.data(), cols, abs_dot.data());
      break;
  }
  std::vector<double> tol = abs_dot;
  for (double& t : tol) t *= (c.K + kDotSlackTerms) * kU;
  ASSERT_TRUE(
      AssertClose("matmul y", isa, testing::Region(y, c.M, ldy, c.n_begin, c.n_end), yref, tol));

  // Everything outside the slice is untouched.
  int64_t touched = 0;
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < ldy; ++n)
      if ((n < c.n_begin || n >= c.n_end) && y[m * ldy + n] != kSentinel) ++touched;
  ASSERT_EQ(touched, 0) << "elements written outside the output slice";
}

class MatMulTest : public testing::IsaTest {
 protected:
  void Run(const MatMulCase& c) {
    for (DType wt : {DType::kF32, DType::kF16, DType::kBF16}) {
      RunMatMulCase(GetParam(), wt, c);
      if (HasFatalFailure()) return;
    }
  }
  void SetUp() override {
    IsaTest::SetUp();
    trace_ = std::make_unique<::testing::ScopedTrace>(__FILE__, __LINE__, testing::ReplayHint());
  }
  void TearDown() override { trace_.reset(); }

 private:
  std::unique_ptr<::testing::ScopedTrace> trace_;
};

// Every K from 0 to 2 * 32 + 3 (32 = one 64-byte step of 16-bit weights on avx512), for the
// GEMV row counts (1..8, and 13 in row chunks) and a GEMM row count (29: 12-row tiles + 5,
// 6-row tiles + 5); a 37-column slice starting at an odd column covers the GEMV row tiles
// (2..8) and the GEMM panel widths (16, 32) with remainders.
TEST_P(MatMulTest, EveryKUpTo67) {
  for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 13, 29}) {
    for (int64_t K = 0; K <= 67; ++K) {
      Run({.M = M, .K = K, .n_begin = 1, .n_end = 38, .ldx_pad = 3, .ldy_pad = 2});
      if (HasFatalFailure()) return;
    }
  }
}

// Every output slice width 0..70 at an odd and an even start, across GEMV row counts (up to 16)
// and GEMM row counts (17, 25).
TEST_P(MatMulTest, EverySliceWidthUpTo70) {
  for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 25}) {
    for (int64_t n_begin : {0, 3}) {
      for (int64_t width = 0; width <= 70; ++width) {
        Run({.M = M, .K = 45, .n_begin = n_begin, .n_end = n_begin + width, .ldy_pad = 1});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Primes and k-block boundaries (256 avx2, 512 avx512), so the GEMM accumulates over several
// packed k blocks.
TEST_P(MatMulTest, PrimeAndBlockBoundaryK) {
  for (int64_t K : {97, 127, 255, 256, 257, 263, 511, 512, 513, 1031}) {
    for (int64_t M : {1, 3, 4, 5, 8, 17, 31}) {
      Run({.M = M, .K = K, .n_begin = 5, .n_end = 46, .ldx_pad = 1, .ldy_pad = 3});
      if (HasFatalFailure()) return;
    }
  }
}

// M beyond one packed row block (528 avx512 / 516 avx2 rows) and N beyond several packed
// column blocks (512 columns), with odd remainders.
TEST_P(MatMulTest, RowAndColumnBlockBoundaries) {
  for (int64_t M : {517, 529, 601}) {
    Run({.M = M, .K = 19, .n_begin = 3, .n_end = 74, .ldy_pad = 5});
    if (HasFatalFailure()) return;
  }
  for (int64_t M : {1, 4, 5}) {
    Run({.M = M, .K = 20, .n_begin = 7, .n_end = 4200, .ldx_pad = 2});
    if (HasFatalFailure()) return;
  }
}

// Strided (ldx > K, ldy > n_end) and misaligned (odd element offsets) x, W and y.
TEST_P(MatMulTest, StridedAndMisaligned) {
  for (int64_t M : {1, 2, 3, 4, 6, 19}) {
    for (int64_t offset : {1, 3}) {
      Run({.M = M,
           .K = 83,
           .n_begin = 2,
           .n_end = 51,
           .ldx_pad = 17,
           .ldy_pad = 9,
           .x_offset = offset,
           .w_offset = offset,
           .y_offset = offset});
      if (HasFatalFailure()) return;
    }
  }
}

// The four projections of each Mamba size, on two odd column slices (middle and end of W):
// in_proj (K=d_model, N=2 d_inner), x_proj (K=d_inner, N=dt_rank + 32), dt_proj (K=dt_rank,
// N=d_inner), out_proj (K=d_inner, N=d_model). Decode and prefill row counts on 1.4b; the
// others get M = 1 and 5; M = 512 on the two big 1.4b projections.
TEST_P(MatMulTest, MambaProjectionShapes) {
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    const int64_t d = s.d_model, di = s.d_inner(), r = s.dt_rank();
    const int64_t layers[4][2] = {{d, 2 * di}, {di, r + 32}, {r, di}, {di, d}};
    const bool big = d == 2048;
    for (const auto& kn : layers) {
      const int64_t K = kn[0], N = kn[1];
      for (int64_t M :
           big ? std::vector<int64_t>{1, 2, 3, 5, 17, 64} : std::vector<int64_t>{1, 5}) {
        Run({.M = M, .K = K, .n_begin = N / 2 - 13, .n_end = N / 2 + 14});
        if (HasFatalFailure()) return;
        Run({.M = M, .K = K, .n_begin = N - 21, .n_end = N});
        if (HasFatalFailure()) return;
      }
    }
    if (big) {
      Run({.M = 512, .K = d, .n_begin = 2 * di - 45, .n_end = 2 * di - 33});  // in_proj
      if (HasFatalFailure()) return;
      Run({.M = 512, .K = di, .n_begin = 101, .n_end = 113});  // out_proj
      if (HasFatalFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, MatMulTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
