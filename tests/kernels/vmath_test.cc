// Tests of the SIMD exp / softplus / SiLU approximations used by the x86 scan and conv kernels
// (through the x86_common.h row hooks) against double-precision libm, on dense sweeps of the
// ranges the kernels use. Each SIMD ISA runs where the CPU supports it (skipped otherwise).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "kernels/x86/x86_common.h"

namespace quamba::kernels {
namespace {

using testing::AssertClose;
using testing::kU;

// exp: documented bound 2 ulp of the exact result (measured 1.08 ulp, see vmath_avx512.h).
// "ulp" = 2^(floor(log2 |ref|) - 23), the float spacing at the exact result.
constexpr double kExpUlps = 2;
// avx2 flushes results below 2^-125.5 to +0 (vmath_avx2.h); avx512 rounds subnormal results
// via vscalef (absolute error <= one subnormal spacing, 1.4e-45).
constexpr double kExpAvx2FlushAbs = 1.7e-38;
constexpr double kExpSubnormalAbs = 1.5e-45;
// softplus = max(v,0) + log1p(exp(-|v|)): exp (2 ulp) feeds log1p whose derivative is < 1 and
// whose atanh series errs by ~1 ulp (division) + 0.25 ulp (truncation), then one add: 4u
// relative to the result (all terms are >= 0, so no cancellation).
constexpr double kSoftplusRelTol = 4 * kU;
// SiLU = v / (1 + exp(-v)): exp 2 ulp, then add and divide: (2 + 1 + 1) u relative. Where
// exp(-v) saturates (v < -88.7) the true result is below 1e-36 in magnitude.
constexpr double kSiluRelTol = 4 * kU;
constexpr double kSiluAbsTol = 1e-36;

struct VmathIsa {
  Isa isa;
  void (*exp_row)(const float*, int64_t, float*);
  void (*exp2_row)(const float*, int64_t, float*);
  void (*softplus_row)(const float*, int64_t, float*);
  void (*silu_row)(const float*, int64_t, float*);
};

// The row hooks of a SIMD ISA (callers skip generic, which has no vector math).
VmathIsa Hooks(Isa isa) {
  if (isa == Isa::kAvx2) {
    return {Isa::kAvx2, x86::avx2::ExpRow, x86::avx2::Exp2NonPositiveRow, x86::avx2::SoftplusRow,
            x86::avx2::SiluRow};
  }
  return {Isa::kAvx512, x86::avx512::ExpRow, x86::avx512::Exp2NonPositiveRow,
          x86::avx512::SoftplusRow, x86::avx512::SiluRow};
}

class VmathTest : public testing::IsaTest {
 protected:
  void SetUp() override {
    IsaTest::SetUp();
    if (IsSkipped()) return;
    if (GetParam() == Isa::kGeneric)
      GTEST_SKIP() << "generic has no vector math: its exp, softplus and SiLU are libm's";
  }
};

// n evenly spaced points in [lo, hi] plus the endpoints' neighbours; n is odd so that lengths
// exercise the masked tails.
std::vector<float> Sweep(double lo, double hi, int64_t n) {
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(lo + (hi - lo) * i / (n - 1));
  return x;
}

// Float spacing at |v| (normal range); 0 for v == 0, whose tolerance comes from the absolute
// floors below.
double UlpAt(double v) { return v == 0.0 ? 0.0 : std::ldexp(1.0, std::ilogb(v) - 23); }

TEST_P(VmathTest, ExpWithinTwoUlps) {
  const VmathIsa s = Hooks(GetParam());
  {
    // The scan's range (x = dt * A <= 0) and the positive side SiLU/softplus can reach.
    std::vector<float> x = Sweep(-86.5, 0.0, 400001);
    for (float v : Sweep(0.0, 88.5, 100001)) x.push_back(v);
    for (float v : {-0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 0.34657359f, -0.34657359f})
      x.push_back(v);
    std::vector<float> y(x.size());
    s.exp_row(x.data(), static_cast<int64_t>(x.size()), y.data());
    std::vector<double> expect(x.size()), tol(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      expect[i] = std::exp(static_cast<double>(x[i]));
      tol[i] = kExpUlps * UlpAt(expect[i]);
    }
    ASSERT_TRUE(AssertClose("exp", s.isa, y, expect, tol));
  }
}

TEST_P(VmathTest, ExpUnderflowAndSpecials) {
  const VmathIsa s = Hooks(GetParam());
  {
    std::vector<float> x = Sweep(-110.0, -87.0, 2001);
    std::vector<float> y(x.size());
    s.exp_row(x.data(), static_cast<int64_t>(x.size()), y.data());
    std::vector<double> expect(x.size()), tol(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      expect[i] = std::exp(static_cast<double>(x[i]));
      const double floor_abs = s.isa == Isa::kAvx2 ? kExpAvx2FlushAbs : kExpSubnormalAbs;
      tol[i] = kExpUlps * UlpAt(expect[i]) + floor_abs;
      ASSERT_GE(y[i], 0.0f) << "exp(" << x[i] << ") negative on " << IsaName(s.isa);
    }
    ASSERT_TRUE(AssertClose("exp (underflow)", s.isa, y, expect, tol));
    const float special[3] = {NAN, -INFINITY, -1e30f};
    float out[3];
    s.exp_row(special, 3, out);
    EXPECT_TRUE(std::isnan(out[0])) << IsaName(s.isa);
    EXPECT_EQ(out[1], 0.0f) << IsaName(s.isa);
    EXPECT_EQ(out[2], 0.0f) << IsaName(s.isa);
  }
}

// 2^t on t <= 0, the scan's exp(dt * A) (log2 e folded into A): same 2-ulp bound over the
// normal range; below 2^-125.5 avx2 flushes to 0 and avx512 rounds into the subnormals.
TEST_P(VmathTest, Exp2NonPositiveWithinTwoUlps) {
  const VmathIsa s = Hooks(GetParam());
  {
    std::vector<float> x = Sweep(-150.0, 0.0, 600001);
    for (float v : {-0.0f, -1e-30f, -1e-7f, -0.5f, -0.49999997f, -0.50000006f, -1e30f}) {
      x.push_back(v);
    }
    std::vector<float> y(x.size());
    s.exp2_row(x.data(), static_cast<int64_t>(x.size()), y.data());
    std::vector<double> expect(x.size()), tol(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      expect[i] = std::exp2(static_cast<double>(x[i]));
      const double floor_abs = s.isa == Isa::kAvx2 ? kExpAvx2FlushAbs : kExpSubnormalAbs;
      tol[i] = kExpUlps * UlpAt(expect[i]) + (x[i] <= -125.5f ? floor_abs : 0.0);
    }
    ASSERT_TRUE(AssertClose("exp2", s.isa, y, expect, tol));
  }
}

TEST_P(VmathTest, SoftplusMatchesUpstreamDefinition) {
  const VmathIsa s = Hooks(GetParam());
  {
    std::vector<float> x = Sweep(-100.0, 100.0, 200001);
    for (float v : {19.999998f, 20.0f, 20.000002f, -0.0f, 1e-8f, -1e-8f}) x.push_back(v);
    std::vector<float> y(x.size());
    s.softplus_row(x.data(), static_cast<int64_t>(x.size()), y.data());
    std::vector<double> expect(x.size()), tol(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      expect[i] = ref::Softplus(x[i]);
      // Below -86.99 = -125.5 ln2, exp(v) itself is under 2^-125.5, which avx2's exp flushes.
      tol[i] = kSoftplusRelTol * std::fabs(expect[i]) + (x[i] < -86.9f ? kExpAvx2FlushAbs : 0.0);
    }
    ASSERT_TRUE(AssertClose("softplus", s.isa, y, expect, tol));
  }
}

TEST_P(VmathTest, SiluWithinBound) {
  const VmathIsa s = Hooks(GetParam());
  {
    std::vector<float> x = Sweep(-120.0, 90.0, 210001);
    std::vector<float> y(x.size());
    s.silu_row(x.data(), static_cast<int64_t>(x.size()), y.data());
    std::vector<double> expect(x.size()), tol(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      expect[i] = ref::Silu(x[i]);
      tol[i] = kSiluRelTol * std::fabs(expect[i]) + kSiluAbsTol;
    }
    ASSERT_TRUE(AssertClose("silu", s.isa, y, expect, tol));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, VmathTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
