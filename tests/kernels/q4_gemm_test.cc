// Tests of the W4A8 GEMM (GemmS8S4To{S8,F32}: int8 activations, 4-bit group-scaled weights,
// kernels.h contract) and the W4A16 GEMM (GemmF32S4ToF32, tolerance contract) on every ISA: outputs bit-exact to the oracle that replicates the
// float32 contract (ref::GemmS8S4Contract), and the contract's t within its derived bound of
// the float64 product of the dequantised weights (ref::GemmS8S4Double). Sweeps: M across the
// decode rows (1..4 share a W load, more take further passes), K across group counts with
// group 128 (the SIMD path), 256, and 32 / 64 (the generic fallback inside the SIMD kernels),
// odd column sub-ranges, strides, per-token scales, per-column multipliers, code extremes, and
// the Mamba-1 projection shapes; each case on the file's row-major layout and (groups of a
// multiple of 16) on the engine's kS4Rows16 layout made by PackS4Rows16.
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

struct S4Case {
  int64_t M = 1, N = 16, K = 128, group = 128, n_begin = 0, n_end = 16;
  int64_t ldx_pad = 0, ldy_pad = 0, a_stride = 0;
  int code_lo = 0, code_hi = 15, x_lo = -128, x_hi = 127;
  bool col = false;
};

// Random codes in [code_lo, code_hi] and group scales over a factor 8 (as GPTQ's per-group
// absmax spreads them), drawn in that order, and their kS4Group descriptor.
struct S4Weights {
  std::vector<uint8_t> q;
  std::vector<float> scales;
  WeightDesc desc;
  // The layouts every kernel runs on: desc (the file's row-major kS4Group) and, where the group
  // allows it (a multiple of 16), the engine's load-time kS4Rows16 (PackS4Rows16) in q16, s16.
  std::vector<uint8_t> q16;
  std::vector<float> s16;
  std::vector<WeightDesc> layouts;
};
void MakeS4Weights(Rng& rng, const S4Case& c, S4Weights* w) {
  w->q.resize(c.N * c.K / 2 + 1);
  for (auto& b : w->q)
    b = static_cast<uint8_t>(rng.Int(c.code_lo, c.code_hi) | (rng.Int(c.code_lo, c.code_hi) << 4));
  const int64_t n_scales = c.N * (c.K / c.group) + 1;
  w->scales.resize(n_scales);
  rng.Fill(w->scales.data(), n_scales, 0.25e-2f, 2e-2f);
  w->desc.format = WeightFormat::kS4Group;
  w->desc.data = w->q.data();
  w->desc.rows = c.N;
  w->desc.cols = c.K;
  w->desc.scales = w->scales.data();
  w->desc.group = c.group;
  w->layouts = {w->desc};
  if (c.group % 16 != 0) return;
  w->q16.resize(S4Rows16Padded(c.N) * c.K / 2 + 1);
  w->s16.resize(S4Rows16Padded(c.N) * (c.K / c.group) + 1);
  w->layouts.push_back(PackS4Rows16(w->desc, w->q16.data(), w->s16.data()));
  const WeightDesc& pw = w->layouts.back();
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t kk = 0; kk < c.K; ++kk)
      if (S4CodeAt(pw, n, kk) != S4CodeAt(w->desc, n, kk) ||
          S4ScaleAt(pw, n, kk) != S4ScaleAt(w->desc, n, kk)) {
        ADD_FAILURE() << "PackS4Rows16 moved (" << n << ", " << kk << ")";
        return;
      }
}

