// Tests of the int8 GEMM/GEMV (GemmS8S8To{S32,S8,F32}, looked up by type in the KernelTable) on
// every ISA against the exact integer oracle: accumulators bit-exact, both epilogues bit-exact
// to their float32 contract (with and without the per-output-column multiplier col) and within
// the requantisation criterion of the float64 value; M sweeps across the GEMV/GEMM switch, K
// remainders around every vector width, odd column sub-ranges, strides, per-tensor and
// per-token scales, the int32 bound, and the real Mamba projection shapes. Also: the GEMM lookup
// by (activation, weight, output) type and the 4-bit weight layout.
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
  bool col = false;  // per-output-column multiplier (kS8PerRow weights, per-column 1/s_out)
};

void RunGemmCase(Isa isa, const GemmCase& c) {
  const int64_t ldx = c.K + c.ldx_pad, ldy = c.N + c.ldy_pad;
  SCOPED_TRACE(::testing::Message() << "M=" << c.M << " N=" << c.N << " K=" << c.K << " n=["
                                    << c.n_begin << "," << c.n_end << ") ldx=" << ldx
                                    << " ldy=" << ldy << " a_stride=" << c.a_stride
                                    << " col=" << c.col);
  Rng rng(Salt({c.M, c.N, c.K, c.n_begin, c.n_end, ldx, ldy, c.a_stride, c.x_lo, c.w_lo, c.col}));
  std::vector<int8_t> x = testing::RandomS8(rng, c.M * ldx + 1, c.x_lo, c.x_hi);
  std::vector<int8_t> w = testing::RandomS8(rng, c.N * c.K + 1, c.w_lo, c.w_hi);
  std::vector<float> a(c.M + 1);
  rng.Fill(a.data(), c.M + 1, 0.5e-2f, 2e-2f);
  // Output spread of about +-150 LSB: the accumulators' standard deviation is ~5461 sqrt(K).
  const float b = 150.0f / (1.25e-2f * 5461.0f * std::sqrt(static_cast<float>(c.K) + 1.0f));
  // Per-column multipliers spanning a factor 4 (per-row weight scales over 1 / s_out).
  std::vector<float> col(c.N + 1);
  rng.Fill(col.data(), c.N + 1, 0.5f, 2.0f);

  WeightDesc wd;
  wd.format = c.col ? WeightFormat::kS8PerRow : WeightFormat::kS8PerTensor;
  wd.data = w.data();
  wd.rows = c.N;
  wd.cols = c.K;
  wd.scales = c.col ? col.data() : nullptr;
  GemmArgs g;
  g.M = c.M;
  g.K = c.K;
  g.x = x.data();
  g.ldx = ldx;
  g.w = &wd;
  g.a = a.data();
  g.a_stride = c.a_stride;
  g.b = b;
  g.col = wd.scales;
  g.ldy = ldy;

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
      want8[i] = c.col ? ref::EpilogueS8Contract(acc[i], am, b, col[n])
                       : ref::EpilogueS8Contract(acc[i], am, b);
      wantf[i] = c.col ? ref::EpilogueF32Contract(acc[i], am, b, col[n])
                       : ref::EpilogueF32Contract(acc[i], am, b);
      // One more float rounding with col (fl(s_m col)): still within the 4u tie tolerance.
      v.push_back(static_cast<double>(acc[i]) * am * b * (c.col ? col[n] : 1.0f));
      tie.push_back(kEpilogueTie * std::fabs(v.back()));
    }
  }

  const KernelTable& k = KernelsFor(isa);
  std::vector<int32_t> y32(ny, -7);
  std::vector<int8_t> y8(ny, 77);
  std::vector<float> yf(ny, -3.0f);
  GemmArgs g32 = g, g8 = g, gf = g;
  g32.y = y32.data();
  g8.y = y8.data();
  gf.y = yf.data();
  k.Gemm(NumType::kS8, wd, NumType::kS32)(g32, c.n_begin, c.n_end);
  k.Gemm(NumType::kS8, wd, NumType::kS8)(g8, c.n_begin, c.n_end);
  k.Gemm(NumType::kS8, wd, NumType::kF32)(gf, c.n_begin, c.n_end);
  // Whole buffers: the sentinels outside the column range must survive.
  ASSERT_TRUE(testing::AssertExact("gemm acc", isa, y32, want32));
  ASSERT_TRUE(testing::AssertExact("gemm s8 (float32 contract)", isa, y8, want8));
  ASSERT_TRUE(testing::AssertExact("gemm f32 (float32 contract)", isa, yf, wantf));
  ASSERT_TRUE(testing::AssertRequantized(
      "gemm s8 vs float64", isa, testing::Region(y8.data(), c.M, ldy, c.n_begin, c.n_end), v,
      tie));
}

