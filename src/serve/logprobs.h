// Per-token log-probabilities as the OpenAI completions API reports them: the chosen token's
// log-softmax and the k most likely tokens at that position, computed in float64 from one row
// of logits (as eval/loglik.h LogSoftmaxAt, so a server score equals `quamba eval`'s).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace quamba::serve {

constexpr int kMaxLogprobs = 20;  // OpenAI's limit for `logprobs`

struct TopLogprob {
  int32_t id = 0;
  double logprob = 0;
};

struct TokenLogprob {
  int32_t id = 0;
  double logprob = NAN;          // NaN: none (the first prompt token has no context)
  std::vector<TopLogprob> top;   // most likely first; empty for the first prompt token
};

// rec->logprob = log_softmax(logits)[rec->id]; rec->top = the `k` largest entries (ties: lower
// id first). The top entry's value is computed by the same expression as rec->logprob, so a
// greedy token compares equal to max(top) (lm-eval's is_greedy test).
void ComputeLogprobs(const float* logits, int64_t vocab, int k, TokenLogprob* rec);

}  // namespace quamba::serve
