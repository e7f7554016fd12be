#include "serve/logprobs.h"

#include <algorithm>

#include "eval/loglik.h"

namespace quamba::serve {

void ComputeLogprobs(const float* logits, int64_t vocab, int k, TokenLogprob* rec) {
  // The same normaliser and expression as `quamba eval` (eval/loglik.h): equal scores, bit for bit.
  const LogNormalizer z = LogSoftmaxNormalizer(logits, vocab);
  auto lp = [&](int64_t i) { return z.LogProb(logits, i); };
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