class Q8GemmTest : public testing::IsaTest {};

// K across every remainder of 4 (VNNI groups), 16/32/64 (vector widths), M across the GEMV (<= 8)
// and GEMM paths and their register-block remainders, odd column sub-ranges.
TEST_P(Q8GemmTest, ShapeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  const int64_t Ks[] = {0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
                        191, 257};
  for (bool col : {false, true}) {
    for (int64_t M : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 17, 25, 64}) {
      for (int64_t K : Ks) {
        const int64_t N = 83;
        RunGemmCase(GetParam(), {.M = M, .N = N, .K = K, .n_begin = 3,
                                 .n_end = 3 + (K % 7) * 11 + 2, .ldx_pad = K % 5, .ldy_pad = 1,
                                 .a_stride = M % 2, .col = col});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Long rows, where the decode GEMV streams one W row at a time (K >= 1024 and M <= 4 on
// AVX-512): every remainder class of its 256-byte step and 64-byte vector around the
// switch-over K, and the batched-decode M (5..8) beside it.
TEST_P(Q8GemmTest, LongRowSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  const int64_t Ks[] = {1023, 1024, 1025, 1031, 1087, 1088, 1151, 1216, 1279, 1280, 1281, 2047,
                        2111, 4099};
  for (int64_t M : {1, 2, 3, 4, 5, 8}) {
    for (int64_t K : Ks) {
      RunGemmCase(GetParam(), {.M = M, .N = 19, .K = K, .n_begin = 2, .n_end = 2 + K % 17,
                               .ldx_pad = K % 3, .ldy_pad = 2, .a_stride = K % 2,
                               .col = K % 3 == 1});
      if (HasFatalFailure()) return;
    }
  }
}

// Every column count 0..70 from odd starts (GEMV row groups and GEMM panel tails).
TEST_P(Q8GemmTest, ColumnRangeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (bool col : {false, true}) {
    for (int64_t M : {1, 3, 4, 5, 8, 9}) {
      for (int64_t count = 0; count <= 70; ++count) {
        RunGemmCase(GetParam(), {.M = M, .N = 80, .K = 67, .n_begin = 7, .n_end = 7 + count,
                                 .ldx_pad = 13, .ldy_pad = 5, .a_stride = count % 2, .col = col});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Extreme operands: all -128 and mixed extremes at the largest exact K (accumulators near
// +-2^31; the u8 x s8 trick's intermediate sums wrap modulo 2^32 and must still come out exact).
TEST_P(Q8GemmTest, Int32BoundAtMaxK) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t M : {1, 5, 8, 9}) {
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
      for (int64_t M : {1, 2, 3, 5, 8, 17, 64, 512}) {
        if (M == 512 && s.d_model != 2048) continue;  // one prefill-sized case per projection
        const int64_t nb = p.N / 3 + 1, ne = std::min(p.N, nb + (M == 512 ? 21 : 45));
        RunGemmCase(GetParam(), {.M = M, .N = p.N, .K = p.K, .n_begin = nb, .n_end = ne,
                                 .a_stride = M % 2, .col = M % 3 == 2});
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
  RunGemmCase(GetParam(), {.M = 1, .N = 3072, .K = 768, .n_begin = 0, .n_end = 3072, .col = true});
  RunGemmCase(GetParam(), {.M = 512, .N = 200, .K = 48, .n_begin = 0, .n_end = 200, .col = true});
}

// The table holds the nine GEMMs under their types and nothing else; the lookup answers every
// combination.
TEST_P(Q8GemmTest, LookupByType) {
  const KernelTable& k = KernelsFor(GetParam());
  const NumType f32 = NumType::kF32, s8 = NumType::kS8;
  const struct {
    NumType a, w, o;
  } have[] = {{f32, f32, f32}, {f32, NumType::kF16, f32}, {f32, NumType::kBF16, f32},
              {s8, s8, NumType::kS32}, {s8, s8, s8}, {s8, s8, f32},
              {s8, NumType::kS4, s8}, {s8, NumType::kS4, f32}, {f32, NumType::kS4, f32}};
  int n_have = 0;
  for (int a = 0; a < kNumNumTypes; ++a) {
    for (int w = 0; w < kNumNumTypes; ++w) {
      for (int o = 0; o < kNumNumTypes; ++o) {
        const NumType ta = static_cast<NumType>(a), tw = static_cast<NumType>(w),
                      to = static_cast<NumType>(o);
        bool want = false;
        for (const auto& h : have) want = want || (h.a == ta && h.w == tw && h.o == to);
        EXPECT_EQ(k.Gemm(ta, tw, to) != nullptr, want)
            << "Gemm(" << NumTypeName(ta) << ", " << NumTypeName(tw) << ", " << NumTypeName(to)
            << ")";
        n_have += want;
      }
    }
  }
  EXPECT_EQ(n_have, 9);
  WeightDesc w4;
  w4.format = WeightFormat::kS4Group;
  EXPECT_EQ(WeightNumType(w4.format), NumType::kS4);
  EXPECT_NE(k.Gemm(s8, w4, s8), nullptr);    // W4A8 (q4_gemm_test.cc)
  EXPECT_NE(k.Gemm(s8, w4, NumType::kF32), nullptr);
  EXPECT_NE(k.Gemm(f32, w4, f32), nullptr);  // W4A16
  WeightDesc wr;
  wr.format = WeightFormat::kS8PerRow;
  EXPECT_EQ(k.Gemm(s8, wr, s8), k.Gemm(s8, s8, s8));
  EXPECT_EQ(k.Gemm(f32, WeightDesc{.format = FloatWeightFormat(DType::kBF16)}, f32),
            k.Gemm(f32, NumType::kBF16, f32));
}

// The 4-bit layout of kernels.h, pinned by the oracle's reader: byte j of row n holds k = 2j in
// its low nibble and k = 2j + 1 in its high nibble, code - 8 times the group's scale.
TEST(S4LayoutTest, NibbleOrderOffsetAndGroupScales) {
  const int64_t N = 3, K = 256, G = 128;
  std::vector<uint8_t> q(N * K / 2);
  std::vector<float> scales(N * K / G);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = 0.5f + static_cast<float>(i);
  auto code = [](int64_t n, int64_t k) { return static_cast<int>((n * 7 + k * 5) % 16); };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < K / 2; ++j)
      q[n * K / 2 + j] = static_cast<uint8_t>(code(n, 2 * j) | (code(n, 2 * j + 1) << 4));
  WeightDesc w;
  w.format = WeightFormat::kS4Group;
  w.data = q.data();
  w.rows = N;
  w.cols = K;
  w.scales = scales.data();
  w.group = G;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      ASSERT_EQ(ref::S4Weight(w, n, k), scales[n * (K / G) + k / G] * (code(n, k) - 8.0))
          << "n=" << n << " k=" << k;
  // Extremes: code 0 -> -8 s, code 15 -> +7 s.
  q[0] = 0xF0;
  EXPECT_EQ(ref::S4Weight(w, 0, 0), -8.0 * scales[0]);
  EXPECT_EQ(ref::S4Weight(w, 0, 1), 7.0 * scales[0]);
}

INSTANTIATE_TEST_SUITE_P(Isa, Q8GemmTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
