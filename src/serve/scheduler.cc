#include "serve/scheduler.h"

#include <algorithm>
#include <cstring>
#include <future>

#include "core/clock.h"

namespace quamba::serve {
namespace {

// Bytes of `text`, ending at `limit`, that end with a complete UTF-8 sequence: an incomplete
// one at the end is held back until its last byte arrives (a token may end mid-character).
size_t CompleteUtf8Prefix(const std::string& text, size_t limit) {
  for (size_t back = 1; back <= 3 && back <= limit; ++back) {
    const unsigned char c = static_cast<unsigned char>(text[limit - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len > back ? limit - back : limit;
  }
  return limit;
}

}  // namespace

struct Scheduler::Slot {
  enum class Phase { kFree, kPrefill, kDecode };
  int id = 0;
  std::shared_ptr<Job> job;  // null: free
  Phase phase = Phase::kFree;
  SequenceState state;
  std::vector<int32_t> tokens;  // consumed by `state`
  std::vector<float> logits;    // (vocab) after the last consumed token
  int64_t pos = 0;              // prompt tokens consumed (restored ones included)
  int32_t next = -1;            // kDecode: the token the next decode step feeds
  std::unique_ptr<Sampler> sampler;
  std::vector<TokenLogprob> prompt_lp;  // echo with logprobs: records of prompt[0, pos)
  std::string text;                     // generated text (cut at a stop string)
  int64_t n_gen = 0;
  uint64_t order = 0;  // admission order: the oldest prefilling slot goes first
  double t_first = 0;
};

Scheduler::Scheduler(const Model& model, const kernels::KernelTable& k, const SchedulerOptions& opt,
                     Metrics* metrics)
    : model_(model),
      opt_(opt),
      vocab_(model.config().vocab_size),
      metrics_(metrics),
      runtime_(std::make_unique<Runtime>(model, opt.threads, k, opt.chunk, opt.parallel,
                                         opt.simulate)),
      lp_pool_(opt.threads),
      cache_(opt.cache_bytes) {
  QM_CHECK(opt.parallel >= 1 && opt.chunk >= 1 && model.tokenizer() != nullptr);
  for (int i = 0; i < opt.parallel; ++i) {
    auto s = std::make_unique<Slot>();
    s->id = i;
    s->state = model.NewState();
    s->logits.assign(vocab_, 0.0f);
    slots_.push_back(std::move(s));
  }
  chunk_logits_.resize(static_cast<size_t>(opt.chunk) * vocab_);
  step_logits_.resize(static_cast<size_t>(opt.parallel) * vocab_);
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Scheduler::Submitted Scheduler::Submit(const std::vector<std::shared_ptr<Job>>& jobs) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (draining_ || stop_) return Submitted::kDraining;
    // Room for parallel + max_queue sequences in all: running ones and waiting ones.
    if (static_cast<int64_t>(queue_.size() + active_ + jobs.size()) > opt_.parallel + opt_.max_queue)
      return Submitted::kQueueFull;
    const double now = NowSeconds();
    for (const auto& j : jobs) {
      QM_CHECK(!j->params.prompt.empty(), "empty prompt");
      j->t_submit = now;
      queue_.push_back(j);
    }
  }
  cv_.notify_all();
  return Submitted::kOk;
}

void Scheduler::BeginDrain() {
  std::lock_guard<std::mutex> lk(mu_);
  draining_ = true;
}

bool Scheduler::Idle() {
  std::lock_guard<std::mutex> lk(mu_);
  return queue_.empty() && active_ == 0;
}

int64_t Scheduler::queue_depth() {
  std::lock_guard<std::mutex> lk(mu_);
  return static_cast<int64_t>(queue_.size());
}

int Scheduler::active_slots() {
  std::lock_guard<std::mutex> lk(mu_);
  return active_;
}

PrefixCache::Stats Scheduler::cache_stats() { return cache_.stats(); }

Status Scheduler::SaveSlot(int slot, const std::string& path) {
  if (slot < 0 || slot >= opt_.parallel)
    return Status::Error(StrFormat("slot: expected an id in [0, %d), found %d", opt_.parallel, slot));
  std::promise<Status> done;
  auto result = done.get_future();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return Status::Error("the server is stopping");
    controls_.push_back([this, slot, &path, &done] {
      const Slot& s = *slots_[slot];
      if (s.job != nullptr) {
        done.set_value(Status::Error(StrFormat("slot %d: busy with a request", slot)));
      } else if (s.tokens.empty()) {
        done.set_value(Status::Error(StrFormat("slot %d: holds no sequence yet", slot)));
      } else {
        Snapshot snap;
        snap.tokens = s.tokens;
        snap.state = s.state;
        snap.logits = s.logits;
        done.set_value(WriteSnapshotFile(snap, model_, path));
      }
    });
  }
  cv_.notify_all();
  return result.get();
}

Status Scheduler::RestoreSlot(int slot, const std::string& path) {
  if (slot < 0 || slot >= opt_.parallel)
    return Status::Error(StrFormat("slot: expected an id in [0, %d), found %d", opt_.parallel, slot));
  QM_ASSIGN_OR_RETURN(std::shared_ptr<Snapshot> snap, ReadSnapshotFile(model_, path));
  std::promise<Status> done;
  auto result = done.get_future();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return Status::Error("the server is stopping");
    controls_.push_back([this, slot, snap, &done] {
      Slot& s = *slots_[slot];
      if (s.job != nullptr) {
        done.set_value(Status::Error(StrFormat("slot %d: busy with a request", slot)));
        return;
      }
      s.state = snap->state;
      s.tokens = snap->tokens;
      s.logits = snap->logits;
      cache_.Insert(snap);
      done.set_value(Status::Ok());
    });
  }
  cv_.notify_all();
  return result.get();
}

