// Tests of the Hadamard kernels (hadamard_f32, hadamard_quant) on every available ISA: bit-exact
// to the generic kernel (the stage order is part of the contract), close to the dense float64
// transform, and the int8 output within the requantisation criterion of the float64 value.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/generic/q8_generic.h"
#include "kernels/q8.h"
#include "kernels/q8_test_util.h"
#include "kernels/ref/q8_ref.h"

namespace quamba::kernels {
namespace {

using testing::kU;
using testing::Rng;
using testing::Salt;

// Each output is a signed sum of all n inputs through log2(p) butterfly stages and K-1 sequential
// adds across chunks: |t - t_exact| <= (log2(p) + K) u sum_i |x_i| (Higham 4.2, first order),
// then one multiply by the normalisation (u |t|).
double ElementTol(int64_t n, double sum_abs) {
  int K = 0, lg = 0;
  HadamardSizeOk(n, &K, &lg);
  return (lg + K + 1) * kU * sum_abs / std::sqrt(static_cast<double>(n));
}

const int64_t kSizes[] = {1,   2,   4,   8,   12,  16,  24,  32,   40,   48,   64,  80,
                          96,  128, 160, 256, 320, 384, 640, 768,  1024, 1536, 2048,
                          2560, 3072, 4096, 5120};

class Q8HadamardTest : public testing::IsaTest {};

// Every size: identical bits to the generic kernel for both outputs, rows of stride ld > n.
TEST_P(Q8HadamardTest, BitExactToGenericAllSizes) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int64_t n : kSizes) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const int64_t L = 3, ld = n + 5, ldq = n + 3;
    Rng rng(Salt({n, 11}));
    std::vector<float> x(L * ld + 1);
    rng.Fill(x.data(), static_cast<int64_t>(x.size()), -1.0f, 1.0f);
    std::vector<float> a = x, g = x;
    KernelsFor(isa).hadamard_f32(a.data(), L, n, ld);
    generic::HadamardF32(g.data(), L, n, ld);
    ASSERT_TRUE(testing::AssertExact("hadamard_f32 vs generic", isa, a, g));
    const float inv_scale = 127.0f / 2.0f;
    std::vector<int8_t> q(L * ldq + 1, 77), qg(L * ldq + 1, 77);
    const std::vector<float> x0 = x;
    KernelsFor(isa).hadamard_quant(x.data(), L, n, ld, inv_scale, q.data(), ldq);
    generic::HadamardF32ToS8(x.data(), L, n, ld, inv_scale, qg.data(), ldq);
    ASSERT_TRUE(testing::AssertExact("hadamard_quant vs generic", isa, q, qg));
    ASSERT_TRUE(testing::AssertExact("hadamard_quant input unchanged", isa, x, x0));
  }
}

// Against the dense float64 transform (sizes up to 640 keep the n^2 oracle cheap).
TEST_P(Q8HadamardTest, MatchesDenseTransform) {
  SCOPED_TRACE(testing::ReplayHint());
  const Isa isa = GetParam();
  for (int64_t n : kSizes) {
    if (n > 640) continue;
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const int64_t L = 2, ld = n + 1;
    Rng rng(Salt({n, 12}));
    std::vector<float> x(L * ld);
    rng.Fill(x.data(), L * ld, -1.0f, 1.0f);
    std::vector<double> dense(L * n);
    ref::HadamardDense(x.data(), L, n, ld, dense.data());
    std::vector<double> tol, v, tie;
    const float inv_scale = 127.0f / 1.5f;
    for (int64_t l = 0; l < L; ++l) {
      double sum_abs = 0;
      for (int64_t i = 0; i < n; ++i) sum_abs += std::fabs(x[l * ld + i]);
      for (int64_t i = 0; i < n; ++i) {
        const double t = dense[l * n + i];
        tol.push_back(ElementTol(n, sum_abs) + kU * std::fabs(t));
        v.push_back(t * inv_scale);
        tie.push_back((tol.back() + kU * std::fabs(t)) * inv_scale);
      }
    }
    std::vector<int8_t> q(L * n);
    KernelsFor(isa).hadamard_quant(x.data(), L, n, ld, inv_scale, q.data(), n);
    KernelsFor(isa).hadamard_f32(x.data(), L, n, ld);
    ASSERT_TRUE(testing::AssertClose("hadamard_f32 vs dense", isa,
                                     testing::Region(x.data(), L, ld, 0, n), dense, tol));
    ASSERT_TRUE(testing::AssertRequantized("hadamard_quant vs dense", isa, q, v, tie));
  }
}

// L = 0 and a single row with ld = n are fine; transform applied twice is the identity (H is
// symmetric for 2^k only, so check H^T H = I through the dense oracle instead: H (H x) for
// pow2 sizes returns x up to rounding).
TEST_P(Q8HadamardTest, Pow2IsAnInvolution) {
  const Isa isa = GetParam();
  for (int64_t n : {1, 2, 64, 1024}) {
    Rng rng(Salt({n, 13}));
    std::vector<float> x(n);
    rng.Fill(x.data(), n, -1.0f, 1.0f);
    std::vector<float> y = x;
    KernelsFor(isa).hadamard_f32(y.data(), 0, n, n);
    ASSERT_TRUE(testing::AssertExact("L=0 leaves data alone", isa, y, x));
    KernelsFor(isa).hadamard_f32(y.data(), 1, n, n);
    KernelsFor(isa).hadamard_f32(y.data(), 1, n, n);
    ASSERT_TRUE(testing::AssertRelL2("H H x", isa, y, std::vector<double>(x.begin(), x.end()),
                                     4 * std::log2(static_cast<double>(n) + 1) * kU));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Q8HadamardTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