void RunS4Case(Isa isa, const S4Case& c) {
  const int64_t ldx = c.K + c.ldx_pad, ldy = c.N + c.ldy_pad, ng = c.K / c.group;
  SCOPED_TRACE(::testing::Message() << "M=" << c.M << " N=" << c.N << " K=" << c.K << " group="
                                    << c.group << " n=[" << c.n_begin << "," << c.n_end
                                    << ") ldx=" << ldx << " ldy=" << ldy
                                    << " a_stride=" << c.a_stride << " col=" << c.col);
  Rng rng(Salt({c.M, c.N, c.K, c.group, c.n_begin, c.n_end, ldx, ldy, c.a_stride, c.code_lo,
                c.x_lo, c.col}));
  std::vector<int8_t> x = testing::RandomS8(rng, c.M * ldx + 1, c.x_lo, c.x_hi);
  S4Weights sw;
  MakeS4Weights(rng, c, &sw);
  const WeightDesc& wd = sw.desc;
  std::vector<float> a(c.M + 1);
  rng.Fill(a.data(), c.M + 1, 0.5e-2f, 2e-2f);
  std::vector<float> col(c.N + 1);
  rng.Fill(col.data(), c.N + 1, 0.5f, 2.0f);
  // Output spread of about +-100 LSB: t's standard deviation is ~1e-2 * 74 * 4.6 * sqrt(K).
  const float b = 100.0f / (1.25e-2f * 1e-2f * 340.0f * std::sqrt(static_cast<float>(c.K) + 1));

  GemmArgs g;
  g.M = c.M;
  g.K = c.K;
  g.x = x.data();
  g.ldx = ldx;
  g.w = &wd;
  g.a = a.data();
  g.a_stride = c.a_stride;
  g.b = b;
  g.col = c.col ? col.data() : nullptr;
  g.ldy = ldy;

  const int64_t ny = c.M * ldy + 1;
  std::vector<float> t(ny), t_want;
  std::vector<double> t_abs(ny), exact(ny);
  ref::GemmS8S4Contract(g, c.n_begin, c.n_end, t.data(), ldy, t_abs.data());
  ref::GemmS8S4Double(g, c.n_begin, c.n_end, exact.data(), ldy);
  std::vector<int8_t> want8(ny, 77);
  std::vector<float> wantf(ny, -3.0f);
  std::vector<double> t_exact, t_tol;
  for (int64_t m = 0; m < c.M; ++m) {
    const float s = a[m * c.a_stride] * b;
    for (int64_t n = c.n_begin; n < c.n_end; ++n) {
      const int64_t i = m * ldy + n;
      const float cm = c.col ? s * col[n] : s;
      wantf[i] = t[i] * cm;
      want8[i] = ref::RoundS8(static_cast<double>(wantf[i]));
      // The contract's t against float64: each term rounds once (u |term|) and each of the
      // ng - 1 additions once (u |partial sum| <= u sum|terms|): (ng + 1) u sum|terms|.
      t_want.push_back(t[i]);
      t_exact.push_back(exact[i]);
      t_tol.push_back(static_cast<double>(ng + 1) * kU * t_abs[i] + 1e-30);
    }
  }
  ASSERT_TRUE(testing::AssertClose("contract t vs float64", isa, t_want, t_exact, t_tol));

  // Both layouts (S4Weights), which must give the same bits.
  ASSERT_FALSE(::testing::Test::HasFailure());
  const KernelTable& k = KernelsFor(isa);
  for (const WeightDesc& lw : sw.layouts) {
    SCOPED_TRACE(lw.format == WeightFormat::kS4Rows16 ? "kS4Rows16" : "kS4Group");
    const GemmFn to8 = k.Gemm(NumType::kS8, lw, NumType::kS8);
    const GemmFn tof = k.Gemm(NumType::kS8, lw, NumType::kF32);
    ASSERT_NE(to8, nullptr);
    ASSERT_NE(tof, nullptr);
    std::vector<int8_t> y8(ny, 77);
    std::vector<float> yf(ny, -3.0f);
    GemmArgs g8 = g, gf = g;
    g8.w = gf.w = &lw;
    g8.y = y8.data();
    gf.y = yf.data();
    to8(g8, c.n_begin, c.n_end);
    tof(gf, c.n_begin, c.n_end);
    // Whole buffers: the sentinels outside the column range must survive.
    ASSERT_TRUE(testing::AssertExact("w4a8 f32 (float32 contract)", isa, yf, wantf));
    ASSERT_TRUE(testing::AssertExact("w4a8 s8 (float32 contract)", isa, y8, want8));
  }
}

class Q4GemmTest : public testing::IsaTest {};

