#include "eval/loglik.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>

namespace quamba {
namespace {

constexpr int64_t kLogitChunk = 256;  // tokens per all-logits prefill: bounds the logits buffer

int64_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const int64_t n = static_cast<int64_t>(std::min(a.size(), b.size()));
  int64_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

void Accumulate(const float* logits, int64_t vocab, int32_t target, LoglikResult* r) {
  bool greedy = false;
  r->logprob += LogSoftmaxAt(logits, vocab, target, &greedy);
  r->is_greedy = r->is_greedy && greedy;
}

}  // namespace

LogNormalizer LogSoftmaxNormalizer(const float* logits, int64_t n) {
  LogNormalizer z;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[z.argmax]) z.argmax = i;
  z.max = logits[z.argmax];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - z.max);
  z.log_sum = std::log(sum);
  return z;
}

double LogSoftmaxAt(const float* logits, int64_t n, int32_t target, bool* is_argmax) {
  const LogNormalizer z = LogSoftmaxNormalizer(logits, n);
  if (is_argmax != nullptr) *is_argmax = z.argmax == target;
  return z.LogProb(logits, target);
}

std::vector<int32_t> TruncatedSequence(const LoglikRequest& r, int64_t max_length,
                                       int64_t* n_context) {
  const int64_t n = static_cast<int64_t>(r.context.size());
  const int64_t total = n + static_cast<int64_t>(r.continuation.size());
  int64_t drop = 0;
  if (max_length > 0 && total > max_length + 1) drop = std::min(total - (max_length + 1), n - 1);
  std::vector<int32_t> seq(r.context.begin() + drop, r.context.end());
  seq.insert(seq.end(), r.continuation.begin(), r.continuation.end());
  *n_context = n - drop;
  return seq;
}

// One request in flight: its own copy of the recurrent state, the next token to feed.
struct EngineScorer::Row {
  SequenceState state;
  const std::vector<int32_t>* seq = nullptr;
  int64_t pos = 0;  // seq[pos] is fed next; its logits predict seq[pos + 1]
  int64_t group = 0, index = 0;
  LoglikResult result;
};

EngineScorer::EngineScorer(Runtime* engine, const Model& model, int64_t engine_max_batch,
                           EngineScorerOptions opts)
    : engine_(engine),
      model_(model),
      opts_(opts),
      batch_(opts.batch > 0 ? std::min(opts.batch, engine_max_batch) : engine_max_batch),
      pool_(engine->n_threads()) {
  QM_CHECK(batch_ >= 1, "batch %lld", (long long)batch_);
}

std::vector<std::vector<LoglikResult>> EngineScorer::Score(
    std::span<const std::vector<LoglikRequest>> groups, const EvalProgressFn& progress) {
  std::vector<std::vector<LoglikResult>> out(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    out[g].resize(groups[g].size());
    for (const LoglikRequest& r : groups[g])
      QM_CHECK(!r.context.empty() && !r.continuation.empty(), "empty context or continuation");
  }
  tokens_run_ = 0;
  if (progress) progress(0, static_cast<int64_t>(groups.size()));
  if (opts_.fork_state) {
    ScoreForked(groups, &out, progress);
  } else {
    ScoreFromScratch(groups, &out, progress);
  }
  return out;
}

void EngineScorer::ScoreFromScratch(std::span<const std::vector<LoglikRequest>> groups,
                                    std::vector<std::vector<LoglikResult>>* out,
                                    const EvalProgressFn& progress) {
  const int64_t vocab = engine_->vocab_size();
  std::vector<float> logits(kLogitChunk * vocab);
  std::vector<double> row_lp(kLogitChunk);
  std::unique_ptr<bool[]> row_greedy(new bool[kLogitChunk]);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].size(); ++i) {
      int64_t n = 0;
      const std::vector<int32_t> seq = TruncatedSequence(groups[g][i], opts_.max_length, &n);
      const std::span<const int32_t> s(seq);
      const int64_t len = static_cast<int64_t>(seq.size());
      LoglikResult& r = (*out)[g][i];
      SequenceState state = model_.NewState();
      engine_->Prefill(&state, s.first(n), logits.data(), /*all_logits=*/false);
      Accumulate(logits.data(), vocab, seq[n], &r);
      // The continuation but its last token, with all logits: row t predicts seq[start + t + 1].
      for (int64_t start = n; start < len - 1; start += kLogitChunk) {
        const int64_t T = std::min(kLogitChunk, len - 1 - start);
        engine_->Prefill(&state, s.subspan(start, T), logits.data(), /*all_logits=*/true);
        pool_.ParallelRange(T, 1, [&](int64_t b, int64_t e) {
          for (int64_t t = b; t < e; ++t) {
            row_lp[t] =
                LogSoftmaxAt(logits.data() + t * vocab, vocab, seq[start + t + 1], &row_greedy[t]);
          }
        });
        for (int64_t t = 0; t < T; ++t) {  // in token order, as the forked path sums
          r.logprob += row_lp[t];
          r.is_greedy = r.is_greedy && row_greedy[t];
        }
      }
      tokens_run_ += len - 1;
    }
    if (progress) progress(static_cast<int64_t>(g) + 1, static_cast<int64_t>(groups.size()));
  }
}

