// Tests of the int8 GEMM/GEMV (gemm_s8s8_{s32,s8,f32}) on every available ISA against the exact
// integer oracle: accumulators bit-exact, both epilogues bit-exact to their float32 contract
// and within the requantisation criterion of the float64 value; M sweeps across the GEMV/GEMM
// switch, K remainders around every vector width, odd column sub-ranges, strides, per-tensor
// and per-token scales, the int32 bound, and the real Mamba projection shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/q8.h"
#include "kernels/q8_test_util.h"
#include "kernels/ref/q8_ref.h"

namespace quamba::kernels {
namespace {

using testing::kU;
using testing::Rng;
using testing::Salt;

// ToS8 against the float64 value acc * a * b: the contract rounds a * b, float(acc) (exact for
// |acc| < 2^24, else u) and the product: |v_float - v| <= 3u |v| (+ slack): tie tolerance 4u.
constexpr double kEpilogueTie = 4 * kU;

struct GemmCase {
  int64_t M = 1, N = 16, K = 16, n_begin = 0, n_end = 16;
  int64_t ldx_pad = 0, ldy_pad = 0;
  int64_t a_stride = 0;
  int x_lo = -128, x_hi = 127, w_lo = -128, w_hi = 127;
};

void RunGemmCase(Isa isa, const GemmCase& c) {
  const int64_t ldx = c.K + c.ldx_pad, ldy = c.N + c.ldy_pad;
  SCOPED_TRACE(::testing::Message() << "M=" << c.M << " N=" << c.N << " K=" << c.K << " n=["
                                    << c.n_begin << "," << c.n_end << ") ldx=" << ldx
                                    << " ldy=" << ldy << " a_stride=" << c.a_stride);
  Rng rng(Salt({c.M, c.N, c.K, c.n_begin, c.n_end, ldx, ldy, c.a_stride, c.x_lo, c.w_lo}));
  std::vector<int8_t> x = testing::RandomS8(rng, c.M * ldx + 1, c.x_lo, c.x_hi);
  std::vector<int8_t> w = testing::RandomS8(rng, c.N * c.K + 1, c.w_lo, c.w_hi);
  std::vector<float> a(c.M + 1);
  rng.Fill(a.data(), c.M + 1, 0.5e-2f, 2e-2f);
  // Output spread of about +-150 LSB: the accumulators' standard deviation is ~5461 sqrt(K).
  const float b = 150.0f / (1.25e-2f * 5461.0f * std::sqrt(static_cast<float>(c.K) + 1.0f));

  GemmS8Args g;
  g.M = c.M;
  g.K = c.K;
  g.x = x.data();
  g.ldx = ldx;
  g.w = w.data();
  g.a = a.data();
  g.a_stride = c.a_stride;
  g.b = b;

  const int64_t ny = c.M * ldy + 1;
  std::vector<int64_t> acc(ny, 0);
  ref::GemmS8S8(g, c.n_begin, c.n_end, acc.data(), ldy);
  std::vector<int32_t> want32(ny, -7);
  std::vector<int8_t> want8(ny, 77);
  std::vector<float> wantf(ny, -3.0f);
  std::vector<double> v, tie;
  std::vector<int8_t> got8_region;
  for (int64_t m = 0; m < c.M; ++m) {
    const float am = a[m * c.a_stride];
    for (int64_t n = c.n_begin; n < c.n_end; ++n) {
      const int64_t i = m * ldy + n;
      ASSERT_LE(std::llabs(acc[i]), int64_t{1} << 31) << "test case overflows int32";
      want32[i] = static_cast<int32_t>(acc[i]);
      want8[i] = ref::EpilogueS8Contract(acc[i], am, b);
      wantf[i] = ref::EpilogueF32Contract(acc[i], am, b);
      v.push_back(static_cast<double>(acc[i]) * am * b);
      tie.push_back(kEpilogueTie * std::fabs(v.back()));
    }
  }

  const KernelTable& k = KernelsFor(isa);
  std::vector<int32_t> y32(ny, -7);
  std::vector<int8_t> y8(ny, 77);
  std::vector<float> yf(ny, -3.0f);
  k.gemm_s8s8_s32(g, y32.data(), ldy, c.n_begin, c.n_end);
  k.gemm_s8s8_s8(g, y8.data(), ldy, c.n_begin, c.n_end);
  k.gemm_s8s8_f32(g, yf.data(), ldy, c.n_begin, c.n_end);
  // Whole buffers: the sentinels outside the column range must survive.
  ASSERT_TRUE(testing::AssertExact("gemm acc", isa, y32, want32));
  ASSERT_TRUE(testing::AssertExact("gemm s8 (float32 contract)", isa, y8, want8));
  ASSERT_TRUE(testing::AssertExact("gemm f32 (float32 contract)", isa, yf, wantf));
  ASSERT_TRUE(testing::AssertRequantized(
      "gemm s8 vs float64", isa, testing::Region(y8.data(), c.M, ldy, c.n_begin, c.n_end), v,
      tie));
}

class Q8GemmTest : public testing::IsaTest {};

// K across every remainder of 4 (VNNI groups), 16/32/64 (vector widths), M across the GEMV (<= 4)
// and GEMM paths and their register-block remainders, odd column sub-ranges.
TEST_P(Q8GemmTest, ShapeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  const int64_t Ks[] = {0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
                        191, 257};
  for (int64_t M : {0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 17, 25, 64}) {
    for (int64_t K : Ks) {
      const int64_t N = 83;
      RunGemmCase(GetParam(), {.M = M, .N = N, .K = K, .n_begin = 3, .n_end = 3 + (K % 7) * 11 + 2,
                               .ldx_pad = K % 5, .ldy_pad = 1, .a_stride = M % 2});
      if (HasFatalFailure()) return;
    }
  }
}

// Long rows, where the decode GEMV streams one W row at a time (K >= 1024 on AVX-512): every
// remainder class of its 256-byte step and 64-byte vector around the switch-over K.
TEST_P(Q8GemmTest, LongRowSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  const int64_t Ks[] = {1023, 1024, 1025, 1031, 1087, 1088, 1151, 1216, 1279, 1280, 1281, 2047,
                        2111, 4099};
  for (int64_t M : {1, 2, 3}) {
    for (int64_t K : Ks) {
      RunGemmCase(GetParam(), {.M = M, .N = 19, .K = K, .n_begin = 2, .n_end = 2 + K % 17,
                               .ldx_pad = K % 3, .ldy_pad = 2, .a_stride = K % 2});
      if (HasFatalFailure()) return;
    }
  }
}

// Every column count 0..70 from odd starts (GEMV row groups and GEMM panel tails).
TEST_P(Q8GemmTest, ColumnRangeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t M : {1, 3, 4, 5, 9}) {
    for (int64_t count = 0; count <= 70; ++count) {
      RunGemmCase(GetParam(), {.M = M, .N = 80, .K = 67, .n_begin = 7, .n_end = 7 + count,
                               .ldx_pad = 13, .ldy_pad = 5, .a_stride = count % 2});
      if (HasFatalFailure()) return;
    }
  }
}

// Extreme operands: all -128 and mixed extremes at the largest exact K (accumulators near
// +-2^31; the u8 x s8 trick's intermediate sums wrap modulo 2^32 and must still come out exact).
TEST_P(Q8GemmTest, Int32BoundAtMaxK) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t M : {1, 5}) {
    RunGemmCase(GetParam(), {.M = M, .N = 3, .K = kGemmS8MaxK, .n_begin = 0, .n_end = 3,
                             .x_lo = -128, .x_hi = -128, .w_lo = -128, .w_hi = -128});
    RunGemmCase(GetParam(), {.M = M, .N = 3, .K = kGemmS8MaxK, .n_begin = 0, .n_end = 3,
                             .x_lo = -128, .x_hi = -128, .w_lo = 127, .w_hi = 127});
    RunGemmCase(GetParam(), {.M = M, .N = 3, .K = kGemmS8MaxK, .n_begin = 1, .n_end = 3,
                             .x_lo = 127, .x_hi = 127, .w_lo = -128, .w_hi = -128});
    if (HasFatalFailure()) return;
  }
}

