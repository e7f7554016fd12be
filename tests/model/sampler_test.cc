// The sampler at the edges of its flags' ranges.
#include "model/sampler.h"

#include <gtest/gtest.h>

#include <vector>

namespace quamba {
namespace {

// --temp 1e-39 is a float subnormal: 1/T overflowed to inf, (max - max) * inf made the top
// token's weight NaN, and every seed returned the 40th-ranked token. A tiny temperature is
// greedy (item 15).
TEST(SamplerTest, TinyTemperatureIsGreedy) {
  const int64_t V = 100;
  for (float temp : {1e-39f, 1e-45f, 1e-30f}) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      SamplerOptions o;
      o.temperature = temp;
      o.seed = seed;
      Sampler s(o, V);
      std::vector<float> logits(V);
      for (int64_t i = 0; i < V; ++i) logits[i] = static_cast<float>((i * 37) % V) * 0.01f;
      const int32_t best = ArgMax(logits.data(), V);
      EXPECT_EQ(s.Sample(logits.data(), {}), best) << "temp " << temp << " seed " << seed;
    }
  }
}

}  // namespace
}  // namespace quamba