void Scheduler::RunControls() {
  std::deque<std::function<void()>> todo;
  {
    std::lock_guard<std::mutex> lk(mu_);
    todo.swap(controls_);
  }
  for (auto& f : todo) f();
}

void Scheduler::Loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !controls_.empty() || active_ > 0; });
      if (stop_) break;
    }
    RunControls();
    // New jobs join between steps, into free slots.
    for (auto& sp : slots_) {
      if (sp->job != nullptr) continue;
      std::shared_ptr<Job> job;
      {
        std::lock_guard<std::mutex> lk(mu_);
        while (!queue_.empty() && queue_.front()->cancel.load()) {
          std::shared_ptr<Job> gone = queue_.front();
          queue_.pop_front();
          std::lock_guard<std::mutex> jl(gone->note->mu);
          gone->out.done = true;
          gone->out.finish_reason = "cancelled";
          gone->note->cv.notify_all();
        }
        if (queue_.empty()) break;
        job = std::move(queue_.front());
        queue_.pop_front();
        ++active_;
      }
      Admit(sp.get(), std::move(job));
    }
    for (auto& sp : slots_)  // a client that went away frees its slot
      if (sp->job != nullptr && sp->job->cancel.load()) Finish(sp.get(), "cancelled");
    // At most one prefill chunk (of the oldest prompt) between two decode steps, so a long
    // prompt delays the others' next token by one chunk at most.
    Slot* pre = nullptr;
    for (auto& sp : slots_)
      if (sp->phase == Slot::Phase::kPrefill && (pre == nullptr || sp->order < pre->order))
        pre = sp.get();
    if (pre != nullptr) PrefillChunk(pre);
    std::vector<Slot*> dec;
    std::vector<SequenceState*> states;
    std::vector<int32_t> ids;
    for (auto& sp : slots_) {
      if (sp->phase != Slot::Phase::kDecode) continue;
      dec.push_back(sp.get());
      states.push_back(&sp->state);
      ids.push_back(sp->next);
    }
    if (!dec.empty()) {
      const double t0 = NowSeconds();
      runtime_->DecodeStep(states, ids, step_logits_.data());
      for (size_t i = 0; i < dec.size(); ++i) {
        dec[i]->tokens.push_back(ids[i]);
        SampleAndEmit(dec[i], step_logits_.data() + i * vocab_);
      }
      metrics_->ObserveDecodeStep(NowSeconds() - t0, static_cast<int64_t>(dec.size()));
    }
  }
  // Stopping: whatever is left ends as cancelled, and pending controls still answer.
  RunControls();
  for (auto& sp : slots_)
    if (sp->job != nullptr) Finish(sp.get(), "cancelled");
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& job : queue_) {
    std::lock_guard<std::mutex> jl(job->note->mu);
    job->out.done = true;
    job->out.finish_reason = "cancelled";
    job->note->cv.notify_all();
  }
  queue_.clear();
}

