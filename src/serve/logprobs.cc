#include "serve/logprobs.h"

#include <algorithm>

namespace quamba::serve {

void ComputeLogprobs(const float* logits, int64_t vocab, int k, TokenLogprob* rec) {
  int64_t arg = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[arg]) arg = i;
  const double mx = logits[arg];
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double log_z = mx + std::log(sum);
  auto lp = [&](int64_t i) { return static_cast<double>(logits[i]) - log_z; };
  rec->logprob = lp(rec->id);
  rec->top.clear();
  if (k <= 0) return;
  // Keep the k best (logit desc, id asc) in a small sorted buffer: O(vocab * k) worst case,
  // O(vocab) typically (most logits fail the first comparison).
  std::vector<int32_t> best;
  best.reserve(k + 1);
  auto better = [&](int64_t a, int64_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  for (int64_t i = 0; i < vocab; ++i) {
    if (static_cast<int>(best.size()) == k && !better(i, best.back())) continue;
    auto pos = std::upper_bound(best.begin(), best.end(), i,
                                [&](int64_t x, int32_t y) { return better(x, y); });
    best.insert(pos, static_cast<int32_t>(i));
    if (static_cast<int>(best.size()) > k) best.pop_back();
  }
  for (int32_t id : best) rec->top.push_back({id, lp(id)});
}

}  // namespace quamba::serve
