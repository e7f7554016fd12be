// GPTQ against the slow, obvious form of the same algorithm (Optimal Brain Surgeon one column at a
// time with an explicit inverse-Hessian downdate, float64), and against round-to-nearest on the
// loss it minimises. quamba2-spec §2.7; tests of the Quamba2 issue ("GPTQ").
#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace quamba {
namespace {

struct Layer {
  int64_t rows, cols, n;
  std::vector<float> w;  // (rows, cols)
  std::vector<float> x;  // (n, cols) calibration inputs
};

// Inputs with what makes GPTQ matter: correlated neighbouring channels and a few outlier
// channels (as a Mamba in_proj input has), never zero. dead: a column that is always 0.
Layer MakeLayer(int64_t rows, int64_t cols, int64_t n, uint32_t seed, int64_t dead = -1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Layer l{rows, cols, n, std::vector<float>(rows * cols), std::vector<float>(n * cols)};
  for (float& v : l.w) v = 0.05f * nd(rng);
  for (int64_t t = 0; t < n; ++t) {
    float prev = 0;
    for (int64_t k = 0; k < cols; ++k) {
      const float z = nd(rng);
      float v = 0.7f * prev + z;
      prev = v;
      if (k % 37 == 5) v *= 8;  // outlier channels
      l.x[t * cols + k] = k == dead ? 0.f : v;
    }
  }
  return l;
}

std::vector<double> Hessian(const Layer& l) {
  HessianAccumulator acc(l.cols);
  acc.Add(l.x.data(), l.n, l.cols);
  return acc.h();
}

// The reference: quantize column i, spread its error over the columns j > i with the inverse
// Hessian of the not-yet-quantized columns, then remove column i from that inverse (Schur
// downdate). Group scales from the error-updated weights at each group's first column.
W4Weights NaiveGptq(const Layer& l, const std::vector<double>& h_in, int64_t group, double damp) {
  const int64_t N = l.rows, K = l.cols;
  std::vector<double> W(l.w.begin(), l.w.end()), H = h_in;
  for (int64_t d = 0; d < K; ++d)
    if (H[d * K + d] == 0) {
      H[d * K + d] = 1;
      for (int64_t r = 0; r < N; ++r) W[r * K + d] = 0;
    }
  double mean = 0;
  for (int64_t d = 0; d < K; ++d) mean += H[d * K + d] / K;
  for (int64_t d = 0; d < K; ++d) H[d * K + d] += damp * mean;
  // Hinv = H⁻¹ by Gauss-Jordan with partial pivoting (another route than GPTQ's Cholesky).
  std::vector<double> A = H, Hinv(K * K, 0.0);
  for (int64_t i = 0; i < K; ++i) Hinv[i * K + i] = 1;
  for (int64_t c = 0; c < K; ++c) {
    int64_t p = c;
    for (int64_t r = c + 1; r < K; ++r)
      if (std::fabs(A[r * K + c]) > std::fabs(A[p * K + c])) p = r;
    for (int64_t j = 0; j < K; ++j) {
      std::swap(A[c * K + j], A[p * K + j]);
      std::swap(Hinv[c * K + j], Hinv[p * K + j]);
    }
    const double piv = A[c * K + c];
    for (int64_t j = 0; j < K; ++j) {
      A[c * K + j] /= piv;
      Hinv[c * K + j] /= piv;
    }
    for (int64_t r = 0; r < K; ++r) {
      if (r == c) continue;
      const double f = A[r * K + c];
      if (f == 0) continue;
      for (int64_t j = 0; j < K; ++j) {
        A[r * K + j] -= f * A[c * K + j];
        Hinv[r * K + j] -= f * Hinv[c * K + j];
      }
    }
  }
  W4Weights q;
  q.rows = N;
  q.cols = K;
  q.group = group;
  q.codes.assign(N * K, 0);
  q.scales.assign(N * (K / group), 0.f);
  for (int64_t i = 0; i < K; ++i) {
    if (i % group == 0)
      for (int64_t r = 0; r < N; ++r)
        q.scales[r * (K / group) + i / group] = GptqGroupScale(&W[r * K + i], group);
    const double hii = Hinv[i * K + i];
    for (int64_t r = 0; r < N; ++r) {
      const float s = q.scales[r * (K / group) + i / group];
      const uint8_t c = GptqCode(W[r * K + i], s);
      q.codes[r * K + i] = c;
      const double e = (W[r * K + i] - (c - 8) * static_cast<double>(s)) / hii;
      for (int64_t j = i + 1; j < K; ++j) W[r * K + j] -= e * Hinv[i * K + j];
    }
    for (int64_t a = i + 1; a < K; ++a)
      for (int64_t b = i + 1; b < K; ++b) Hinv[a * K + b] -= Hinv[a * K + i] * Hinv[i * K + b] / hii;
  }
  return q;
}

TEST(GptqTest, HessianIsTwiceTheMeanOuterProductInAnyBatching) {
  const Layer l = MakeLayer(1, 40, 37, 3);
  HessianAccumulator one(l.cols), parts(l.cols);
  one.Add(l.x.data(), l.n, l.cols);
  parts.Add(l.x.data(), 1, l.cols);
  parts.Add(l.x.data() + l.cols, 13, l.cols);
  parts.Add(l.x.data() + 14 * l.cols, l.n - 14, l.cols);
  EXPECT_EQ(parts.samples(), l.n);
  for (int64_t a = 0; a < l.cols; ++a)
    for (int64_t b = 0; b < l.cols; ++b) {
      double s = 0;
      for (int64_t t = 0; t < l.n; ++t)
        s += static_cast<double>(l.x[t * l.cols + a]) * l.x[t * l.cols + b];
      const double want = 2 * s / l.n;
      // Running means: a few roundings of float64 per batch; relative 1e-12 of the diagonal.
      const double tol = 1e-12 * (1 + std::fabs(one.h()[a * l.cols + a]));
      EXPECT_NEAR(one.h()[a * l.cols + b], want, tol);
      EXPECT_NEAR(parts.h()[a * l.cols + b], want, tol);
    }
}

// AddGram (a block's Σ x xᵀ computed elsewhere, as the recipe does with the float GEMM) gives the
// Add result: exactly the same running mean when the Gram is the float64 sum rounded to float.
// Tolerance: one float32 rounding of each Gram entry, 2^-24 relative of Σ|x_a x_b| <= the
// diagonals' geometric mean (Cauchy-Schwarz), over the 2 blocks.
TEST(GptqTest, HessianFromGramBlocksEqualsRowByRow) {
  const Layer l = MakeLayer(1, 40, 37, 5);
  HessianAccumulator rows(l.cols), grams(l.cols);
  rows.Add(l.x.data(), l.n, l.cols);
  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 20}, {20, l.n}}) {
    std::vector<float> g(l.cols * l.cols);
    for (int64_t a = 0; a < l.cols; ++a)
      for (int64_t c = 0; c < l.cols; ++c) {
        double s = 0;
        for (int64_t t = b; t < e; ++t)
          s += static_cast<double>(l.x[t * l.cols + a]) * l.x[t * l.cols + c];
        g[a * l.cols + c] = static_cast<float>(s);
      }
    grams.AddGram(g.data(), e - b);
  }
  EXPECT_EQ(grams.samples(), l.n);
  for (int64_t a = 0; a < l.cols; ++a)
    for (int64_t c = 0; c < l.cols; ++c) {
      const double da = rows.h()[a * l.cols + a], dc = rows.h()[c * l.cols + c];
      EXPECT_NEAR(grams.h()[a * l.cols + c], rows.h()[a * l.cols + c],
                  2 * std::ldexp(std::sqrt(da * dc), -24) + 1e-12 * (1 + da))
          << a << "," << c;
    }
}

