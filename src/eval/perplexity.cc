#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "eval/pystr.h"
#include "model/finite.h"

namespace quamba {
namespace {

constexpr int64_t kChunk = 256;  // window tokens per all-logits prefill: bounds the buffers

struct TokenStats {
  double nll = 0;
  double ref_nll = 0;
  double kld = 0;
  bool same_top = false;
};

// Float64 log-softmax normaliser of one row: max, log-sum-exp, and the first argmax.
struct RowNorm {
  double max = 0, lse = 0;
  int64_t arg = 0;
};
RowNorm ArgMax(const float* x, int64_t n) {
  RowNorm r;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[r.arg]) r.arg = i;
  r.max = x[r.arg];
  return r;
}
RowNorm Normalise(const float* x, int64_t n) {
  RowNorm r = ArgMax(x, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - r.max);
  r.lse = std::log(sum);
  return r;
}

TokenStats Stats(const float* m, const float* ref, int64_t n, int32_t target) {
  TokenStats s;
  const RowNorm nm = Normalise(m, n);
  s.nll = -(static_cast<double>(m[target]) - nm.max - nm.lse);
  if (ref == nullptr) return s;
  // KL(ref || m) = sum_v p_v (log p_v - log q_v) with log p_v = r_v - max_r - lse_r and
  // log q_v = m_v - max_m - lse_m; as sum_v p_v = 1 this is
  //   sum_v e_v (r_v - m_v) / S + (max_m + lse_m) - (max_r + lse_r),  e_v = exp(r_v - max_r),
  // one exp per entry, fused with the reference's own normaliser S = sum_v e_v.
  RowNorm nr = ArgMax(ref, n);
  double sum = 0, dot = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::exp(static_cast<double>(ref[i]) - nr.max);
    sum += e;
    dot += e * (static_cast<double>(ref[i]) - static_cast<double>(m[i]));
  }
  nr.lse = std::log(sum);
  s.ref_nll = -(static_cast<double>(ref[target]) - nr.max - nr.lse);
  const double kl = dot / sum + (nm.max + nm.lse) - (nr.max + nr.lse);
  s.kld = std::max(kl, 0.0);  // >= 0 mathematically; clamp float64 rounding (~1e-16)
  s.same_top = nm.arg == nr.arg;
  return s;
}

// numpy.percentile's default (linear interpolation between closest ranks) of sorted v.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double pos = p * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

double MeanStderr(double sum, double sum_sq, int64_t n) {
  if (n < 2) return 0;
  const double mean = sum / n;
  const double var = std::max(0.0, (sum_sq - n * mean * mean) / (n - 1));
  return std::sqrt(var / n);
}

}  // namespace