void EngineScorer::ScoreForked(std::span<const std::vector<LoglikRequest>> groups,
                               std::vector<std::vector<LoglikResult>>* out,
                               const EvalProgressFn& progress) {
  const int64_t vocab = engine_->vocab_size();
  const int64_t n_groups = static_cast<int64_t>(groups.size());
  std::vector<std::vector<std::vector<int32_t>>> seqs(n_groups);
  std::vector<std::vector<int64_t>> n_ctx(n_groups);
  std::vector<int64_t> open_rows(n_groups);
  for (int64_t g = 0; g < n_groups; ++g) {
    for (const LoglikRequest& r : groups[g]) {
      int64_t n = 0;
      seqs[g].push_back(TruncatedSequence(r, opts_.max_length, &n));
      n_ctx[g].push_back(n);
    }
    open_rows[g] = static_cast<int64_t>(groups[g].size());
  }
  int64_t groups_done = 0;
  auto finish = [&](Row& row) {
    (*out)[row.group][row.index] = row.result;
    if (--open_rows[row.group] == 0 && progress) progress(++groups_done, n_groups);
  };

  std::vector<float> prefix_logits(vocab), row_logits(vocab), step_logits(batch_ * vocab);
  std::vector<Row> active;
  std::deque<Row> waiting;  // forked rows waiting for a batch slot, oldest first
  active.reserve(batch_);

  // Runs group g's shared prefix once; each request gets a copy of that state, prefills its
  // own rest of the context (if any) and scores its first continuation token.
  auto admit = [&](int64_t g) {
    const auto& gs = seqs[g];
    if (gs.empty()) {
      if (progress) progress(++groups_done, n_groups);
      return;
    }
    int64_t q = n_ctx[g][0];
    for (size_t i = 1; i < gs.size(); ++i)
      q = std::min({q, n_ctx[g][i], CommonPrefix(gs[0], gs[i])});
    SequenceState base = model_.NewState();
    if (q > 0) engine_->Prefill(&base, std::span(gs[0]).first(q), prefix_logits.data(), false);
    tokens_run_ += q;
    for (size_t i = 0; i < gs.size(); ++i) {
      Row row;
      row.state = base;
      row.seq = &gs[i];
      row.group = g;
      row.index = static_cast<int64_t>(i);
      const int64_t n = n_ctx[g][i];
      const float* first = prefix_logits.data();
      if (n > q) {
        engine_->Prefill(&row.state, std::span(gs[i]).subspan(q, n - q), row_logits.data(), false);
        tokens_run_ += n - q;
        first = row_logits.data();
      }
      Accumulate(first, vocab, gs[i][n], &row.result);
      row.pos = n;
      if (row.pos + 1 == static_cast<int64_t>(gs[i].size())) {
        finish(row);
      } else {
        waiting.push_back(std::move(row));
      }
    }
  };

  std::vector<SequenceState*> states;
  std::vector<int32_t> ids;
  int64_t next_group = 0;
  while (true) {
    while (next_group < n_groups && static_cast<int64_t>(active.size() + waiting.size()) < batch_)
      admit(next_group++);
    while (static_cast<int64_t>(active.size()) < batch_ && !waiting.empty()) {
      active.push_back(std::move(waiting.front()));
      waiting.pop_front();
    }
    if (active.empty()) break;

    const int64_t B = static_cast<int64_t>(active.size());
    states.clear();
    ids.clear();
    for (Row& r : active) {
      states.push_back(&r.state);
      ids.push_back((*r.seq)[r.pos]);
    }
    engine_->DecodeStep(states, ids, step_logits.data());
    tokens_run_ += B;
    pool_.ParallelRange(B, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        Row& r = active[i];
        ++r.pos;  // the logits of the token just fed predict seq[pos]
        Accumulate(step_logits.data() + i * vocab, vocab, (*r.seq)[r.pos], &r.result);
      }
    });
    // Rows whose last target was just scored leave the batch (unequal lengths drop out).
    for (int64_t i = B - 1; i >= 0; --i) {
      if (active[i].pos + 1 == static_cast<int64_t>(active[i].seq->size())) {
        finish(active[i]);
        active[i] = std::move(active.back());
        active.pop_back();
      }
    }
  }
}

}  // namespace quamba
