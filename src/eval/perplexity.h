// Perplexity over non-overlapping windows, as Quamba's ppl_eval.py (after GPTQ/Atom): the token
// stream is cut into floor(N / ctx) windows of ctx tokens (the partial last window is dropped;
// with a stride, floor((N - ctx) / stride) + 1 windows starting every stride tokens),
// each window starts from a fresh state, and every token but the window's first is predicted.
// ppl = exp(mean NLL over all predicted tokens) — the same number as Quamba's
// exp(sum(window_mean_loss * ctx) / (windows * ctx)), since all windows are equally long.
//
// With a reference model, the same windows also give llama.cpp's --kl-divergence figures:
// per-token KL(ref || model) over the full vocabulary (mean, median, p99, max) and the rate at
// which both models' top token agree.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "eval/loglik.h"
#include "model/runtime.h"

namespace quamba {

struct PerplexityOptions {
  int64_t ctx = 2048;
  // A window starts every `stride` tokens (0: ctx, non-overlapping windows); each scores its
  // ctx - 1 predictions from a fresh state. stride = ctx - 1 scores every token after the first
  // exactly once, as the reference model's training script does (ctx 257, stride 256).
  int64_t stride = 0;
  int64_t max_windows = 0;  // 0 = all windows
};

struct PerplexityResult {
  int64_t ctx = 0;
  int64_t stride = 0;
  int64_t windows = 0;
  int64_t tokens = 0;     // predicted tokens: windows * (ctx - 1)
  double nll = 0;         // mean negative log-likelihood, nats per token
  double ppl = 0;         // exp(nll)
  double ppl_stderr = 0;  // ppl * stderr of the per-token NLL mean (delta method, as llama.cpp)
  bool has_ref = false;   // the fields below are set only with a reference model
  double ref_ppl = 0;
  double kld_mean = 0, kld_stderr = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double same_top = 0, same_top_stderr = 0;  // fraction of tokens whose argmax agrees
};

// A model and the Runtime that runs it.
struct EvalModel {
  const Model* model = nullptr;
  Runtime* engine = nullptr;
};

// `tokens`: the whole evaluation stream. `ref.model` (may be null) must have the vocabulary size
// of `m`. Errors: fewer tokens than one window.
StatusOr<PerplexityResult> EvaluatePerplexity(EvalModel m, EvalModel ref,
                                              std::span<const int32_t> tokens,
                                              const PerplexityOptions& opts,
                                              const EvalProgressFn& progress);

// HF datasets' view of a WikiText raw file, joined as Quamba does ("\n\n".join(test["text"])):
// every line is one row keeping its "\n", except that whitespace-only lines become "" (the
// wikitext loading script); lines end at "\n", "\r\n" or "\r" (Python text mode).
std::string WikiTextJoinRows(std::string_view raw);

}  // namespace quamba