TEST(GptqTest, GridMatchesTheSpec) {
  // s = max|w| 2/15 (values chosen so that every ratio is exact in binary): the largest weight
  // lands at 7.5 -> 8 (half-even) + 8 = 16 -> clamped to 15.
  const double w[4] = {0.375, -1.875, 0.75, 0.0};
  const float s = GptqGroupScale(w, 4);
  EXPECT_EQ(s, 0.25f);
  EXPECT_EQ(GptqCode(-1.875, s), 0);  // -7.5 -> -8 (half-even) + 8
  EXPECT_EQ(GptqCode(1.875, s), 15);  // 7.5 -> 8 + 8 = 16, clamped
  EXPECT_EQ(GptqCode(0.125, s), 8);   // 0.5 -> 0 (half-even)
  EXPECT_EQ(GptqCode(0.375, s), 10);  // 1.5 -> 2
  EXPECT_EQ(GptqCode(0.0, s), 8);
  EXPECT_EQ(GptqCode(-0.875, s), 4);  // -3.5 -> -4
  EXPECT_EQ(GptqCode(100.0, s), 15);  // clamped
}

// Same codes and the same loss as the slow form, over shapes that exercise one group, several
// groups, a row count that is no multiple of anything, and a dead input column.
TEST(GptqTest, EqualsTheSequentialFloat64Form) {
  struct Case {
    int64_t rows, cols, group, n, dead;
  };
  for (const Case c : {Case{1, 128, 128, 300, -1}, Case{7, 256, 128, 600, -1},
                       Case{13, 384, 128, 500, 130}, Case{5, 96, 32, 200, 0}}) {
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.cols << " group " << c.group);
    const Layer l = MakeLayer(c.rows, c.cols, c.n, 11 + c.cols, c.dead);
    const std::vector<double> h = Hessian(l);
    GptqOptions opt;
    opt.group = c.group;
    auto fast = GptqQuantize(l.w, l.rows, l.cols, h, opt);
    ASSERT_TRUE(fast.ok()) << fast.status().message();
    // Rows split across threads: the same arithmetic per row, identical output.
    ThreadPool pool(2);
    opt.pool = &pool;
    auto threaded = GptqQuantize(l.w, l.rows, l.cols, h, opt);
    ASSERT_TRUE(threaded.ok());
    EXPECT_EQ(threaded->codes, fast->codes);
    EXPECT_EQ(threaded->scales, fast->scales);
    const W4Weights slow = NaiveGptq(l, h, c.group, opt.damp);
    // Both compute the same real numbers by different float64 routes (relative differences
    // ~1e-13): a code may differ only where w/s lies within that of a rounding boundary; on
    // these seeds none does, so every code must agree.
    int64_t diff = 0;
    for (size_t i = 0; i < slow.codes.size(); ++i) diff += fast->codes[i] != slow.codes[i];
    EXPECT_EQ(diff, 0);
    for (size_t i = 0; i < slow.scales.size(); ++i)
      EXPECT_NEAR(fast->scales[i], slow.scales[i], 1e-6 * std::fabs(slow.scales[i]));
    const double lf = LayerLoss(l.w, *fast, h), ls = LayerLoss(l.w, slow, h);
    EXPECT_NEAR(lf, ls, 1e-6 * ls);
    if (c.dead >= 0) {
      for (int64_t r = 0; r < l.rows; ++r) EXPECT_EQ(fast->codes[r * l.cols + c.dead], 8);
    }
  }
}

