// Tests of AddRmsNorm and the f16 / bf16 row conversions on every available ISA against the
// float64 oracles in kernels/ref.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

namespace quamba::kernels {
namespace {

using testing::AssertClose;
using testing::kU;
using testing::Rng;
using testing::Salt;

// AddRmsNorm: the sum of squares is accumulated in double by every ISA (float squares are exact
// in double; n <= 2^20 terms keep its relative error below 2^-32), so the float result carries
// three roundings: inv = float(1/sqrt(mean + eps)), residual * inv, (...) * w. Each is <= u
// relative: |y - ref| <= 3u |ref| + O(u^2); 4u leaves room for the O(u^2) and double terms.
constexpr double kNormRelTol = 4 * kU;

class NormTest : public testing::IsaTest {};

void RunNorm(Isa isa, int64_t n, bool with_h, bool y_aliases_h, int64_t offset) {
  SCOPED_TRACE(::testing::Message()
               << "n=" << n << " h=" << with_h << " alias=" << y_aliases_h << " offset=" << offset);
  Rng rng(Salt({n, with_h, y_aliases_h, offset}));
  std::vector<float> res(n + offset), h(n + offset), w(n + offset), y(n + offset, NAN);
  rng.Fill(res.data(), n + offset, -3.0f, 3.0f);
  rng.Fill(h.data(), n + offset, -1.0f, 1.0f);
  rng.Fill(w.data(), n + offset, 0.5f, 1.5f);
  std::vector<float> res_ref = res;
  const float eps = 1e-5f;

  float* out = y_aliases_h ? h.data() + offset : y.data() + offset;
  std::vector<double> yref(n + offset);
  ref::AddRmsNorm(res_ref.data() + offset, with_h ? h.data() + offset : nullptr, w.data() + offset,
                  n, eps, yref.data() + offset);
  KernelsFor(isa).add_rms_norm(res.data() + offset, with_h ? h.data() + offset : nullptr,
                               w.data() + offset, n, eps, out);

  // The residual update is a single float add: bitwise equal to the oracle's.
  std::vector<double> res_exp(res_ref.begin() + offset, res_ref.end());
  ASSERT_TRUE(AssertClose("residual", isa, std::vector<float>(res.begin() + offset, res.end()),
                          res_exp, std::vector<double>(n, 0.0)));
  std::vector<double> expect(yref.begin() + offset, yref.end()), tol(n);
  for (int64_t i = 0; i < n; ++i) tol[i] = kNormRelTol * std::fabs(expect[i]);
  ASSERT_TRUE(AssertClose("rms_norm y", isa, std::vector<float>(out, out + n), expect, tol));
}

TEST_P(NormTest, AddRmsNormLengthSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  std::vector<int64_t> lengths;
  for (int64_t n = 0; n <= 2 * 16 + 3; ++n) lengths.push_back(n);
  for (int64_t n : {37, 61, 127, 257, 1031}) lengths.push_back(n);
  for (const testing::MambaShape& s : testing::kMambaShapes) lengths.push_back(s.d_model);
  for (int64_t n : lengths) {
    for (bool with_h : {false, true}) {
      RunNorm(GetParam(), n, with_h, false, n % 3);
      if (HasFatalFailure()) return;
    }
    RunNorm(GetParam(), n, true, /*y_aliases_h=*/true, 1);
    if (HasFatalFailure()) return;
  }
}

// Tiny and huge magnitudes: the norm is scale invariant, so y must not under/overflow.
TEST_P(NormTest, AddRmsNormExtremeScales) {
  SCOPED_TRACE(testing::ReplayHint());
  for (float scale : {1e-18f, 1e18f}) {
    const int64_t n = 2048;
    Rng rng(Salt({n, static_cast<int64_t>(std::log10(scale))}));
    std::vector<float> res(n), w(n, 1.0f), y(n);
    for (float& v : res) v = rng.Uniform(-1.0f, 1.0f) * scale;
    std::vector<float> res_ref = res;
    std::vector<double> yref(n);
    ref::AddRmsNorm(res_ref.data(), nullptr, w.data(), n, 0.0f, yref.data());
    KernelsFor(GetParam()).add_rms_norm(res.data(), nullptr, w.data(), n, 0.0f, y.data());
    std::vector<double> tol(n);
    for (int64_t i = 0; i < n; ++i) tol[i] = kNormRelTol * std::fabs(yref[i]);
    ASSERT_TRUE(AssertClose("rms_norm y (scaled)", GetParam(), y, yref, tol)) << scale;
  }
}

// Conversions are exact: all 65536 bit patterns of each type (NaN stays NaN), then every
// length 0..2*16+3 at odd offsets for the vector tails.
class ConvertTest : public testing::IsaTest {};

void CheckConvert(Isa isa, DType t, const std::vector<uint16_t>& src, int64_t offset) {
  const int64_t n = static_cast<int64_t>(src.size()) - offset;
  std::vector<float> dst(n + 8, -7.0f);
  KernelsFor(isa).ConvertFor(t)(src.data() + offset, n, dst.data());
  std::vector<double> expect(n);
  if (t == DType::kF16) {
    ref::ConvertF16(src.data() + offset, n, expect.data());
  } else {
    ref::ConvertBF16(src.data() + offset, n, expect.data());
  }
  ASSERT_TRUE(AssertClose(DTypeName(t), isa, std::vector<float>(dst.begin(), dst.begin() + n),
                          expect, std::vector<double>(n, 0.0)));
  for (int64_t i = n; i < n + 8; ++i) ASSERT_EQ(dst[i], -7.0f) << "wrote past n=" << n;
}

TEST_P(ConvertTest, EveryBitPattern) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  for (DType t : {DType::kF16, DType::kBF16}) {
    CheckConvert(GetParam(), t, all, 0);
    if (HasFatalFailure()) return;
  }
}

TEST_P(ConvertTest, LengthSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t n = 0; n <= 35; ++n) {
      for (int64_t offset : {0, 1}) {
        Rng rng(Salt({static_cast<int>(t), n, offset}));
        std::vector<uint16_t> src(n + offset);
        for (uint16_t& v : src) {
          const float f = rng.Uniform(-4.0f, 4.0f);
          v = t == DType::kF16 ? F32ToF16(f) : F32ToBF16(f);
        }
        CheckConvert(GetParam(), t, src, offset);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The bandwidth-ceiling checksum: exact modulo 2^64 against the byte-at-a-time oracle, on every
// length 0..300 (all vector/step remainders) and a few large ones, from unaligned starts, on
// random bytes (high bytes set, so carries between words and lanes are exercised). The buffer
// holds sentinel bytes just past n, which a read beyond the range would add in.
class SumU64Test : public testing::IsaTest {};

TEST_P(SumU64Test, LengthSweep) {
  SCOPED_TRACE(testing::ReplayHint());
  const KernelTable& k = KernelsFor(GetParam());
  std::vector<int64_t> ns;
  for (int64_t n = 0; n <= 300; ++n) ns.push_back(n);
  for (int64_t n : {1023, 4096, 65537, 1 << 20}) ns.push_back(n);
  for (int64_t n : ns) {
    for (int64_t offset : {0, 3}) {
      Rng rng(Salt({n, offset}));
      std::vector<uint8_t> buf(offset + n + 64, 0xFF);
      for (int64_t i = 0; i < n; ++i) buf[offset + i] = static_cast<uint8_t>(rng.Next() >> 56);
      const uint64_t want = ref::SumU64(buf.data() + offset, n);
      ASSERT_EQ(k.sum_u64(buf.data() + offset, n), want)
          << IsaName(GetParam()) << " n=" << n << " offset=" << offset;
    }
  }
  EXPECT_EQ(k.sum_u64(nullptr, 0), 0u);
}

INSTANTIATE_TEST_SUITE_P(Isa, SumU64Test, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);
INSTANTIATE_TEST_SUITE_P(Isa, NormTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);
INSTANTIATE_TEST_SUITE_P(Isa, ConvertTest, ::testing::ValuesIn(testing::AllIsas()),
                         testing::IsaParamName);

}  // namespace
}  // namespace quamba::kernels
