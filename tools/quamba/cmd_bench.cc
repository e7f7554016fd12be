// quamba bench: time to first token (prefill of -p tokens), time per output token (decode),
// as mean ± sd over -r repetitions after one warm-up, llama-bench style. Several -m compare
// models in one run and one table.
//
// Decode is memory-bound, so each repetition also measures its ceiling on the spot: the bytes a
// decode step streams (model.DecodeWeightBytes() plus the recurrent state read and written)
// are read with a plain summing loop (kernels' sum_u64) over the model's own mapped tensors on
// the same threads, right after the repetition's decode. The table reports decode GB/s and its
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
#include "model/mamba.h"

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

// Best of `passes` reads of the spans (GB/s, 1e9 bytes/s), split into `pool.size()`
// contiguous byte ranges, one per thread.
double ReadCeilingGBps(ThreadPool& pool, const kernels::KernelTable& k,
                       const std::vector<std::span<const uint8_t>>& spans, int passes) {
  uint64_t total = 0;
  for (const auto& s : spans) total += s.size();
  if (total == 0) return 0;
  std::vector<uint64_t> sink(pool.size());
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const double t0 = NowSeconds();
    pool.Run([&](int tid, int nt) {
      const uint64_t b = total * tid / nt, e = total * (tid + 1) / nt;
      uint64_t off = 0, acc = 0;
      for (const auto& s : spans) {  // the part of [b, e) inside this span
        const uint64_t lo = std::max(b, off), hi = std::min<uint64_t>(e, off + s.size());
        if (lo < hi) acc += k.sum_u64(s.data() + (lo - off), static_cast<int64_t>(hi - lo));
        off += s.size();
      }
      sink[tid] += acc;
    });
    const double dt = NowSeconds() - t0;
    best = std::max(best, static_cast<double>(total) / dt * 1e-9);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  (void)keep;
  return best;
}

}  // namespace

int CmdBench(int argc, char** argv) {
  std::vector<std::string> models;
  int64_t n_prompt = 512, n_gen = 128, batch = 1;
  int reps = 5, threads = DefaultThreadCount();
  std::string output = "md";
  Flags flags("bench", "-m DIR [-m DIR ...] [-p 512] [-n 128] [-r 5] [-t N] [-b 1] [-o md|json]");
  flags.AddList("-m,--model", &models, "model directory (repeatable)");
  flags.Add("-p,--n-prompt", &n_prompt, "prompt tokens for prefill (default 512)", 0, 1 << 20);
  flags.Add("-n,--n-gen", &n_gen, "generated tokens (default 128)", 0, 1 << 20);
  flags.Add("-r,--repetitions", &reps, "repetitions after one warm-up (default 5)", 1, 1000);
  flags.Add("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
  flags.Add("-b,--batch", &batch, "sequences decoded together (default 1)", 1, 256);
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
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& dir : models) {
    std::fprintf(stderr, "bench: loading %s\n", dir.c_str());
    ResetPeakRss();
    auto loaded = MambaModel::Load(dir);
    if (!loaded.ok()) return Fail(loaded.status());
    const MambaModel& model = **loaded;
    const MambaConfig& c = model.config();
    Engine engine(model, threads, k, 256, batch);
    std::mt19937 rng(42);
    // Random ids avoid the first 1000 (often special/rare) and stay inside the vocabulary.
    std::uniform_int_distribution<int32_t> tok(std::min<int64_t>(1000, c.vocab_size - 1) / 2,
                                               static_cast<int32_t>(c.vocab_size - 1));
    std::vector<int32_t> prompt(n_prompt);
    for (auto& t : prompt) t = tok(rng);
    std::vector<SequenceState> states(batch, model.NewState());
    std::vector<SequenceState*> ptrs;
    for (auto& s : states) ptrs.push_back(&s);
    std::vector<float> logits(batch * c.vocab_size);
    std::vector<int32_t> next(batch);
    std::vector<double> ttft, tpot, ceiling;
    const std::vector<std::span<const uint8_t>> spans = model.DecodeWeightSpans();
    const double step_bytes =
        static_cast<double>(model.DecodeWeightBytes() + 2 * batch * model.StateBytes());
    ThreadPool read_pool(threads);
    for (int r = 0; r <= reps; ++r) {  // r == 0 is the warm-up
      for (auto& s : states) s.Reset();
      const double t0 = NowSeconds();
      for (int64_t b = 0; b < batch; ++b)
        engine.Prefill(ptrs[b], prompt, n_prompt ? logits.data() + b * c.vocab_size : nullptr,
                       false);
      const double t1 = NowSeconds();
      for (int64_t b = 0; b < batch; ++b) next[b] = tok(rng);
      for (int64_t i = 0; i < n_gen; ++i) {
        engine.DecodeStep(ptrs, next, logits.data());
        for (int64_t b = 0; b < batch; ++b) next[b] = tok(rng);
      }
      const double t2 = NowSeconds();
      if (r == 0) continue;
      ttft.push_back((t1 - t0) * 1e3);
      if (n_gen) {
        tpot.push_back((t2 - t1) * 1e3 / n_gen);
        ceiling.push_back(ReadCeilingGBps(read_pool, k, spans, 2));
      }
      std::fprintf(stderr, "\rbench: %s rep %d/%d", dir.c_str(), r, reps);
    }
    std::fprintf(stderr, "\n");
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
    const std::string recipe = model.recipe(), wdtype = model.weight_type();
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
                       {"model_bytes", model.file_bytes()},
                       {"peak_rss_bytes", PeakRssBytes()},
                       {"commit", QM_GIT_COMMIT}});
  }
  if (output == "json") {
    std::printf("%s\n", results.dump(2).c_str());
    return 0;
  }
  std::printf("| model | recipe | weights | size | isa | threads | batch | test | ttft/tpot ms | "
              "tok/s | GB/s (read ceiling) | peak RSS |\n");
  std::printf("|---|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|\n");
  for (const auto& r : results) {
    const std::string size = StrFormat("%.2f GiB", r["model_bytes"].get<double>() / (1 << 30));
    const std::string rss = StrFormat("%.2f GiB", r["peak_rss_bytes"].get<double>() / (1 << 30));
    auto row = [&](const char* test, const char* lat, const char* tps, const std::string& bw) {
      std::printf("| %s | %s | %s | %s | %s | %d | %lld | %s | %.2f ± %.2f | %.2f ± %.2f | %s | "
                  "%s |\n",
                  r["model"].get<std::string>().c_str(), r["recipe"].get<std::string>().c_str(),
                  r["weight_dtype"].get<std::string>().c_str(), size.c_str(),
                  r["isa"].get<std::string>().c_str(), r["threads"].get<int>(),
                  (long long)r["batch"].get<int64_t>(), test, r[lat].get<double>(),
                  r[std::string(lat) + "_sd"].get<double>(), r[tps].get<double>(),
                  r[std::string(tps) + "_sd"].get<double>(), bw.c_str(), rss.c_str());
    };
    if (n_prompt)
      row(StrFormat("pp%lld", (long long)n_prompt).c_str(), "ttft_ms", "prefill_tok_s", "");
    if (n_gen)
      row(StrFormat("tg%lld", (long long)n_gen).c_str(), "tpot_ms", "decode_tok_s",
          StrFormat("%.1f (%.0f%% of %.1f)", r["decode_GBps"].get<double>(),
                    100 * r["decode_vs_ceiling"].get<double>(),
                    r["read_ceiling_GBps"].get<double>()));
  }
  std::printf("\ncommit %s\n", QM_GIT_COMMIT);
  return 0;
}

}  // namespace quamba::cli
