// Tests of CausalConv1dSilu on every available ISA against the float64 oracle: channel
// sub-ranges, d_conv 1..8, strides, the real Mamba shapes, and prefill == single steps.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

namespace quamba::kernels {
namespace {

using testing::AssertClose;
using testing::kU;
using testing::Rng;
using testing::Salt;

// Tolerance: the pre-activation a = b + sum_k w_k x_k is d_conv fused multiply-adds, so
// |da| <= (d_conv + 1) u S with S = |b| + sum_k |w_k x_k| (Higham eq. 4.4, + 1 for slack).
// SiLU' is bounded by 1.1, so that error passes through at most x1.1; SiLU itself is exp
// (<= 2 ulp, vmath_test), an add and a divide: <= (2 + 1 + 1) u relative, doubled to 8u for
// the approximation's slack. Results below 1e-30 in magnitude may be flushed (avx2 exp).
constexpr double kSiluRelTol = 8 * kU;
constexpr double kSiluAbsTol = 1e-30;

// prefill(L) vs L single steps: the kernels do the same operations either way; the bound is
// the upstream-style rel-L2 <= 1e-5 (style-anchors §6).
constexpr double kStepRelL2 = 1e-5;

struct ConvCase {
  int64_t L = 1, C = 16, c_begin = 0, c_end = 16;
  int d_conv = 4;
  int64_t ldx_pad = 0, ldy_pad = 0;
  bool bias = true;
};

void RunConvCase(Isa isa, const ConvCase& c) {
  const int64_t ldx = c.C + c.ldx_pad, ldy = c.C + c.ldy_pad, P = c.d_conv - 1;
  SCOPED_TRACE(::testing::Message() << "L=" << c.L << " C=" << c.C << " c=[" << c.c_begin << ","
                                    << c.c_end << ") d_conv=" << c.d_conv << " ldx=" << ldx
                                    << " ldy=" << ldy << " bias=" << c.bias);
  Rng rng(Salt({c.L, c.C, c.c_begin, c.c_end, c.d_conv, ldx, ldy, c.bias}));
  std::vector<float> x(c.L * ldx + 1), w(c.d_conv * c.C), b(c.C), state(P * c.C);
  rng.Fill(x.data(), static_cast<int64_t>(x.size()), -2.0f, 2.0f);
  rng.Fill(w.data(), static_cast<int64_t>(w.size()), -1.0f, 1.0f);
  rng.Fill(b.data(), c.C, -0.5f, 0.5f);
  rng.Fill(state.data(), static_cast<int64_t>(state.size()), -2.0f, 2.0f);
  std::vector<float> state_ref = state;
  const std::vector<float> state_in = state;
  std::vector<float> y(c.L * ldy + 1, NAN);
  std::vector<double> yref(c.L * ldy + 1, 0.0);
  const float* bp = c.bias ? b.data() : nullptr;

  KernelsFor(isa).causal_conv1d_silu(x.data(), c.L, c.C, ldx, w.data(), bp, c.d_conv, state.data(),
                                     y.data(), ldy, c.c_begin, c.c_end);
  ref::CausalConv1dSilu(x.data(), c.L, c.C, ldx, w.data(), bp, c.d_conv, state_ref.data(),
                        yref.data(), ldy, c.c_begin, c.c_end);

  // Tolerances from S = |b| + sum |w_k x_k| (x from the carried state for t - P + k < 0).
  std::vector<double> tol;
  for (int64_t t = 0; t < c.L; ++t) {
    for (int64_t ch = c.c_begin; ch < c.c_end; ++ch) {
      double s = c.bias ? std::fabs(b[ch]) : 0.0;
      for (int k = 0; k < c.d_conv; ++k) {
        const int64_t src = t - P + k;
        const float xin = src >= 0 ? x[src * ldx + ch] : state_in[(P + src) * c.C + ch];
        s += std::fabs(static_cast<double>(w[k * c.C + ch]) * xin);
      }
      tol.push_back(1.1 * (c.d_conv + 1) * kU * s + kSiluRelTol * std::fabs(yref[t * ldy + ch]) +
                    kSiluAbsTol);
    }
  }
  ASSERT_TRUE(AssertClose("conv y", isa, testing::Region(y.data(), c.L, ldy, c.c_begin, c.c_end),
                          testing::Region(yref.data(), c.L, ldy, c.c_begin, c.c_end), tol));
  // The state holds copies of inputs: exact, and untouched outside [c_begin, c_end).
  std::vector<double> state_exp(state_ref.begin(), state_ref.end());
  ASSERT_TRUE(
      AssertClose("conv state", isa, state, state_exp, std::vector<double>(state.size(), 0.0)));
  // Outputs outside the channel range stay NaN.
  for (int64_t t = 0; t < c.L; ++t) {
    for (int64_t ch = 0; ch < ldy; ++ch) {
      if (ch < c.c_begin || ch >= c.c_end) {
        ASSERT_TRUE(std::isnan(y[t * ldy + ch]))
            << "wrote outside the channel range at t=" << t << " c=" << ch;
      }
    }
  }
}

class ConvTest : public testing::IsaTest {};

// Every channel count 0..2*16+3 from an odd start, for every d_conv and a few L.
TEST_P(ConvTest, ChannelAndWidthSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int d_conv : {1, 2, 3, 4, 5, 8}) {
    for (int64_t L : {0, 1, 2, 3, 5, 9}) {
      for (int64_t count = 0; count <= 35; ++count) {
        RunConvCase(GetParam(), {.L = L,
                                 .C = 43,
                                 .c_begin = 5,
                                 .c_end = 5 + count,
                                 .d_conv = d_conv,
                                 .ldx_pad = 3,
                                 .ldy_pad = 2,
                                 .bias = count % 5 != 0});
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Mamba shapes: x is the first half of in_proj's output row (ldx = 2 d_inner), d_conv 4,
// an odd channel sub-range and the full range, decode (L=1) and prefill lengths.
TEST_P(ConvTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    const int64_t di = s.d_inner();
    for (int64_t L : {1, 3, 17, 64}) {
      RunConvCase(GetParam(), {.L = L,
                               .C = di,
                               .c_begin = di / 2 - 41,
                               .c_end = di / 2 + 66,
                               .d_conv = 4,
                               .ldx_pad = di});
      if (HasFatalFailure()) return;
    }
    RunConvCase(GetParam(),
                {.L = 5, .C = di, .c_begin = 0, .c_end = di, .d_conv = 4, .ldx_pad = di});
    if (HasFatalFailure()) return;
  }
}

// Prefill of L tokens equals L decode steps (L = 1 calls) on outputs and final state.
TEST_P(ConvTest, PrefillEqualsSingleSteps) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int d_conv : {2, 4}) {
    for (int64_t L : {1, 2, 3, 7, 40}) {
      const int64_t C = 77, c_begin = 3, c_end = 74, ldx = 2 * C;
      SCOPED_TRACE(::testing::Message() << "L=" << L << " d_conv=" << d_conv);
      Rng rng(Salt({L, d_conv, 99}));
      std::vector<float> x(L * ldx), w(d_conv * C), b(C), state0((d_conv - 1) * C);
      rng.Fill(x.data(), L * ldx, -2.0f, 2.0f);
      rng.Fill(w.data(), d_conv * C, -1.0f, 1.0f);
      rng.Fill(b.data(), C, -0.5f, 0.5f);
      rng.Fill(state0.data(), static_cast<int64_t>(state0.size()), -2.0f, 2.0f);
      std::vector<float> s_prefill = state0, s_steps = state0;
      std::vector<float> y_prefill(L * C, 0.0f), y_steps(L * C, 0.0f);
      const KernelTable& k = KernelsFor(isa);
      k.causal_conv1d_silu(x.data(), L, C, ldx, w.data(), b.data(), d_conv, s_prefill.data(),
                           y_prefill.data(), C, c_begin, c_end);
      for (int64_t t = 0; t < L; ++t) {
        k.causal_conv1d_silu(x.data() + t * ldx, 1, C, ldx, w.data(), b.data(), d_conv,
                             s_steps.data(), y_steps.data() + t * C, C, c_begin, c_end);
      }
      ASSERT_TRUE(testing::AssertRelL2("conv y prefill vs steps", isa, y_prefill,
                                       std::vector<double>(y_steps.begin(), y_steps.end()),
                                       kStepRelL2));
      ASSERT_TRUE(testing::AssertRelL2("conv state prefill vs steps", isa, s_prefill,
                                       std::vector<double>(s_steps.begin(), s_steps.end()),
                                       kStepRelL2));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, ConvTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
