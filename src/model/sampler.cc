#include "model/sampler.h"

#include <algorithm>
#include <cmath>

namespace quamba {

int32_t ArgMax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplerOptions& opt, int64_t vocab_size) : opt_(opt), vocab_size_(vocab_size), rng_(opt.seed) {
  cand_.reserve(vocab_size);
}

int32_t Sampler::Sample(float* logits, std::span<const int32_t> history) {
  const int64_t V = vocab_size_;
  if (opt_.repeat_penalty != 1.0f && !history.empty()) {
    // CTRL-style penalty as llama.cpp: shrink positive logits, push negative ones further down.
    // Once per distinct token of the last repeat_last_n, however often it occurs there.
    const size_t n = std::min<size_t>(history.size(), std::max(0, opt_.repeat_last_n));
    recent_.assign(history.end() - n, history.end());
    std::sort(recent_.begin(), recent_.end());
    recent_.erase(std::unique(recent_.begin(), recent_.end()), recent_.end());
    for (int32_t id : recent_) {
      float& l = logits[id];
      l = l > 0 ? l / opt_.repeat_penalty : l * opt_.repeat_penalty;
    }
  }
  if (opt_.temperature <= 0.0f) return ArgMax(logits, V);

  cand_.clear();
  for (int64_t i = 0; i < V; ++i) cand_.push_back({logits[i], static_cast<int32_t>(i)});
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first; };
  size_t k = cand_.size();
  if (opt_.top_k > 0 && static_cast<size_t>(opt_.top_k) < k) {
    k = opt_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
    cand_.resize(k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax at temperature T over the survivors (max subtracted for range safety). In double: for
  // a float T near 1e-39, 1/T overflows float (inf * 0 = NaN for the top token), not double, so
  // a tiny T stays greedy.
  const double inv_t = 1.0 / static_cast<double>(opt_.temperature);
  const double mx = cand_[0].first;
  double sum = 0;
  for (auto& c : cand_) {
    c.first = static_cast<float>(std::exp((c.first - mx) * inv_t));
    sum += c.first;
  }
  // Top-p: the smallest prefix whose probability mass reaches top_p.
  size_t keep = cand_.size();
  if (opt_.top_p < 1.0f) {
    double acc = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      acc += cand_[i].first / sum;
      if (acc >= opt_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += cand_[i].first;
  std::uniform_real_distribution<double> uni(0.0, mass);
  double r = uni(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= cand_[i].first;
    if (r <= 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace quamba
