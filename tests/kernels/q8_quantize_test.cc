// Tests of the int8 quantize kernels (QuantizeF32ToS8, AddRmsNormQuant) on every available ISA
// against the oracles of kernels/ref/q8_ref.h: length sweeps, strides, rounding ties, special
// values, per-channel multipliers, static and per-token dynamic scales.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/q8.h"
#include "kernels/q8_test_util.h"
#include "kernels/ref/q8_ref.h"

namespace quamba::kernels {
namespace {

using testing::kU;
using testing::Rng;
using testing::Salt;

// AddRmsNormQuant: the kernel's y = fl(fl(r * inv_rms) * w) and fl(y * inv_scale) carry three
// float roundings plus inv_rms's own (rounded from double): |v - v_ref| <= 4u |v|; doubled for
// the double sum of squares' different order. Dynamic mode adds the scale's error: absmax of
// float y (<= 3u) and the division by 127 and the reciprocal (2u): 10u in all.
constexpr double kNormStaticTie = 8 * kU;
constexpr double kNormDynamicTie = 18 * kU;
// The returned dynamic scale: max |y| (<= 3u), / 127 (u); slack x2.
constexpr double kNormScaleRel = 8 * kU;

class Q8QuantizeTest : public testing::IsaTest {};

void RunQuantizeCase(Isa isa, int64_t L, int64_t C, int64_t ldx, int64_t ldq, bool col_mult) {
  SCOPED_TRACE(::testing::Message() << "L=" << L << " C=" << C << " ldx=" << ldx
                                    << " ldq=" << ldq << " col_mult=" << col_mult);
  Rng rng(Salt({L, C, ldx, ldq, col_mult}));
  std::vector<float> x(L * ldx + 1), m(C + 1);
  rng.Fill(x.data(), static_cast<int64_t>(x.size()), -2.6f, 2.6f);  // some beyond +-127 LSB
  rng.Fill(m.data(), static_cast<int64_t>(m.size()), 0.25f, 4.0f);
  const float inv_scale = 127.0f / 2.0f * rng.Uniform(0.9f, 1.1f);
  std::vector<int8_t> q(L * ldq + 1, 77), qref(L * ldq + 1, 77);
  const float* cm = col_mult ? m.data() : nullptr;
  KernelsFor(isa).quantize_f32_s8(x.data(), L, C, ldx, inv_scale, cm, q.data(), ldq);
  ref::QuantizeF32ToS8(x.data(), L, C, ldx, inv_scale, cm, qref.data(), ldq);
  // Bit-exact (the float product is part of the contract), and nothing written past C.
  ASSERT_TRUE(testing::AssertExact("quantize q", isa, q, qref));
}

TEST_P(Q8QuantizeTest, LengthSweepWithStrides) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t C : testing::LengthSweep(70)) {
    for (int64_t L : {0, 1, 3}) {
      for (bool cm : {false, true}) {
        RunQuantizeCase(GetParam(), L, C, C + 3, C + 5, cm);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(Q8QuantizeTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    RunQuantizeCase(GetParam(), 5, s.d_model, s.d_model, s.d_model, false);
    RunQuantizeCase(GetParam(), 3, s.d_inner(), 2 * s.d_inner(), s.d_inner(), true);
    if (HasFatalFailure()) return;
  }
}

// Ties go to even, values beyond the range saturate, NaN gives -128, -0.4 gives 0.
TEST_P(Q8QuantizeTest, RoundingAndSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {0.5f,   1.5f,   2.5f,    -0.5f,  -1.5f, -2.5f,  126.5f, 127.5f,
                                -127.5f, -128.5f, 1e10f,  -1e10f, inf,   -inf,   nan,    -0.4f,
                                3.4999998f, 200.f, -129.f, 0.f,   -0.f,  65.5f,  -66.5f, 7.f};
  const std::vector<int8_t> want = {0,    2,   2,   0,   -2,  -2,  126, 127, -128, -128, 127, -128,
                                    127, -128, -128, 0,   3,   127, -128, 0,  0,   66,  -66, 7};
  std::vector<int8_t> q(x.size(), 55);
  KernelsFor(GetParam())
      .quantize_f32_s8(x.data(), 1, static_cast<int64_t>(x.size()), 0, 1.0f, nullptr, q.data(), 0);
  ASSERT_TRUE(testing::AssertExact("special values", GetParam(), q, want));
}

class Q8NormQuantTest : public testing::IsaTest {};

void RunNormCase(Isa isa, int64_t n, bool with_h, bool dynamic) {
  SCOPED_TRACE(::testing::Message() << "n=" << n << " h=" << with_h << " dynamic=" << dynamic);
  Rng rng(Salt({n, with_h, dynamic, 3}));
  std::vector<float> res(n + 1), h(n + 1), w(n + 1);
  rng.Fill(res.data(), n + 1, -3.0f, 3.0f);
  rng.Fill(h.data(), n + 1, -1.0f, 1.0f);
  rng.Fill(w.data(), n + 1, 0.5f, 1.5f);
  std::vector<float> res_ref = res;
  const float eps = 1e-5f;
  const float inv_scale = dynamic ? 0.0f : 127.0f / 2.5f;  // static: some |y| clip
  std::vector<int8_t> q(n + 1, 77), qref(n + 1, 77);
  std::vector<double> y(n + 1, 0.0);
  const float* hp = with_h ? h.data() : nullptr;
  const float s = KernelsFor(isa).add_rms_norm_quant(res.data(), hp, w.data(), n, eps,
                                                       inv_scale, q.data());
  const double s_ref =
      ref::AddRmsNormQuant(res_ref.data(), hp, w.data(), n, eps, inv_scale, qref.data(), y.data());
  // The residual update is one float add per element, as the oracle does it.
  ASSERT_TRUE(testing::AssertExact("residual", isa, res, res_ref));
  ASSERT_NEAR(s, s_ref, kNormScaleRel * s_ref) << "scale [" << IsaName(isa) << "]";
  std::vector<double> v(n), tie(n);
  for (int64_t i = 0; i < n; ++i) {
    v[i] = y[i] / s_ref;
    tie[i] = (dynamic ? kNormDynamicTie : kNormStaticTie) * std::fabs(v[i]);
  }
  ASSERT_TRUE(testing::AssertRequantized("norm q", isa, std::vector<int8_t>(q.begin(), q.end() - 1),
                                         v, tie));
  ASSERT_EQ(q[n], 77) << "wrote past n";
}

TEST_P(Q8NormQuantTest, LengthSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (int64_t n : testing::LengthSweep(70)) {
    if (n == 0) continue;
    for (bool with_h : {false, true}) {
      for (bool dynamic : {false, true}) {
        RunNormCase(GetParam(), n, with_h, dynamic);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(Q8NormQuantTest, MambaShapes) {
  SCOPED_TRACE(testing::ReplayHint());
  for (const testing::MambaShape& s : testing::kMambaShapes) {
    SCOPED_TRACE(s.name);
    for (bool dynamic : {false, true}) {
      RunNormCase(GetParam(), s.d_model, true, dynamic);
      if (HasFatalFailure()) return;
    }
  }
}

// All-zero row, dynamic: finite scale kMinAbsMax / 127 and zeros (no NaN from 0/0).
TEST_P(Q8NormQuantTest, ZeroRowDynamicGivesFiniteScale) {
  std::vector<float> res(100, 0.0f), w(100, 1.0f);
  std::vector<int8_t> q(100, 9);
  const float s = KernelsFor(GetParam())
                      .add_rms_norm_quant(res.data(), nullptr, w.data(), 100, 1e-5f, 0.0f,
                                          q.data());
  EXPECT_FLOAT_EQ(s, kMinAbsMax / 127.0f);
  ASSERT_TRUE(testing::AssertExact("zero row", GetParam(), q, std::vector<int8_t>(100, 0)));
}

INSTANTIATE_TEST_SUITE_P(Isa, Q8QuantizeTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);
INSTANTIATE_TEST_SUITE_P(Isa, Q8NormQuantTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
