// Tests of the Hadamard rotation (quant/hadamard.h) and its factors: orthogonality in integers,
// compatibility with upstream's H_12 / H_40 tables, fast vs dense float64 transform on every
// Mamba size, weight folding, and errors for unsupported sizes.
#include "quant/hadamard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/q8.h"
#include "kernels/ref/q8_ref.h"

namespace quamba {
namespace {

using kernels::testing::Rng;
using kernels::testing::Salt;

constexpr double kEps32 = 1.0 / (1 << 23);  // float32 machine epsilon
// Folding: y = W x vs y' = (W H^T)(H x), both float32 pipelines into a float64 dot: each side
// carries the transform's error (2 log2(n) eps32 relative, below) on one operand; 1e-5 relative
// to the dot's scale sum |W_i x_i| is the spec's bound with margin.
constexpr double kFoldRel = 1e-5;

// FNV-1a style fingerprint of a +-1 matrix (1 for +, 0 for -, row-major), computed offline from
// the tables had_12_paley / had_40_tpal of Dao-AILab/fast-hadamard-transform csrc/code_gen.py:
// the generated factors must match upstream bit for bit (checkpoints fused upstream).
uint64_t Fingerprint(const int8_t* h, int K) {
  uint64_t f = 1469598103934665603ull;
  for (int i = 0; i < K * K; ++i) {
    f ^= h[i] > 0 ? 1u : 0u;
    f *= 1099511628211ull;
  }
  return f;
}

TEST(HadamardFactorTest, MatchesUpstreamTables) {
  const int8_t* h12 = kernels::HadamardFactor(12);
  const char* first_row = "+-++++++++++";
  for (int j = 0; j < 12; ++j) EXPECT_EQ(h12[j] > 0, first_row[j] == '+') << "H_12[0][" << j << "]";
  EXPECT_EQ(Fingerprint(h12, 12), 0xd62cf6b1a1aa1b13ull);
  EXPECT_EQ(Fingerprint(kernels::HadamardFactor(40), 40), 0x79bcf1ee9b4d36fbull);
}

// H H^T = n I exactly in integers: the factors, and the dense Kronecker product for small n.
TEST(HadamardFactorTest, OrthogonalInIntegers) {
  for (int64_t n : {1, 2, 4, 12, 24, 40, 48, 80, 128, 160}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const std::vector<int8_t> H = kernels::ref::HadamardMatrix(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        int64_t s = 0;
        for (int64_t k = 0; k < n; ++k) s += H[i * n + k] * H[j * n + k];
        ASSERT_EQ(s, i == j ? n : 0) << "(H H^T)[" << i << "][" << j << "]";
      }
    }
  }
}

TEST(HadamardTest, SupportedSizes) {
  for (int64_t n : {1, 2, 12, 24, 40, 80, 768, 1536, 2560, 3072, 5120, 12288, 81920})
    EXPECT_TRUE(CheckHadamardSize(n).ok()) << n;
  for (int64_t n : {0, -4, 3, 6, 20, 28, 60, 100, 120, 480, 1000}) {
    const Status s = CheckHadamardSize(n);
    ASSERT_FALSE(s.ok()) << n;
    EXPECT_NE(s.message().find("n = " + std::to_string(n)), std::string::npos) << s.message();
  }
  std::vector<float> x(100, 1.0f);
  EXPECT_FALSE(HadamardTransformRows(kernels::DefaultKernels(), x.data(), 1, 100, 100).ok());
  EXPECT_FALSE(HadamardTransformRows(kernels::DefaultKernels(), x.data(), 1, 64, 32).ok());  // stride shorter than a row
  EXPECT_FALSE(FoldHadamardIntoWeight(kernels::DefaultKernels(), x.data(), 1, 20).ok());
}

// Fast vs dense float64: rel-L2 <= 2 log2(n) eps32 on all Mamba sizes and small ones.
TEST(HadamardTest, FastMatchesDense) {
  SCOPED_TRACE(kernels::testing::ReplayHint());
  for (int64_t n : {12, 24, 40, 80, 128, 768, 1024, 1536, 2048, 2560, 3072, 4096, 5120}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const int64_t L = 2;
    Rng rng(Salt({n, 21}));
    std::vector<float> x(L * n);
    rng.Fill(x.data(), L * n, -1.0f, 1.0f);
    std::vector<double> dense(L * n);
    kernels::ref::HadamardDense(x.data(), L, n, n, dense.data());
    ASSERT_TRUE(HadamardTransformRows(kernels::DefaultKernels(), x.data(), L, n, n).ok());
    double num = 0, den = 0;
    for (int64_t i = 0; i < L * n; ++i) {
      num += (x[i] - dense[i]) * (x[i] - dense[i]);
      den += dense[i] * dense[i];
    }
    EXPECT_LE(std::sqrt(num / den), 2 * std::log2(static_cast<double>(n)) * kEps32);
  }
}

// W' = W H^T: W' (H x) = W x for the out_proj shapes (rows N = a few, n = d_inner).
TEST(HadamardTest, FoldIntoWeightPreservesProducts) {
  SCOPED_TRACE(kernels::testing::ReplayHint());
  for (int64_t n : {12, 40, 64, 1536, 2048, 5120}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const int64_t N = 5;
    Rng rng(Salt({n, 22}));
    std::vector<float> W(N * n), x(n);
    rng.Fill(W.data(), N * n, -1.0f, 1.0f);
    rng.Fill(x.data(), n, -2.0f, 2.0f);
    std::vector<float> Wf = W, xh = x;
    ASSERT_TRUE(FoldHadamardIntoWeight(kernels::DefaultKernels(), Wf.data(), N, n).ok());
    ASSERT_TRUE(HadamardTransformRows(kernels::DefaultKernels(), xh.data(), 1, n, n).ok());
    for (int64_t r = 0; r < N; ++r) {
      double y = 0, y2 = 0, scale = 0;
      for (int64_t i = 0; i < n; ++i) {
        y += static_cast<double>(W[r * n + i]) * x[i];
        y2 += static_cast<double>(Wf[r * n + i]) * xh[i];
        scale += std::fabs(static_cast<double>(W[r * n + i]) * x[i]);
      }
      EXPECT_NEAR(y2, y, kFoldRel * scale) << "row " << r;
    }
  }
}

}  // namespace
}  // namespace quamba