StatusOr<PerplexityResult> EvaluatePerplexity(EvalModel m, EvalModel r,
                                              std::span<const int32_t> tokens,
                                              const PerplexityOptions& opts,
                                              const EvalProgressFn& progress) {
  Runtime* engine = m.engine;
  Runtime* ref = r.model != nullptr ? r.engine : nullptr;
  const int64_t ctx = opts.ctx;
  QM_CHECK(ctx >= 2, "ctx %lld", (long long)ctx);
  const int64_t n_tok = static_cast<int64_t>(tokens.size());
  if (n_tok < ctx)
    return Status::Error(
        StrFormat("perplexity: expected at least %lld tokens (one window of "
                  "--ctx), found %lld",
                  (long long)ctx, (long long)n_tok));
  const int64_t vocab = engine->vocab_size();
  QM_CHECK(ref == nullptr || ref->vocab_size() == vocab, "reference vocab differs");
  const int64_t stride = opts.stride > 0 ? opts.stride : ctx;
  int64_t windows = (n_tok - ctx) / stride + 1;
  if (opts.max_windows > 0) windows = std::min(windows, opts.max_windows);

  PerplexityResult res;
  res.ctx = ctx;
  res.stride = stride;
  res.windows = windows;
  res.has_ref = ref != nullptr;
  ThreadPool pool(engine->n_threads());
  std::vector<float> logits(kChunk * vocab), ref_logits(ref ? kChunk * vocab : 0);
  std::vector<TokenStats> chunk_stats(kChunk);
  std::vector<double> klds;
  if (progress) progress(0, windows);
  double nll_sum = 0, nll_sq = 0, ref_nll_sum = 0, kld_sum = 0, kld_sq = 0;
  int64_t same = 0, count = 0;
  for (int64_t w = 0; w < windows; ++w) {
    const std::span<const int32_t> win = tokens.subspan(w * stride, ctx);
    SequenceState s = m.model->NewState();
    SequenceState rs = ref ? r.model->NewState() : SequenceState{};
    // Feed tokens [0, ctx-1): the logits at position j predict win[j + 1].
    for (int64_t start = 0; start < ctx - 1; start += kChunk) {
      const int64_t T = std::min(kChunk, ctx - 1 - start);
      engine->Prefill(&s, win.subspan(start, T), logits.data(), /*all_logits=*/true);
      if (ref) ref->Prefill(&rs, win.subspan(start, T), ref_logits.data(), /*all_logits=*/true);
      pool.ParallelRange(T, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t)
          chunk_stats[t] =
              Stats(logits.data() + t * vocab, ref ? ref_logits.data() + t * vocab : nullptr, vocab,
                    win[start + t + 1]);
      });
      for (int64_t t = 0; t < T; ++t) {  // serial, in token order: sums are reproducible
        const TokenStats& st = chunk_stats[t];
        if (!std::isfinite(st.nll) || !std::isfinite(st.ref_nll) || !std::isfinite(st.kld)) {
          // A NaN or Inf logit: name the tensor behind it (model, else reference).
          const std::string where = StrFormat("window %lld, token %lld", (long long)w,
                                              (long long)(start + t + 1));
          QM_RETURN_IF_ERROR(CheckFiniteLogits(*m.model, logits.data() + t * vocab, vocab, where));
          if (ref)
            QM_RETURN_IF_ERROR(
                CheckFiniteLogits(*r.model, ref_logits.data() + t * vocab, vocab, where));
          return Status::Error(StrFormat("expected a finite log-likelihood, found %g (%s)",
                                         st.nll, where.c_str()));
        }
        nll_sum += st.nll;
        nll_sq += st.nll * st.nll;
        ++count;
        if (!ref) continue;
        ref_nll_sum += st.ref_nll;
        kld_sum += st.kld;
        kld_sq += st.kld * st.kld;
        same += st.same_top;
        klds.push_back(st.kld);
      }
    }
    if (progress) progress(w + 1, windows);
  }
  res.tokens = count;
  res.nll = nll_sum / count;
  res.ppl = std::exp(res.nll);
  res.ppl_stderr = res.ppl * MeanStderr(nll_sum, nll_sq, count);
  if (ref) {
    res.ref_ppl = std::exp(ref_nll_sum / count);
    res.kld_mean = kld_sum / count;
    res.kld_stderr = MeanStderr(kld_sum, kld_sq, count);
    std::sort(klds.begin(), klds.end());
    res.kld_median = Percentile(klds, 0.5);
    res.kld_p99 = Percentile(klds, 0.99);
    res.kld_max = klds.back();
    res.same_top = static_cast<double>(same) / count;
    res.same_top_stderr =
        count > 1 ? std::sqrt(res.same_top * (1 - res.same_top) / (count - 1)) : 0;
  }
  return res;
}

std::string WikiTextJoinRows(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 8);
  bool first = true;
  size_t i = 0;
  while (i < raw.size()) {
    size_t e = i;
    while (e < raw.size() && raw[e] != '\n' && raw[e] != '\r') ++e;
    const std::string_view body = raw.substr(i, e - i);
    const bool has_newline = e < raw.size();
    if (has_newline) e += (raw[e] == '\r' && e + 1 < raw.size() && raw[e + 1] == '\n') ? 2 : 1;
    if (!first) out += "\n\n";
    first = false;
    // The row is the line with its newline translated to "\n"; blank rows are "".
    if (!pystr::Strip(body).empty()) {
      out.append(body);
      if (has_newline) out += '\n';
    }
    i = e;
  }
  return out;
}

}  // namespace quamba
