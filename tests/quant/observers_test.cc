// Tests of the calibration observers (quant/observers.h): torch.quantile semantics on known and
// random data, the percentile EMA against a hand computation, minmax / per-channel abs-max, the
// scale floor for all-zero tensors, and the weight rounding rule.
#include "quant/observers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/kernel_test_util.h"

namespace quamba {
namespace {

using kernels::testing::Rng;
using kernels::testing::Salt;

std::vector<float> Iota(int64_t n, Rng* rng) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[rng->Int(0, i)]);  // shuffled
  return v;
}

// Data 0..N-1: the quantile is the float32 rank itself, exactly.
TEST(TorchQuantileTest, KnownDataIsExact) {
  SCOPED_TRACE(kernels::testing::ReplayHint());
  Rng rng(Salt({31}));
  for (int64_t n : {1, 2, 7, 1001, 100000, 786432}) {
    for (double alpha : {0.0, 0.25, 0.5, 0.9995, 0.99999, 1.0}) {
      std::vector<float> v = Iota(n, &rng);
      const float want = static_cast<float>(alpha) * static_cast<float>(n - 1);
      EXPECT_EQ(TorchQuantile(&v, alpha), want) << "n=" << n << " alpha=" << alpha;
    }
  }
  std::vector<float> v = {3.0f, 1.0f, 2.0f};
  EXPECT_EQ(TorchQuantile(&v, 0.5), 2.0f);
  v = {10.0f, 0.0f};
  EXPECT_EQ(TorchQuantile(&v, 0.75), 7.5f);  // lerp 0 -> 10 at 0.75 (the w >= 0.5 branch)
}

// Random data: nth_element selection equals a full sort followed by torch's formula.
TEST(TorchQuantileTest, MatchesSortOnRandomData) {
  SCOPED_TRACE(kernels::testing::ReplayHint());
  Rng rng(Salt({32}));
  for (int64_t n : {3, 100, 4097, 50000}) {
    std::vector<float> v(n);
    rng.Fill(v.data(), n, 0.0f, 5.0f);
    for (double alpha : {0.1, 0.5, 0.999, 0.99999}) {
      std::vector<float> s = v;
      std::sort(s.begin(), s.end());
      const float rank = static_cast<float>(alpha) * static_cast<float>(n - 1);
      const int64_t lo = static_cast<int64_t>(rank);
      const int64_t hi = static_cast<int64_t>(std::ceil(rank));
      const float w = rank - static_cast<float>(lo);
      const float want =
          w < 0.5f ? s[lo] + w * (s[hi] - s[lo]) : s[hi] - (s[hi] - s[lo]) * (1.0f - w);
      std::vector<float> c = v;
      EXPECT_EQ(TorchQuantile(&c, alpha), want) << "n=" << n << " alpha=" << alpha;
    }
  }
}

// Three samples of |x| = 0..N-1 scaled by f_k: cur_k = f_k * q; w = cur_1, then
// w += 0.01 (cur_k - w) in float32. Signs and a row stride do not matter.
TEST(PercentileObserverTest, EmaMatchesHandComputation) {
  SCOPED_TRACE(kernels::testing::ReplayHint());
  Rng rng(Salt({33}));
  const int64_t rows = 50, cols = 40, ld = 43, n = rows * cols;
  const double alpha = 0.99;
  PercentileObserver obs(alpha, 0.01);
  const float f[3] = {1.0f, 4.0f, 0.5f};
  float want = 0;
  for (int k = 0; k < 3; ++k) {
    std::vector<float> vals = Iota(n, &rng);
    std::vector<float> x(rows * ld, 1e30f);  // padding must be ignored
    for (int64_t i = 0; i < n; ++i)
      x[(i / cols) * ld + i % cols] = (i % 2 ? -1.0f : 1.0f) * vals[i] * f[k];
    obs.Observe(x.data(), rows, cols, ld);
    const float cur = static_cast<float>(alpha) * static_cast<float>(n - 1) * f[k];
    want = k == 0 ? cur : want + 0.01f * (cur - want);
    EXPECT_EQ(obs.absmax(), want) << "after sample " << k;
  }
  EXPECT_EQ(obs.samples(), 3);
  EXPECT_EQ(obs.scale(), want / 127.0f);
}

TEST(ObserversTest, AllZeroInputGivesFiniteScale) {
  std::vector<float> z(64, 0.0f);
  PercentileObserver p;
  p.Observe(z.data(), 8, 8, 8);
  MinMaxObserver m;
  m.Observe(z.data(), 8, 8, 8);
  for (float s : {p.scale(), m.scale()}) {
    EXPECT_TRUE(std::isfinite(s));
    EXPECT_GT(s, 0.0f);
    EXPECT_EQ(s, 1e-5f / 127.0f);
  }
  EXPECT_EQ(QuantizeValue(0.0f, p.scale()), 0);
}

TEST(ObserversTest, MinMaxAndPerChannel) {
  MinMaxObserver m;
  PerChannelAbsMaxObserver pc;
  const std::vector<float> a = {1.0f, -3.0f, 2.0f, /*pad*/ 100.0f, 0.5f, 0.25f, -4.0f, 100.0f};
  const std::vector<float> b = {-5.0f, 1.0f, 0.0f, 100.0f};
  m.Observe(a.data(), 2, 3, 4);
  pc.Observe(a.data(), 2, 3, 4);
  EXPECT_EQ(m.absmax(), 4.0f);
  m.Observe(b.data(), 1, 3, 4);
  pc.Observe(b.data(), 1, 3, 4);
  EXPECT_EQ(m.absmax(), 5.0f);
  EXPECT_EQ(m.scale(), 5.0f / 127.0f);
  EXPECT_EQ(pc.absmax(), (std::vector<float>{5.0f, 3.0f, 4.0f}));
  EXPECT_EQ(pc.samples(), 2);
}

// torch.round(w / s).clamp(-128, 127): half to even, saturating.
TEST(ObserversTest, QuantizeValueRounding) {
  EXPECT_EQ(QuantizeValue(0.5f, 1.0f), 0);
  EXPECT_EQ(QuantizeValue(1.5f, 1.0f), 2);
  EXPECT_EQ(QuantizeValue(-2.5f, 1.0f), -2);
  EXPECT_EQ(QuantizeValue(300.0f, 1.0f), 127);
  EXPECT_EQ(QuantizeValue(-300.0f, 1.0f), -128);
  EXPECT_EQ(QuantizeValue(1.0f, ScaleFromAbsMax(1.0f)), 127);
  EXPECT_EQ(QuantizeValue(-1.0f, ScaleFromAbsMax(1.0f)), -127);
  EXPECT_EQ(QuantizeValue(NAN, 1.0f), -128);
}

}  // namespace
}  // namespace quamba