// The four projections of every Mamba-1 size at decode and prefill M, on an odd window of
// output columns (the oracle is O(M K) per column) and the full width at M = 1.
TEST_P(Q8GemmTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    const int64_t dm = s.d_model, di = s.d_inner(), r = s.dt_rank();
    struct Proj {
      const char* name;
      int64_t N, K;
    };
    const Proj projs[] = {{"in_proj", 2 * di, dm}, {"x_proj", r + 32, di},
                          {"dt_proj", di, r},      {"out_proj", dm, di}};
    for (const Proj& p : projs) {
      SCOPED_TRACE(p.name);
      for (int64_t M : {1, 2, 3, 5, 17, 64, 512}) {
        if (M == 512 && s.d_model != 2048) continue;  // one prefill-sized case per projection
        const int64_t nb = p.N / 3 + 1, ne = std::min(p.N, nb + (M == 512 ? 21 : 45));
        RunGemmCase(GetParam(), {.M = M, .N = p.N, .K = p.K, .n_begin = nb, .n_end = ne,
                                 .a_stride = M % 2});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Whole-matrix cases: decode GEMV over all rows of the 130m in_proj, and a prefill of 512 tokens
// on the dt_proj shape (K = dt_rank = 48, the GEMM's short-K case), split in two ranges as
// two threads would.
TEST_P(Q8GemmTest, FullMatricesAndSplitRanges) {
  SCOPED_TRACE(testing::ReplayHint());
  RunGemmCase(GetParam(), {.M = 1, .N = 3072, .K = 768, .n_begin = 0, .n_end = 3072});
  RunGemmCase(GetParam(), {.M = 512, .N = 200, .K = 48, .n_begin = 0, .n_end = 93});
  RunGemmCase(GetParam(), {.M = 512, .N = 200, .K = 48, .n_begin = 93, .n_end = 200,
                           .a_stride = 1});
}

INSTANTIATE_TEST_SUITE_P(Isa, Q8GemmTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