void Scheduler::Admit(Slot* s, std::shared_ptr<Job> job) {
  const JobParams& p = job->params;
  const bool want_lp = p.echo && p.logprobs >= 0;
  s->job = std::move(job);
  s->phase = Slot::Phase::kPrefill;
  s->order = admissions_++;
  s->sampler = std::make_unique<Sampler>(p.sampling, vocab_);
  s->prompt_lp.clear();
  s->text.clear();
  s->n_gen = 0;
  s->t_first = 0;
  std::shared_ptr<const Snapshot> snap = cache_.Lookup(p.prompt, want_lp ? p.logprobs : -1);
  if (snap != nullptr) {
    s->state = snap->state;
    s->tokens = snap->tokens;
    s->logits = snap->logits;
    s->pos = static_cast<int64_t>(snap->tokens.size());
    if (want_lp) {
      s->prompt_lp = snap->records;
      for (TokenLogprob& r : s->prompt_lp)
        if (static_cast<int>(r.top.size()) > p.logprobs) r.top.resize(p.logprobs);
    }
  } else {
    s->state.Reset();
    s->tokens.clear();
    s->pos = 0;
  }
  metrics_->AddPromptTokens(static_cast<int64_t>(p.prompt.size()), snap ? s->pos : 0);
  std::lock_guard<std::mutex> lk(s->job->note->mu);
  s->job->out.cached_tokens = snap ? s->pos : 0;
}

void Scheduler::PrefillChunk(Slot* s) {
  const JobParams& p = s->job->params;
  const std::span<const int32_t> prompt(p.prompt);
  const int64_t n = static_cast<int64_t>(prompt.size()), C = opt_.chunk;
  const bool want_lp = p.echo && p.logprobs >= 0;
  if (s->pos < n) {
    const double t0 = NowSeconds();
    // Chunks end at multiples of C, counted from the prompt's start, whether or not a snapshot
    // was restored: the same rows go through the same kernels either way.
    const int64_t end = std::min((s->pos / C + 1) * C, n), T = end - s->pos;
    const std::span<const int32_t> ids = prompt.subspan(s->pos, T);
    if (want_lp) {
      TokenLogprob first;
      first.id = prompt[s->pos];
      if (s->pos > 0) ComputeLogprobs(s->logits.data(), vocab_, p.logprobs, &first);
      s->prompt_lp.push_back(std::move(first));
      runtime_->Prefill(&s->state, ids, chunk_logits_.data(), /*all_logits=*/true);
      // Row r predicts prompt[pos + r + 1]; the last row predicts what follows the chunk.
      const size_t base = s->prompt_lp.size();
      s->prompt_lp.resize(base + T - 1);
      lp_pool_.ParallelRange(T - 1, 1, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          TokenLogprob& rec = s->prompt_lp[base + r];
          rec.id = prompt[s->pos + r + 1];
          ComputeLogprobs(chunk_logits_.data() + r * vocab_, vocab_, p.logprobs, &rec);
        }
      });
      std::memcpy(s->logits.data(), chunk_logits_.data() + (T - 1) * vocab_,
                  vocab_ * sizeof(float));
    } else {
      runtime_->Prefill(&s->state, ids, s->logits.data(), /*all_logits=*/false);
    }
    s->tokens.insert(s->tokens.end(), ids.begin(), ids.end());
    s->pos = end;
    metrics_->ObservePrefillChunk(NowSeconds() - t0, T);
    if (end % C == 0 && opt_.cache_bytes > 0) {
      auto snap = std::make_shared<Snapshot>();
      snap->tokens = s->tokens;
      snap->state = s->state;
      snap->logits = s->logits;
      if (want_lp) {
        snap->records = s->prompt_lp;
        snap->records_top = p.logprobs;
      }
      cache_.Insert(std::move(snap));
    }
  }
  if (s->pos < n) return;
  {
    std::lock_guard<std::mutex> lk(s->job->note->mu);
    if (want_lp) s->job->out.prompt_lp = s->prompt_lp;
    s->job->out.prompt_done = true;
    s->job->note->cv.notify_all();
  }
  if (p.max_tokens == 0) {
    s->t_first = NowSeconds();
    Finish(s, "length");
    return;
  }
  SampleAndEmit(s, s->logits.data());
}

