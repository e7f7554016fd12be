// The sampler against a float64 reference on fixed logits: the reference computes the exact
// distribution the options define (llama.cpp's order: repetition penalty once per distinct
// recent token, top-k, temperature softmax, top-p = smallest prefix reaching the mass), and the
// sampler's draws over many seeds must match it: no token outside its support, and every
// frequency within 5 standard deviations of its probability.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "model/sampler.h"

namespace quamba {
namespace {

// Exact probabilities (V) of the next token.
std::vector<double> Reference(std::vector<float> logits, const SamplerOptions& o,
                              const std::vector<int32_t>& history) {
  const int64_t V = static_cast<int64_t>(logits.size());
  std::vector<bool> seen(V, false);
  const size_t n = std::min<size_t>(history.size(), std::max(0, o.repeat_last_n));
  for (size_t i = history.size() - n; i < history.size(); ++i) seen[history[i]] = true;
  std::vector<double> l(V);
  for (int64_t i = 0; i < V; ++i) {
    l[i] = logits[i];
    if (seen[i] && o.repeat_penalty != 1.0f)
      l[i] = l[i] > 0 ? l[i] / o.repeat_penalty : l[i] * o.repeat_penalty;
  }
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return l[a] > l[b]; });
  std::vector<double> p(V, 0.0);
  if (o.temperature <= 0) {
    p[order[0]] = 1;
    return p;
  }
  const int64_t k = o.top_k > 0 ? std::min<int64_t>(o.top_k, V) : V;
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += std::exp((l[order[i]] - l[order[0]]) / o.temperature);
  int64_t keep = k;
  if (o.top_p < 1.0f) {
    double acc = 0;
    for (int64_t i = 0; i < k; ++i) {
      acc += std::exp((l[order[i]] - l[order[0]]) / o.temperature) / sum;
      if (acc >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += std::exp((l[order[i]] - l[order[0]]) / o.temperature);
  for (int64_t i = 0; i < keep; ++i)
    p[order[i]] = std::exp((l[order[i]] - l[order[0]]) / o.temperature) / mass;
  return p;
}

// Distinct logits in [-3, 3) (no ties at a top-k or top-p boundary).
std::vector<float> FixedLogits(int64_t V) {
  std::vector<float> l(V);
  for (int64_t i = 0; i < V; ++i) l[i] = static_cast<float>((i * 7919) % V) * 6.0f / V - 3.0f;
  return l;
}

void ExpectDrawsMatch(const SamplerOptions& base, const std::vector<int32_t>& history,
                      int draws) {
  const int64_t V = 40;
  const std::vector<float> logits = FixedLogits(V);
  const std::vector<double> p = Reference(logits, base, history);
  std::vector<int64_t> count(V, 0);
  SamplerOptions o = base;
  Sampler s(o, V);  // one sampler, many draws: its RNG advances
  for (int d = 0; d < draws; ++d) {
    std::vector<float> l = logits;
    const int32_t t = s.Sample(l.data(), history);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, V);
    ++count[t];
  }
  for (int64_t i = 0; i < V; ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(count[i], 0) << "token " << i << " is outside the support";
      continue;
    }
    const double f = static_cast<double>(count[i]) / draws;
    const double sd = std::sqrt(p[i] * (1 - p[i]) / draws);
    EXPECT_NEAR(f, p[i], 5 * sd + 1e-12) << "token " << i;
  }
}

TEST(SamplerReferenceTest, TemperatureOnly) {
  SamplerOptions o;
  o.temperature = 0.7f;
  o.top_k = 0;
  o.top_p = 1.0f;
  ExpectDrawsMatch(o, {}, 40000);
}

TEST(SamplerReferenceTest, TopK) {
  SamplerOptions o;
  o.temperature = 1.3f;
  o.top_k = 5;
  o.top_p = 1.0f;
  ExpectDrawsMatch(o, {}, 40000);
}

TEST(SamplerReferenceTest, TopP) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 0.6f;
  ExpectDrawsMatch(o, {}, 40000);
}

TEST(SamplerReferenceTest, TopKThenTopPThenTemperature) {
  SamplerOptions o;
  o.temperature = 0.5f;
  o.top_k = 12;
  o.top_p = 0.9f;
  ExpectDrawsMatch(o, {}, 40000);
}

// The penalty touches each distinct recent token once: a token repeated in the window is not
// penalised twice (the top token 3 occurs three times here), and tokens older than
// repeat_last_n are not penalised.
TEST(SamplerReferenceTest, RepetitionPenaltyOncePerDistinctRecentToken) {
  const std::vector<float> logits = FixedLogits(40);
  const int32_t top = ArgMax(logits.data(), 40);
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.repeat_penalty = 1.8f;
  o.repeat_last_n = 4;
  const std::vector<int32_t> history = {7, top, 2, top, top, 11};  // window: {top, 2, 11}
  ExpectDrawsMatch(o, history, 40000);
  // Greedy: after one division by 1.8 the former top token loses to the runner-up here.
  std::vector<float> l = logits;
  SamplerOptions g = o;
  g.temperature = 0;
  Sampler s(g, 40);
  const int32_t pick = s.Sample(l.data(), history);
  std::vector<double> p = Reference(logits, g, history);
  EXPECT_EQ(p[pick], 1.0);
}

TEST(SamplerReferenceTest, SameSeedSameTokens) {
  SamplerOptions o;
  o.seed = 1234;
  std::vector<int32_t> a, b;
  for (std::vector<int32_t>* out : {&a, &b}) {
    Sampler s(o, 40);
    for (int i = 0; i < 50; ++i) {
      std::vector<float> l = FixedLogits(40);
      out->push_back(s.Sample(l.data(), *out));
    }
  }
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace quamba