// Group counts 0..5 and 8 at group 128 (the SIMD path), M across the 4-row passes and their
// remainders, odd column ranges and strides.
TEST_P(Q4GemmTest, ShapeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (bool col : {false, true}) {
    for (int64_t M : {0, 1, 2, 3, 4, 5, 7, 8, 9}) {
      for (int64_t ng : {0, 1, 2, 3, 5, 8}) {
        const int64_t K = 128 * ng, N = 37;
        RunS4Case(GetParam(), {.M = M, .N = N, .K = K, .group = 128, .n_begin = 2 + ng % 3,
                               .n_end = N - (M % 4), .ldx_pad = M % 3 * 5, .ldy_pad = 3,
                               .a_stride = M % 2, .col = col});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Other group sizes: 256 (two 128-blocks per group in the SIMD path), 32 and 64 (the generic
// fallback), 2 (the smallest).
TEST_P(Q4GemmTest, GroupSizes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t group : {2, 32, 64, 256, 384}) {
    for (int64_t M : {1, 3, 6}) {
      RunS4Case(GetParam(), {.M = M, .N = 21, .K = group * 3, .group = group, .n_begin = 1,
                             .n_end = 20, .a_stride = 1, .col = group % 64 == 0});
      if (HasFatalFailure()) return;
    }
  }
}

// Every column count 0..40 from an odd start.
TEST_P(Q4GemmTest, ColumnRangeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t M : {1, 4, 5}) {
    for (int64_t count = 0; count <= 40; ++count) {
      RunS4Case(GetParam(), {.M = M, .N = 48, .K = 256, .n_begin = 5, .n_end = 5 + count,
                             .ldx_pad = 7, .ldy_pad = 1, .a_stride = count % 2});
      if (HasFatalFailure()) return;
    }
  }
}

// Code and activation extremes: all codes 0 (-8) or 15 (+7) against x = -128 or 127 (the
// largest group sums: 1024 * 128 in magnitude), and codes that cancel the offset exactly (8).
TEST_P(Q4GemmTest, Extremes) {
  SCOPED_TRACE(testing::ReplayHint());
  const int64_t K = 1024;
  RunS4Case(GetParam(), {.M = 2, .N = 5, .K = K, .n_end = 5, .code_lo = 0, .code_hi = 0,
                         .x_lo = -128, .x_hi = -128});
  RunS4Case(GetParam(), {.M = 2, .N = 5, .K = K, .n_end = 5, .code_lo = 15, .code_hi = 15,
                         .x_lo = -128, .x_hi = -128});
  RunS4Case(GetParam(), {.M = 2, .N = 5, .K = K, .n_end = 5, .code_lo = 0, .code_hi = 0,
                         .x_lo = 127, .x_hi = 127});
  RunS4Case(GetParam(), {.M = 1, .N = 5, .K = K, .n_end = 5, .code_lo = 8, .code_hi = 8});
}

// The Mamba-1 projections W4A8 quantises (in_proj, out_proj; x_proj by round-to-nearest) at
// decode M on an odd window of columns.
TEST_P(Q4GemmTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    const int64_t dm = s.d_model, di = s.d_inner();
    const struct {
      int64_t N, K;
    } projs[] = {{2 * di, dm}, {dm, di}};
    for (const auto& p : projs) {
      if (p.K % 128 != 0) continue;
      for (int64_t M : {1, 8}) {
        const int64_t nb = p.N / 3 + 1;
        RunS4Case(GetParam(), {.M = M, .N = p.N, .K = p.K, .n_begin = nb, .n_end = nb + 19,
                               .a_stride = 1, .col = true});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Prefill M (> 16: per-group int8 GEMM panels of 128 W rows in the SIMD backends): M around
// the crossover and the int8 GEMM's 12-row tiles, columns over more than two panels from an
// odd start, group 128 and 256; the same bits as the contract.
TEST_P(Q4GemmTest, PrefillShapeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t M : {16, 17, 25, 40}) {
    for (int64_t K : {128, 384, 1024}) {
      RunS4Case(GetParam(), {.M = M, .N = 300, .K = K, .n_begin = 5, .n_end = 299,
                             .ldx_pad = M % 3 * 5, .ldy_pad = 3, .a_stride = M % 2,
                             .col = M % 2 == 0});
      if (HasFatalFailure()) return;
    }
  }
  RunS4Case(GetParam(), {.M = 33, .N = 70, .K = 512, .group = 256, .n_begin = 1, .n_end = 69,
                         .a_stride = 1});
  // A Mamba-1.4b out_proj slice at a prefill chunk (K = d_inner 4096: 32 groups).
  RunS4Case(GetParam(), {.M = 64, .N = 160, .K = 4096, .n_begin = 16, .n_end = 160,
                         .a_stride = 0, .col = true});
}

// ---- W4A16 (F32 x S4 -> F32): tolerance contract of kernels.h against float64.

void RunF32S4Case(Isa isa, const S4Case& c) {
  const int64_t ldx = c.K + c.ldx_pad, ldy = c.N + c.ldy_pad, ng = c.K / c.group;
  SCOPED_TRACE(::testing::Message() << "W4A16 M=" << c.M << " N=" << c.N << " K=" << c.K
                                    << " group=" << c.group << " n=[" << c.n_begin << ","
                                    << c.n_end << ")");
  Rng rng(Salt({c.M, c.N, c.K, c.group, c.n_begin, c.n_end, ldx, ldy, 16}));
  std::vector<float> x(c.M * ldx + 1);
  rng.Fill(x.data(), c.M * ldx + 1, -3.0f, 3.0f);
  S4Weights sw;
  MakeS4Weights(rng, c, &sw);
  const WeightDesc& wd = sw.desc;
  GemmArgs g;
  g.M = c.M;
  g.K = c.K;
  g.x = x.data();
  g.ldx = ldx;
  g.w = &wd;
  g.ldy = ldy;
  const int64_t ny = c.M * ldy + 1;
  std::vector<double> exact(ny), sum_abs(ny);
  ref::GemmF32S4Double(g, c.n_begin, c.n_end, exact.data(), ldy, sum_abs.data());
  // Sentinels outside the written range must survive: expected = sentinel, tolerance 0.
  std::vector<double> want(ny, -3.0), tol(ny, 0.0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = c.n_begin; n < c.n_end; ++n) {
      const int64_t i = m * ldy + n;
      want[i] = exact[i];
      // kernels.h: decode rows (M <= 16) by groups; prefill may go through float32 W.
      const double chain = c.M <= 16 ? static_cast<double>(c.group + ng + 8)
                                     : static_cast<double>(c.K + 8);
      tol[i] = chain * kU * sum_abs[i] + 1e-30;
    }
  // Both layouts (S4Weights).
  ASSERT_FALSE(::testing::Test::HasFailure());
  for (const WeightDesc& lw : sw.layouts) {
    SCOPED_TRACE(lw.format == WeightFormat::kS4Rows16 ? "kS4Rows16" : "kS4Group");
    const GemmFn fn = KernelsFor(isa).Gemm(NumType::kF32, lw, NumType::kF32);
    ASSERT_NE(fn, nullptr);
    std::vector<float> y(ny, -3.0f);
    g.w = &lw;
    g.y = y.data();
    fn(g, c.n_begin, c.n_end);
    ASSERT_TRUE(testing::AssertClose("w4a16 vs float64", isa, y, want, tol));
  }
}

TEST_P(Q4GemmTest, W4A16ShapeSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  // M 17 and 40: the prefill path (dequantized panels through the float GEMM on AVX-512); N
  // 300 spans three 128-row panels, the last partial.
  for (int64_t M : {0, 1, 2, 3, 4, 5, 8, 16, 17, 40}) {
    const int64_t N = M > 16 ? 300 : 29;
    for (int64_t ng : {0, 1, 2, 3, 5}) {
      RunF32S4Case(GetParam(), {.M = M, .N = N, .K = 128 * ng, .group = 128,
                                .n_begin = 1 + ng % 2, .n_end = N - M % 3, .ldx_pad = M % 3,
                                .ldy_pad = 2});
      if (HasFatalFailure()) return;
    }
  }
  // Prefill at a Mamba in_proj size, from a column range that starts inside a panel.
  RunF32S4Case(GetParam(), {.M = 33, .N = 2048, .K = 1024, .n_begin = 100, .n_end = 397});
  for (int64_t group : {2, 16, 32, 64, 256}) {
    RunF32S4Case(GetParam(), {.M = 3, .N = 9, .K = 3 * group, .group = group, .n_end = 9});
    if (HasFatalFailure()) return;
  }
  // Code extremes, and the Mamba-1 in_proj / out_proj of the largest size at decode M.
  RunF32S4Case(GetParam(), {.M = 2, .N = 5, .K = 1024, .n_end = 5, .code_lo = 0, .code_hi = 0});
  RunF32S4Case(GetParam(), {.M = 2, .N = 5, .K = 1024, .n_end = 5, .code_lo = 15, .code_hi = 15});
  RunF32S4Case(GetParam(), {.M = 1, .N = 2 * 5120, .K = 2560, .n_begin = 999, .n_end = 1020});
  RunF32S4Case(GetParam(), {.M = 4, .N = 2560, .K = 5120, .n_begin = 7, .n_end = 30});
}

INSTANTIATE_TEST_SUITE_P(Isa, Q4GemmTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
