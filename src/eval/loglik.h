// Log-likelihood of (context, continuation) token pairs, the one primitive every zero-shot task
// of lm-evaluation-harness reduces to: sum over continuation tokens of log p(token | all tokens
// before it), and whether each continuation token is the model's argmax ("is_greedy").
//
// Scorers see requests in groups (one example's choices). The Runtime scorer uses the SSM's
// constant-size state: a group's common token prefix is run once and the SequenceState copied
// for each request; the requests' remaining tokens then advance together through
// Runtime::DecodeStep, one token per request per step, batched with the requests of following
// groups up to the engine's batch size.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/runtime.h"

namespace quamba {

struct LoglikRequest {
  std::vector<int32_t> context;       // at least one token
  std::vector<int32_t> continuation;  // at least one token
};

struct LoglikResult {
  double logprob = 0;     // sum of log-softmax (float64) at the continuation tokens
  bool is_greedy = true;  // every continuation token is the (first) argmax of its logits
};

// Called with (groups done, groups total) as scoring advances.
using EvalProgressFn = std::function<void(int64_t done, int64_t total)>;

class LoglikScorer {
 public:
  virtual ~LoglikScorer() = default;
  // results[g][i] answers groups[g][i]. Requests of a group may share work; results never
  // depend on how requests are grouped or batched (up to float rounding).
  virtual std::vector<std::vector<LoglikResult>> Score(
      std::span<const std::vector<LoglikRequest>> groups, const EvalProgressFn& progress) = 0;
};

struct EngineScorerOptions {
  // true: run a group's common prefix once and fork the state (copy) per request, then batch
  // the requests' remaining tokens through DecodeStep. false: every request from a fresh state
  // (prefill of the context, then of the continuation with all logits), the reference path.
  bool fork_state = true;
  // lm-eval's max_length: context+continuation is left-truncated to max_length + 1 tokens
  // (the last token is only a target). 0 = no limit.
  int64_t max_length = 2048;
  // Requests decoded together per DecodeStep; <= the Runtime's max batch. 0 = the Runtime's.
  int64_t batch = 0;
};

class EngineScorer : public LoglikScorer {
 public:
  // `engine` must outlive the scorer; `max_batch` is what the Runtime was built with.
  EngineScorer(Runtime* engine, const Model& model, int64_t engine_max_batch,
               EngineScorerOptions opts);
  std::vector<std::vector<LoglikResult>> Score(std::span<const std::vector<LoglikRequest>> groups,
                                               const EvalProgressFn& progress) override;

  // Tokens run through the model by the last Score() (prefill + decode), for speed reports.
  int64_t tokens_run() const { return tokens_run_; }

 private:
  struct Row;
  void ScoreFromScratch(std::span<const std::vector<LoglikRequest>> groups,
                        std::vector<std::vector<LoglikResult>>* out,
                        const EvalProgressFn& progress);
  void ScoreForked(std::span<const std::vector<LoglikRequest>> groups,
                   std::vector<std::vector<LoglikResult>>* out, const EvalProgressFn& progress);

  Runtime* engine_;
  const Model& model_;
  EngineScorerOptions opts_;
  int64_t batch_;
  int64_t tokens_run_ = 0;
  ThreadPool pool_;  // float64 log-softmax of a step's rows, between engine calls
};

// The normaliser of a log-softmax over `logits[0, n)` in float64: log_softmax[i] =
// (logits[i] - max) - log_sum. argmax is the first index of the maximum.
struct LogNormalizer {
  double max = 0, log_sum = 0;
  int64_t argmax = 0;
  double LogProb(const float* logits, int64_t i) const {
    return (static_cast<double>(logits[i]) - max) - log_sum;
  }
};
LogNormalizer LogSoftmaxNormalizer(const float* logits, int64_t n);

// Log-softmax of `logits[0, n)` at `target`, computed in float64; *is_argmax tells whether
// target is the first index of the maximum (torch.argmax's tie rule on CPU).
double LogSoftmaxAt(const float* logits, int64_t n, int32_t target, bool* is_argmax);

// lm-eval's left truncation: context+continuation keeps its last max_length + 1 tokens (the
// last one is only a target), cut from the context side; at least one context token is kept
// (lm-eval's slicing goes wrong for a continuation that long; it never happens in these tasks).
// Returns the token sequence and sets *n_context to the context tokens kept.
std::vector<int32_t> TruncatedSequence(const LoglikRequest& r, int64_t max_length,
                                       int64_t* n_context);

}  // namespace quamba
