// The serving loop: one thread owns the Runtime and every sequence's state. HTTP threads submit
// jobs (one prompt each) and wait on their Notifier; the scheduler admits queued jobs into free
// slots between steps, runs at most one prefill chunk of one slot, then one DecodeStep over every
// decoding slot (continuous batching: B decoding sequences make the int8 GEMV a B-row GEMM),
// samples, and publishes tokens, text and log-probs to the jobs. Prompt prefixes are restored
// from the PrefixCache's snapshots instead of being run again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/runtime.h"
#include "model/sampler.h"
#include "serve/logprobs.h"
#include "serve/metrics.h"
#include "serve/prefix_cache.h"

namespace quamba::serve {

// What to do with one prompt.
struct JobParams {
  std::vector<int32_t> prompt;  // at least one token, each in [0, vocab)
  int64_t max_tokens = 16;      // tokens to generate; 0: none (prompt log-probs only)
  int logprobs = -1;            // -1: no log-probs; 0..kMaxLogprobs: top entries per position
  bool echo = false;            // with logprobs >= 0: the prompt tokens' log-probs too
  SamplerOptions sampling;      // repeat_penalty stays 1 (OpenAI has none)
  std::vector<std::string> stop;  // generation ends before the first occurrence of any
  int32_t eos = -1;               // generation ends at this token (-1: never)
};

// What a job has produced so far. Guarded by its Notifier's mutex; the scheduler appends,
// HTTP threads read.
struct JobOutput {
  std::vector<TokenLogprob> prompt_lp;  // echo && logprobs >= 0: one per prompt token
  bool prompt_done = false;             // prompt consumed (prompt_lp complete)
  std::vector<TokenLogprob> gen;  // generated tokens; logprob/top filled when logprobs >= 0
  // Generated text safe to show: stop strings cut, a possible stop-string prefix and an
  // incomplete UTF-8 sequence at the end held back until the job ends.
  std::string text;
  std::vector<size_t> gen_text_end;  // (gen.size()) bytes of the full text after each token
  bool done = false;
  std::string finish_reason;  // "stop", "length", "cancelled"
  int64_t cached_tokens = 0;  // prompt tokens restored from a snapshot
  double t_first_token = 0;   // NowSeconds() when the first token (or the prompt's end) came
  double t_done = 0;
};

// Wakes the HTTP thread that waits for a set of jobs (the prompts of one request).
struct Notifier {
  std::mutex mu;
  std::condition_variable cv;
};

struct Job {
  JobParams params;
  std::shared_ptr<Notifier> note;
  JobOutput out;                    // guarded by note->mu
  std::atomic<bool> cancel{false};  // set by the HTTP side (client gone): the slot is freed
  double t_submit = 0;
};

struct SchedulerOptions {
  int parallel = 4;         // slots: sequences decoded together
  int64_t max_queue = 64;   // jobs waiting for a slot (beyond `parallel` running); more are refused
  int64_t chunk = 64;       // prefill tokens per step; snapshots at multiples of it
  int threads = 1;          // Runtime threads
  uint64_t cache_bytes = uint64_t{256} << 20;  // prefix snapshots, LRU
  bool simulate = false;
};

class Scheduler {
 public:
  enum class Submitted { kOk, kQueueFull, kDraining };

  // `model` and `metrics` must outlive the scheduler. Starts the scheduler thread.
  Scheduler(const Model& model, const kernels::KernelTable& k, const SchedulerOptions& opt,
            Metrics* metrics);
  // Stop().
  ~Scheduler();
  // Ends the scheduler thread: queued and running jobs end as cancelled (their waiters wake),
  // and Submit answers kDraining from now on. Idempotent.
  void Stop();

  // Queues the jobs, all or none.
  Submitted Submit(const std::vector<std::shared_ptr<Job>>& jobs);
  // From now on Submit answers kDraining; queued and running jobs go on to their end.
  void BeginDrain();
  // True when no job is queued or running.
  bool Idle();

  // Saves the last sequence of `slot` (its state after the tokens it consumed) to `path`
  // (atomically). Runs on the scheduler thread, between steps.
  Status SaveSlot(int slot, const std::string& path);
  // Loads a file SaveSlot wrote into `slot` and into the prefix cache, so that a prompt that
  // starts with its tokens resumes from it.
  Status RestoreSlot(int slot, const std::string& path);

  int parallel() const { return opt_.parallel; }
  int64_t chunk() const { return opt_.chunk; }
  int64_t queue_depth();
  int active_slots();
  PrefixCache::Stats cache_stats();

 private:
  struct Slot;
  void Loop();
  void RunControls();
  void Admit(Slot* s, std::shared_ptr<Job> job);
  void PrefillChunk(Slot* s);
  // Samples the next token of `s` from `logits` (vocab) and publishes it; may finish the job.
  void SampleAndEmit(Slot* s, float* logits);
  void Finish(Slot* s, const char* reason);
  // Publishes the slot's text up to what is safe to show (all of it when `all`).
  void PublishText(Slot* s, bool all);

  const Model& model_;
  const SchedulerOptions opt_;
  const int64_t vocab_;
  Metrics* metrics_;
  std::unique_ptr<Runtime> runtime_;
  ThreadPool lp_pool_;  // log-softmax of prompt rows, between Runtime calls
  PrefixCache cache_;
  std::vector<std::unique_ptr<Slot>> slots_;
  uint64_t admissions_ = 0;
  std::vector<float> chunk_logits_;  // (chunk, vocab)
  std::vector<float> step_logits_;   // (parallel, vocab)

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::deque<std::function<void()>> controls_;  // slot save/restore, run between steps
  int active_ = 0;
  bool draining_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace quamba::serve
