// Snapshots of the recurrent state after a token prefix, in an LRU cache bounded in bytes. A
// Mamba state has a constant size (a few MB at 1.4B), so keeping the state at each prefill
// chunk boundary of recent prompts is cheap, and a prompt that starts with a cached prefix
// resumes there instead of running it again. Snapshots are taken at multiples of the prefill
// chunk, where an uncached run has the same chunk boundaries, so a resumed prompt computes
// exactly the same numbers as a fresh one.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "model/state.h"
#include "serve/logprobs.h"

namespace quamba::serve {

struct Snapshot {
  std::vector<int32_t> tokens;  // the prefix
  SequenceState state;          // after consuming `tokens`
  std::vector<float> logits;    // (vocab) logits after the last token: predict the next one
  // Prompt log-probs of tokens[0, n) (records_top >= 0), each with records_top top entries.
  std::vector<TokenLogprob> records;
  int records_top = -1;  // -1: no records
  size_t bytes() const;
};

class PrefixCache {
 public:
  struct Stats {
    int64_t entries = 0;
    uint64_t bytes = 0;
    int64_t hits = 0, misses = 0;
  };

  explicit PrefixCache(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // The longest snapshot whose tokens are a prefix of `prompt` (equal allowed) and, when
  // min_top >= 0, that holds records with at least min_top top entries; null if none.
  std::shared_ptr<const Snapshot> Lookup(std::span<const int32_t> prompt, int min_top);
  // Adds `s` as the most recently used entry, replacing one with the same tokens unless that
  // one holds more records; evicts least recently used entries beyond max_bytes.
  void Insert(std::shared_ptr<const Snapshot> s);
  Stats stats();

 private:
  void EvictLocked();
  const uint64_t max_bytes_;
  std::mutex mu_;
  std::list<std::shared_ptr<const Snapshot>> lru_;  // most recent first
  uint64_t bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

// A snapshot as a file: magic, the model's shape (state bytes, vocab, layers, d_model), the
// tokens, the last logits and the state bytes. Records are not saved.
Status WriteSnapshotFile(const Snapshot& s, const Model& model, const std::string& path);
// Reads and checks a file WriteSnapshotFile wrote for a model of the same shape.
StatusOr<std::shared_ptr<Snapshot>> ReadSnapshotFile(const Model& model, const std::string& path);

}  // namespace quamba::serve
