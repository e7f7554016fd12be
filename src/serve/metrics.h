// Counters and latency histograms of the server, rendered as Prometheus text (GET /metrics).
// Thread-safe: HTTP threads and the scheduler thread both record.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace quamba::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void Observe(double x);
  // Appends the _bucket/_sum/_count lines of `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  std::vector<double> bounds_;   // upper bounds, ascending
  std::vector<uint64_t> counts_;  // (bounds + 1): per bucket, the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Gauges sampled when /metrics is read.
struct Gauges {
  int64_t queue_depth = 0;
  int64_t active_slots = 0;
  int64_t slots = 0;
  int64_t cache_entries = 0;
  uint64_t cache_bytes = 0;
  int64_t cache_hits = 0, cache_misses = 0;
};

class Metrics {
 public:
  Metrics();
  void CountRequest(const std::string& path, int status);
  void AddPromptTokens(int64_t n, int64_t cached);
  void AddGeneratedTokens(int64_t n);
  void ObserveTimeToFirstToken(double s);
  void ObserveTimePerOutputToken(double s);
  void ObserveRequestDuration(double s);
  void ObserveDecodeStep(double s, int64_t batch);
  void ObservePrefillChunk(double s, int64_t tokens);
  std::string Render(const Gauges& g);

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (endpoint, status) -> count
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  uint64_t decode_steps_ = 0, decode_rows_ = 0, prefill_tokens_ = 0;
  Histogram ttft_, tpot_, duration_, step_, prefill_;
};

}  // namespace quamba::serve
