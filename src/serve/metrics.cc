#include "serve/metrics.h"

#include <algorithm>

#include "core/status.h"

namespace quamba::serve {
namespace {

std::vector<double> LatencyBounds() {  // seconds, 1 ms .. 60 s
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void Counter(const char* name, const char* help, uint64_t v, std::string* out) {
  *out += StrFormat("# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                    (unsigned long long)v);
}

void Gauge(const char* name, const char* help, double v, std::string* out) {
  *out += StrFormat("# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

}  // namespace

void Histogram::Observe(double x) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), x) - bounds_.begin();
  ++counts_[i];
  sum_ += x;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string* out) const {
  *out += StrFormat("# HELP %s %s\n# TYPE %s histogram\n", name.c_str(), help.c_str(),
                    name.c_str());
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    *out += StrFormat("%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i],
                      (unsigned long long)cum);
  }
  cum += counts_.back();
  *out += StrFormat("%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name.c_str(),
                    (unsigned long long)cum, name.c_str(), sum_, name.c_str(),
                    (unsigned long long)count_);
}

Metrics::Metrics()
    : ttft_(LatencyBounds()),
      tpot_(LatencyBounds()),
      duration_(LatencyBounds()),
      step_(LatencyBounds()),
      prefill_(LatencyBounds()) {}

void Metrics::CountRequest(const std::string& path, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{path, status}];
}

void Metrics::AddPromptTokens(int64_t n, int64_t cached) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_tokens_ += n;
  cached_tokens_ += cached;
}

void Metrics::AddGeneratedTokens(int64_t n) {
  std::lock_guard<std::mutex> lk(mu_);
  generated_tokens_ += n;
}

void Metrics::ObserveTimeToFirstToken(double s) {
  std::lock_guard<std::mutex> lk(mu_);
  ttft_.Observe(s);
}
void Metrics::ObserveTimePerOutputToken(double s) {
  std::lock_guard<std::mutex> lk(mu_);
  tpot_.Observe(s);
}
void Metrics::ObserveRequestDuration(double s) {
  std::lock_guard<std::mutex> lk(mu_);
  duration_.Observe(s);
}
void Metrics::ObserveDecodeStep(double s, int64_t batch) {
  std::lock_guard<std::mutex> lk(mu_);
  step_.Observe(s);
  ++decode_steps_;
  decode_rows_ += batch;
}
void Metrics::ObservePrefillChunk(double s, int64_t tokens) {
  std::lock_guard<std::mutex> lk(mu_);
  prefill_.Observe(s);
  prefill_tokens_ += tokens;
}

std::string Metrics::Render(const Gauges& g) {
  std::lock_guard<std::mutex> lk(mu_);
  std::string out;
  out += "# HELP quamba_requests_total HTTP requests answered, by endpoint and status\n"
         "# TYPE quamba_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += StrFormat("quamba_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                     key.first.c_str(), key.second, (unsigned long long)n);
  }
  Counter("quamba_prompt_tokens_total", "prompt tokens of admitted sequences", prompt_tokens_, &out);
  Counter("quamba_prompt_tokens_cached_total", "prompt tokens restored from state snapshots",
          cached_tokens_, &out);
  Counter("quamba_generated_tokens_total", "tokens generated", generated_tokens_, &out);
  Counter("quamba_prefill_tokens_total", "prompt tokens run through the model", prefill_tokens_,
          &out);
  Counter("quamba_decode_steps_total", "batched decode steps", decode_steps_, &out);
  Counter("quamba_decode_rows_total", "sequences advanced by decode steps (rows / steps = mean "
          "batch)", decode_rows_, &out);
  Gauge("quamba_queue_depth", "sequences waiting for a slot", g.queue_depth, &out);
  Gauge("quamba_active_slots", "sequences being processed", g.active_slots, &out);
  Gauge("quamba_slots", "slots (--parallel)", g.slots, &out);
  Gauge("quamba_snapshot_cache_entries", "state snapshots cached", g.cache_entries, &out);
  Gauge("quamba_snapshot_cache_bytes", "bytes of cached state snapshots",
        static_cast<double>(g.cache_bytes), &out);
  Counter("quamba_snapshot_cache_hits_total", "prompts resumed from a snapshot", g.cache_hits, &out);
  Counter("quamba_snapshot_cache_misses_total", "prompts with no cached prefix", g.cache_misses,
          &out);
  ttft_.Render("quamba_time_to_first_token_seconds", "submission to first generated token", &out);
  tpot_.Render("quamba_time_per_output_token_seconds",
               "mean time per generated token after the first, per request", &out);
  duration_.Render("quamba_request_duration_seconds", "submission to last token, per sequence",
                   &out);
  step_.Render("quamba_decode_step_seconds", "one batched decode step (model + sampling)", &out);
  prefill_.Render("quamba_prefill_chunk_seconds", "one prefill chunk", &out);
  return out;
}

}  // namespace quamba::serve
