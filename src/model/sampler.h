// Next-token sampling: repetition penalty, temperature, top-k, top-p (llama.cpp's order).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace quamba {

struct SamplerOptions {
  float temperature = 0.8f;  // 0 = greedy (argmax)
  int top_k = 40;            // <= 0: whole vocabulary
  float top_p = 0.95f;       // 1: off
  float repeat_penalty = 1.0f;  // 1: off; applied once to each distinct token of the last
                                // `repeat_last_n` (llama.cpp's penalty)
  int repeat_last_n = 64;
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(const SamplerOptions& opt, int64_t vocab_size);
  // Picks the next token from logits (vocab) given the tokens so far; logits are modified.
  int32_t Sample(float* logits, std::span<const int32_t> history);

 private:
  SamplerOptions opt_;
  int64_t vocab_size_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch, (vocab)
  std::vector<int32_t> recent_;                  // scratch, (repeat_last_n)
};

int32_t ArgMax(const float* logits, int64_t n);

}  // namespace quamba