void Scheduler::SampleAndEmit(Slot* s, float* logits) {
  const JobParams& p = s->job->params;
  TokenLogprob rec;
  rec.id = s->sampler->Sample(logits, s->tokens);  // repeat_penalty 1: logits unchanged
  if (p.logprobs >= 0) ComputeLogprobs(logits, vocab_, p.logprobs, &rec);
  if (++s->n_gen == 1) {
    s->t_first = NowSeconds();
    metrics_->ObserveTimeToFirstToken(s->t_first - s->job->t_submit);
  }
  const bool eos = p.eos >= 0 && rec.id == p.eos;
  size_t stop_at = std::string::npos;
  if (!eos) {
    const size_t old = s->text.size();
    s->text += model_.tokenizer()->DecodeToken(rec.id);
    for (const std::string& stop : p.stop) {
      const size_t from = old >= stop.size() ? old - stop.size() + 1 : 0;
      stop_at = std::min(stop_at, s->text.find(stop, from));
    }
    if (stop_at != std::string::npos) s->text.resize(stop_at);
  }
  {
    std::lock_guard<std::mutex> lk(s->job->note->mu);
    s->job->out.gen.push_back(std::move(rec));
    s->job->out.gen_text_end.push_back(s->text.size());
  }
  const int32_t id = s->job->out.gen.back().id;  // written only by this thread
  const bool stop = eos || stop_at != std::string::npos;
  if (stop || s->n_gen >= p.max_tokens) {
    // The slot keeps its last logits for a slot save (copied only here: not every step).
    if (logits != s->logits.data()) std::memcpy(s->logits.data(), logits, vocab_ * sizeof(float));
    Finish(s, stop ? "stop" : "length");
  } else {
    PublishText(s, /*all=*/false);
    s->next = id;
    s->phase = Slot::Phase::kDecode;
  }
}

void Scheduler::PublishText(Slot* s, bool all) {
  size_t limit = s->text.size();
  if (!all) {
    // Hold back the longest end of the text that could still grow into a stop string.
    for (const std::string& stop : s->job->params.stop) {
      for (size_t k = std::min(stop.size() - 1, s->text.size()); k > 0; --k) {
        if (s->text.compare(s->text.size() - k, k, stop, 0, k) == 0) {
          limit = std::min(limit, s->text.size() - k);
          break;
        }
      }
    }
    limit = CompleteUtf8Prefix(s->text, limit);
  }
  std::lock_guard<std::mutex> lk(s->job->note->mu);
  JobOutput& out = s->job->out;
  if (limit > out.text.size()) {
    out.text.append(s->text, out.text.size(), limit - out.text.size());
    s->job->note->cv.notify_all();
  }
}

void Scheduler::Finish(Slot* s, const char* reason) {
  PublishText(s, /*all=*/true);
  const double now = NowSeconds();
  std::shared_ptr<Job> job = std::move(s->job);
  s->phase = Slot::Phase::kFree;
  s->sampler.reset();
  metrics_->AddGeneratedTokens(s->n_gen);
  metrics_->ObserveRequestDuration(now - job->t_submit);
  if (s->n_gen > 1) metrics_->ObserveTimePerOutputToken((now - s->t_first) / (s->n_gen - 1));
  {
    std::lock_guard<std::mutex> lk(job->note->mu);
    job->out.done = true;
    job->out.finish_reason = reason;
    job->out.t_first_token = s->t_first > 0 ? s->t_first : now;
    job->out.t_done = now;
    job->note->cv.notify_all();
  }
  std::lock_guard<std::mutex> lk(mu_);
  --active_;
}

}  // namespace quamba::serve
