// quamba bench: time to first token (prefill of -p tokens), time per output token (decode),
// as mean ± sd over -r repetitions after one warm-up, llama-bench style. Several -m compare
// models in one run and one table.
//
// Decode is memory-bound, so each repetition also measures its ceiling on the spot: the bytes a
// decode step streams (model.DecodeWeightBytes() plus the recurrent state read and written)
// are read with a plain summing loop (ReadDecodeBytesGBps) over the model's own mapped tensors
// on the same threads, just before and right after the repetition (best of the three reads). The table reports decode GB/s and its
// ratio to that read; taking both in the same moment keeps the ratio meaningful on a shared VM
// whose bandwidth moves by 2x within minutes.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "git_commit.h"  // QM_GIT_COMMIT, generated at build time
#include "model/runtime.h"

namespace quamba::cli {
namespace {

struct Stat {
  double mean = 0, sd = 0;
};
Stat MeanSd(const std::vector<double>& v) {
  Stat s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  if (v.size() > 1) {
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(s.sd / (v.size() - 1));
  }
  return s;
}

// Peak resident set since the last ResetPeakRss(): Linux's VmHWM, which writing "5" to
// /proc/self/clear_refs resets, so each model of a multi-model run gets its own figure. Falls
// back to getrusage's process-lifetime maximum elsewhere.
void ResetPeakRss() {
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}
uint64_t PeakRssBytes() {
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    unsigned long long kb = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %llu kB", &kb) == 1) break;
    std::fclose(f);
    if (kb > 0) return kb * 1024;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

// One model under test: its engine, inputs and the per-repetition timings.
struct Run {
  std::string dir, recipe, weight_type;
  std::unique_ptr<Model> model;
  std::unique_ptr<Runtime> engine;
  std::vector<SequenceState> states;
  std::vector<SequenceState*> ptrs;
  std::vector<int32_t> prompt, next;
  std::vector<float> logits;
  std::mt19937 rng{42};
  std::uniform_int_distribution<int32_t> tok;
  double step_bytes = 0;
  uint64_t file_bytes = 0, peak_rss = 0, state_bytes = 0;  // state_bytes: one sequence's
  std::vector<double> ttft, tpot, ceiling;  // ms, ms per step, GB/s; one per repetition

  void Init(int threads, const kernels::KernelTable& k, int64_t batch, int64_t n_prompt) {
    const MambaConfig& c = model->config();
    recipe = model->recipe();
    weight_type = model->weight_type();
    file_bytes = model->file_bytes();
    state_bytes = model->StateBytes();
    engine = std::make_unique<Runtime>(*model, threads, k, 256, batch);
    // Random ids avoid the first 1000 (often special/rare) and stay inside the vocabulary.
    tok = std::uniform_int_distribution<int32_t>(std::min<int64_t>(1000, c.vocab_size - 1) / 2,
                                                 static_cast<int32_t>(c.vocab_size - 1));
    prompt.resize(n_prompt);
    for (auto& t : prompt) t = tok(rng);
    states.assign(batch, model->NewState());
    for (auto& s : states) ptrs.push_back(&s);
    logits.resize(batch * c.vocab_size);
    next.resize(batch);
    step_bytes = static_cast<double>(model->DecodeWeightBytes() + 2 * batch * model->StateBytes());
  }
  // Repetition r (0 = warm-up, not recorded): prefill, n_gen decode steps, then the ceiling.
  void Rep(int r, int64_t n_gen, ThreadPool& read_pool, const kernels::KernelTable& k) {
    const int64_t batch = static_cast<int64_t>(states.size()), V = model->config().vocab_size;
    const bool want_logits = !prompt.empty();
    for (auto& s : states) s.Reset();
    // The ceiling: best of one read just before this repetition and two just after it.
    const double before = r > 0 && n_gen > 0 ? ReadDecodeBytesGBps(*model, read_pool, k, 1) : 0.0;
    const double t0 = NowSeconds();
    for (int64_t b = 0; b < batch; ++b)
      engine->Prefill(ptrs[b], prompt, want_logits ? logits.data() + b * V : nullptr, false);
    const double t1 = NowSeconds();
    for (int64_t b = 0; b < batch; ++b) next[b] = tok(rng);
    for (int64_t i = 0; i < n_gen; ++i) {
      engine->DecodeStep(ptrs, next, logits.data());
      for (int64_t b = 0; b < batch; ++b) next[b] = tok(rng);
    }
    const double t2 = NowSeconds();
    if (r == 0) return;
    ttft.push_back((t1 - t0) * 1e3);
    if (n_gen) {
      tpot.push_back((t2 - t1) * 1e3 / n_gen);
      ceiling.push_back(std::max(before, ReadDecodeBytesGBps(*model, read_pool, k, 2)));
    }
  }
  void Release() {
    engine.reset();
    model.reset();
  }
};

}  // namespace

int CmdBench(int argc, char** argv) {
  std::vector<std::string> models;
  int64_t n_prompt = 512, n_gen = 128, batch = 1;
  int reps = 5, threads = DefaultThreadCount();
  std::string output = "md";
  bool interleave = false;
  Flags flags("bench", "-m DIR [-m DIR ...] [-p 512] [-n 128] [-r 5] [-t N] [-b 1] "
                       "[--interleave] [-o md|json]");
  flags.AddList("-m,--model", &models, "model directory (repeatable)");
  flags.Add("-p,--n-prompt", &n_prompt, "prompt tokens for prefill (default 512)", 0, 1 << 20);
  flags.Add("-n,--n-gen", &n_gen, "generated tokens (default 128)", 0, 1 << 20);
  flags.Add("-r,--repetitions", &reps, "repetitions after one warm-up (default 5)", 1, 1000);
  flags.Add("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
  flags.Add("-b,--batch", &batch, "sequences decoded together (default 1)", 1, 256);
  flags.AddBool("--interleave", &interleave, "load every model first and alternate their "
                "repetitions (fair ratios on a machine whose speed drifts; no per-model RSS)");
  flags.Add("-o,--output", &output, "md | json (default md)");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  if (models.empty())
    return UsageError(Status::Error("bench -m: expected at least one model directory, found none"));
  if (output != "md" && output != "json")
    return UsageError(Status::Error(StrFormat("bench -o: expected md or json, found \"%s\"",
                                              output.c_str())));
  const kernels::KernelTable& k = kernels::DefaultKernels();
  ThreadPool read_pool(threads);
  auto load = [&](const std::string& dir) -> StatusOr<std::unique_ptr<Run>> {
    std::fprintf(stderr, "bench: loading %s\n", dir.c_str());
    auto run = std::make_unique<Run>();
    run->dir = dir;
    QM_ASSIGN_OR_RETURN(run->model, Model::Load(dir));
    run->Init(threads, k, batch, n_prompt);
    return run;
  };
  // Sequential: one model at a time (its own peak RSS). Interleaved: all models loaded, the
  // repetitions alternate between them, so that a drift of the machine's bandwidth or clock
  // during the run hits every model alike (ratios between models are then fair).
  std::vector<std::unique_ptr<Run>> runs;
  if (interleave) {
    for (const std::string& dir : models) {
      auto r = load(dir);
      if (!r.ok()) return Fail(r.status());
      runs.push_back(std::move(r).value());
    }
    for (int r = 0; r <= reps; ++r)
      for (auto& run : runs) {
        run->Rep(r, n_gen, read_pool, k);
        std::fprintf(stderr, "\rbench: rep %d/%d (interleaved)", r, reps);
      }
    std::fprintf(stderr, "\n");
    for (auto& run : runs) run->peak_rss = 0;  // not separable per model
  } else {
    for (const std::string& dir : models) {
      ResetPeakRss();
      auto r = load(dir);
      if (!r.ok()) return Fail(r.status());
      for (int i = 0; i <= reps; ++i) {
        (*r)->Rep(i, n_gen, read_pool, k);
        std::fprintf(stderr, "\rbench: %s rep %d/%d", dir.c_str(), i, reps);
      }
      std::fprintf(stderr, "\n");
      (*r)->peak_rss = PeakRssBytes();
      (*r)->Release();  // keep the stats, free the weights before the next model
      runs.push_back(std::move(r).value());
    }
  }
  nlohmann::json results = nlohmann::json::array();
  for (const auto& run : runs) {
    const std::vector<double>&ttft = run->ttft, &tpot = run->tpot, &ceiling = run->ceiling;
    const double step_bytes = run->step_bytes;
    std::vector<double> pp, tg;
    for (double x : ttft) pp.push_back(n_prompt * batch / (x / 1e3));
    for (double x : tpot) tg.push_back(batch / (x / 1e3));
    // Per repetition: decode GB/s (bytes of one step / time per step) over the ceiling read
    // right after it.
    std::vector<double> gbps, ratio;
    for (size_t i = 0; i < tpot.size(); ++i) {
      gbps.push_back(step_bytes / (tpot[i] / 1e3) * 1e-9);
      ratio.push_back(ceiling[i] > 0 ? gbps.back() / ceiling[i] : 0.0);
    }
    const Stat s_ttft = MeanSd(ttft), s_tpot = MeanSd(tpot), s_pp = MeanSd(pp), s_tg = MeanSd(tg);
    const Stat s_gbps = MeanSd(gbps), s_ceil = MeanSd(ceiling), s_ratio = MeanSd(ratio);
    const std::string& dir = run->dir;
    const std::string recipe = run->recipe, wdtype = run->weight_type;
    results.push_back({{"model", dir},
                       {"recipe", recipe},
                       {"weight_dtype", wdtype},
                       {"threads", threads},
                       {"isa", kernels::IsaName(k.isa)},
                       {"batch", batch},
                       {"prompt_tokens", n_prompt},
                       {"gen_tokens", n_gen},
                       {"repetitions", reps},
                       {"ttft_ms", s_ttft.mean},
                       {"ttft_ms_sd", s_ttft.sd},
                       {"tpot_ms", s_tpot.mean},
                       {"tpot_ms_sd", s_tpot.sd},
                       {"prefill_tok_s", s_pp.mean},
                       {"prefill_tok_s_sd", s_pp.sd},
                       {"decode_tok_s", s_tg.mean},
                       {"decode_tok_s_sd", s_tg.sd},
                       {"decode_bytes_per_step", step_bytes},
                       {"decode_GBps", s_gbps.mean},
                       {"read_ceiling_GBps", s_ceil.mean},
                       {"decode_vs_ceiling", s_ratio.mean},
                       {"decode_vs_ceiling_sd", s_ratio.sd},
                       {"model_bytes", run->file_bytes},
                       {"state_bytes_per_seq", run->state_bytes},
                       {"peak_rss_bytes", run->peak_rss},
                       {"interleaved", interleave},
                       {"commit", QM_GIT_COMMIT}});
  }
  if (output == "json") {
    // Paths are bytes, JSON is UTF-8: invalid bytes become U+FFFD rather than an exception.
    const std::string text =
        results.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
    return 0;
  }
  std::printf("| model | recipe | weights | size | isa | threads | batch | test | ttft/tpot ms | "
              "tok/s | GB/s (read ceiling) | state/seq | peak RSS |\n");
  std::printf("|---|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|\n");
  for (const auto& r : results) {
    const std::string size = StrFormat("%.2f GiB", r["model_bytes"].get<double>() / (1 << 30));
    const std::string rss = r["interleaved"].get<bool>()
                                ? std::string("n/a")
                                : StrFormat("%.2f GiB", r["peak_rss_bytes"].get<double>() / (1 << 30));
    // The recurrent state one sequence carries (what a server slot or a snapshot costs).
    const double sb = r["state_bytes_per_seq"].get<double>();
    const std::string state = sb >= (1 << 20) ? StrFormat("%.2f MiB", sb / (1 << 20))
                                               : StrFormat("%.1f KiB", sb / 1024);
    auto row = [&](const char* test, const char* lat, const char* tps, const std::string& bw) {
      std::printf("| %s | %s | %s | %s | %s | %d | %lld | %s | %.2f ± %.2f | %.2f ± %.2f | %s | "
                  "%s | %s |\n",
                  r["model"].get<std::string>().c_str(), r["recipe"].get<std::string>().c_str(),
                  r["weight_dtype"].get<std::string>().c_str(), size.c_str(),
                  r["isa"].get<std::string>().c_str(), r["threads"].get<int>(),
                  (long long)r["batch"].get<int64_t>(), test, r[lat].get<double>(),
                  r[std::string(lat) + "_sd"].get<double>(), r[tps].get<double>(),
                  r[std::string(tps) + "_sd"].get<double>(), bw.c_str(), state.c_str(),
                  rss.c_str());
    };
    if (n_prompt)
      row(StrFormat("pp%lld", (long long)n_prompt).c_str(), "ttft_ms", "prefill_tok_s", "");
    if (n_gen)
      row(StrFormat("tg%lld", (long long)n_gen).c_str(), "tpot_ms", "decode_tok_s",
          StrFormat("%.1f (%.0f%% of %.1f)", r["decode_GBps"].get<double>(),
                    100 * r["decode_vs_ceiling"].get<double>(),
                    r["read_ceiling_GBps"].get<double>()));
  }
  if (results.size() > 1) {  // speed relative to the first model (e.g. the float one)
    const auto& base = results[0];
    std::printf("\n");
    for (size_t i = 1; i < results.size(); ++i) {
      const auto& r = results[i];
      auto ratio = [&](const char* key) {
        return base[key].get<double>() > 0 ? r[key].get<double>() / base[key].get<double>() : 0.0;
      };
      std::printf("%s vs %s: prefill %.2fx, decode %.2fx%s\n", r["model"].get<std::string>().c_str(),
                  base["model"].get<std::string>().c_str(), ratio("prefill_tok_s"),
                  ratio("decode_tok_s"), interleave ? " (interleaved)" : "");
    }
  }
  std::printf("\ncommit %s\n", QM_GIT_COMMIT);
  return 0;
}

}  // namespace quamba::cli