TEST(GptqTest, BeatsRoundToNearestOnTheLayerLoss) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const Layer l = MakeLayer(16, 256, 800, seed);
    const std::vector<double> h = Hessian(l);
    auto g = GptqQuantize(l.w, l.rows, l.cols, h, GptqOptions{});
    ASSERT_TRUE(g.ok());
    const double lg = LayerLoss(l.w, *g, h);
    const double lr = LayerLoss(l.w, RtnQuantize4(l.w, l.rows, l.cols, 128), h);
    // On correlated inputs GPTQ's error feedback removes a large part of RTN's output error.
    EXPECT_LT(lg, 0.8 * lr) << "seed " << seed << ": gptq " << lg << " rtn " << lr;
  }
}

TEST(GptqTest, LayerLossIsTheMeanSquaredOutputError) {
  const Layer l = MakeLayer(3, 128, 50, 9);
  const std::vector<double> h = Hessian(l);
  const W4Weights q = RtnQuantize4(l.w, l.rows, l.cols, 128);
  double direct = 0;
  for (int64_t t = 0; t < l.n; ++t)
    for (int64_t r = 0; r < l.rows; ++r) {
      double y = 0;
      for (int64_t k = 0; k < l.cols; ++k)
        y += (static_cast<double>(l.w[r * l.cols + k]) - q.Dequant(r, k)) * l.x[t * l.cols + k];
      direct += y * y;
    }
  EXPECT_NEAR(LayerLoss(l.w, q, h), direct / l.n, 1e-9 * direct / l.n);
}

TEST(GptqTest, BadShapesAreErrors) {
  std::vector<float> w(2 * 100, 0.1f);
  std::vector<double> h(100 * 100, 0.0);
  EXPECT_FALSE(GptqQuantize(w, 2, 100, h, GptqOptions{}).ok());  // 100 % 128 != 0
  std::vector<float> w2(2 * 128, 0.1f);
  EXPECT_FALSE(GptqQuantize(w2, 2, 128, h, GptqOptions{}).ok());  // H of the wrong size
  std::vector<double> nan_h(128 * 128, NAN);
  EXPECT_FALSE(GptqQuantize(w2, 2, 128, nan_h, GptqOptions{}).ok());
}

}  // namespace
}  // namespace quamba
