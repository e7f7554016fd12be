// Tests of src/core: Status plumbing, f16/bf16 conversions, the thread pool's range split.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace quamba {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2) return Status::Error(StrFormat("odd: %d", x));
  return x / 2;
}
Status UseHalf(int x, int* out) {
  QM_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(StatusTest, PropagatesErrorsAndValues) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = UseHalf(7, &v);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "odd: 7");
}

TEST(CheckDeathTest, AbortsWithFileAndLine) {
  EXPECT_DEATH(QM_CHECK(1 + 1 == 3, "math is %s", "broken"),
               "Bug: .*core_test.cc:[0-9]+: check failed: 1 \\+ 1 == 3: math is broken");
}

// Every one of the 65536 half values: f16 -> f32 -> f16 is the identity (nan payloads quiet).
TEST(DTypeTest, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f))));
      continue;
    }
    ASSERT_EQ(F32ToF16(f), h) << "h=" << h << " f=" << f;
  }
}

// f32 -> f16 rounds to nearest even: compare with a double-precision oracle on random floats.
TEST(DTypeTest, F32ToF16RoundsToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-30, 15);  // |x| < 65536: rounds to a finite half or inf
  for (int i = 0; i < 200000; ++i) {
    const float x = std::ldexp(1.0f + (rng() & 0xffffff) / 16777216.0f, (int)mag(rng)) *
                    (rng() & 1 ? -1.0f : 1.0f);
    const uint16_t h = F32ToF16(x);
    if (std::fabs(x) >= 65520.0f) {  // max half 65504 + half an ulp (16): overflow to inf
      ASSERT_TRUE(std::isinf(F16ToF32(h))) << x;
      continue;
    }
    const double got = F16ToF32(h);
    // Neighbours of the result must not be strictly closer.
    const double up = F16ToF32(h + 1), down = F16ToF32(h - 1);
    const double err = std::fabs(got - x);
    if (std::isfinite(up)) {
      ASSERT_LE(err, std::fabs(up - x)) << x;
    }
    if ((h & 0x7fff) != 0 && std::isfinite(down)) {
      ASSERT_LE(err, std::fabs(down - x)) << x;
    }
  }
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // halfway past max half rounds to inf
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);      // tie to even (zero)
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);      // above tie: smallest subnormal
}

TEST(DTypeTest, BF16RoundsToNearestEven) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  float x;
  uint32_t bits = 0x3f808000u;  // exactly halfway between 0x3f80 and 0x3f81: to even
  std::memcpy(&x, &bits, 4);
  EXPECT_EQ(F32ToBF16(x), 0x3f80);
  bits = 0x3f818000u;  // halfway between 0x3f81 and 0x3f82: to even (up)
  std::memcpy(&x, &bits, 4);
  EXPECT_EQ(F32ToBF16(x), 0x3f82);
  EXPECT_EQ(BF16ToF32(0x4049), 3.140625f);
}

TEST(ThreadPoolTest, SplitRangeCoversEverythingOnce) {
  for (int64_t n : {0, 1, 5, 63, 64, 65, 1000, 4097})
    for (int64_t align : {1, 16, 64})
      for (int nt : {1, 2, 3, 7}) {
        int64_t next = 0;
        for (int t = 0; t < nt; ++t) {
          int64_t b, e;
          ThreadPool::SplitRange(n, align, t, nt, &b, &e);
          ASSERT_EQ(b, next);
          ASSERT_LE(b, e);
          if (e < n) {
            ASSERT_EQ(e % align, 0);
          }
          next = e;
        }
        ASSERT_EQ(next, n);
      }
}

TEST(ThreadPoolTest, RunsEveryThreadEveryTime) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 2000; ++rep)
    pool.Run([&](int tid, int nt) { sum += tid + 1 + 0 * nt; });
  EXPECT_EQ(sum.load(), 2000 * (1 + 2 + 3));
}

}  // namespace
}  // namespace quamba
