// quamba eval: perplexity over non-overlapping windows (optionally KL divergence against a
// reference model) and lm-evaluation-harness zero-shot tasks. docs/eval.md has the protocol.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "args.h"
#include "commands.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "eval/loglik.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "git_commit.h"  // QM_GIT_COMMIT, generated at build time
#include "io/mapped_file.h"
#include "model/finite.h"
#include "model/runtime.h"

namespace quamba::cli {
namespace {

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Basename(const std::string& p) {
  const size_t i = p.find_last_of('/');
  return i == std::string::npos ? p : p.substr(i + 1);
}

// Progress of one phase, fed by the library's callback.
EvalProgressFn ProgressTo(std::unique_ptr<Progress>* bar, const std::string& what,
                          const std::string& unit) {
  return [bar, what, unit](int64_t done, int64_t total) {
    if (!*bar) *bar = std::make_unique<Progress>(what, total, unit);  // first call: done = 0
    (*bar)->Update(done);
    if (done == total) (*bar)->Finish();
  };
}

// CPU seconds of this process: on a shared machine a steadier speed figure than wall time.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// A stderr is undefined for n < 2 (NaN): null in JSON, "N/A" in the table, as lm-eval prints.
nlohmann::json NumOrNull(double x) { return std::isfinite(x) ? nlohmann::json(x) : nullptr; }
std::string Pm(double x) { return std::isfinite(x) ? StrFormat("± %.4f", x) : std::string("N/A"); }

}  // namespace

int CmdEval(int argc, char** argv) {
  std::string model_dir, ppl_file, ppl_format = "auto", ref_dir, tasks_arg, data_dir;
  int64_t ctx = 2048, stride = 0, limit = 0, batch = 0, max_length = 2048, chunk = 256;
  int threads = DefaultThreadCount();
  bool json = false, no_fork = false, simulate = false;
  Flags flags("eval", "-m DIR [--ppl FILE] [--tasks LIST --data DIR] [options]");
  flags.Add("-m,--model", &model_dir, "model directory (with tokenizer.json)", true);
  flags.Add("--ppl", &ppl_file, "text file for perplexity (e.g. wikitext-2-raw/wiki.test.raw)");
  flags.Add("--ppl-format", &ppl_format,
            "auto | wikitext | raw (default auto: wikitext for wiki.*.raw, i.e. lines as HF "
            "rows joined with \"\\n\\n\", Quamba's protocol)");
  flags.Add("-c,--ctx", &ctx, "perplexity window in tokens (default 2048)", 2, 1 << 20);
  flags.Add("--ppl-stride", &stride, "start a perplexity window every N tokens (default: ctx, "
            "non-overlapping; ctx - 1 scores each token once, as the reference model's training "
            "script: -c 257 --ppl-stride 256)", 1, 1 << 20);
  flags.Add("--kld-ref", &ref_dir, "reference model for KL divergence on the perplexity windows");
  flags.Add("--tasks", &tasks_arg,
            "comma-separated: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, "
            "winogrande");
  flags.Add("--data", &data_dir, "task data directory, laid out as docs/eval.md says");
  flags.Add("--limit", &limit, "first N examples per task, N windows for --ppl (default: all)", 0,
            int64_t{1} << 40);
  flags.Add("-b,--batch", &batch,
            "requests decoded together; 0 = auto: 64, fewer if 64 states pass 1 GiB (default 0)", 0,
            256);
  flags.Add("--max-length", &max_length,
            "lm-eval max_length: longer requests lose their first tokens (default 2048)", 1,
            1 << 30);
  flags.AddBool("--no-fork", &no_fork,
                "score every choice from scratch, not from the context's forked state (slower)");
  flags.AddBool("--simulate", &simulate,
                "quantized -m model: its int8 GEMMs as float GEMMs over the same integer grid (the "
                "--kld-ref model runs as it is: -m Q --simulate --kld-ref Q compares the two)");
  flags.Add("--chunk", &chunk, "tokens per prefill pass of -m (default 256); 1 feeds every "
            "token through the decode step, as generation does (an int8 SSM state is "
            "requantised after every pass)", 1, 1 << 20);
  flags.AddBool("--json", &json, "print results as JSON on stdout");
  flags.Add("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  const std::vector<std::string> task_names = SplitComma(tasks_arg);
  if (ppl_file.empty() && task_names.empty())
    return UsageError(
        Status::Error("eval: expected --ppl FILE and/or --tasks LIST, found neither"));
  for (const std::string& t : task_names) {
    if (!IsKnownTask(t)) {
      std::string all;
      for (const auto& k : KnownTasks()) all += (all.empty() ? "" : ", ") + k;
      return UsageError(Status::Error(
          StrFormat("eval --tasks: expected one of %s, found \"%s\"", all.c_str(), t.c_str())));
    }
  }
  if (!task_names.empty() && data_dir.empty())
    return UsageError(
        Status::Error("eval --data: expected the task data directory, found none "
                      "(required with --tasks)"));
  if (ppl_format != "auto" && ppl_format != "wikitext" && ppl_format != "raw")
    return UsageError(
        Status::Error(StrFormat("eval --ppl-format: expected auto, wikitext or raw, "
                                "found \"%s\"",
                                ppl_format.c_str())));
  if (!ref_dir.empty() && ppl_file.empty())
    return UsageError(Status::Error("eval --kld-ref: expected --ppl FILE too, found none"));

  // Inputs first: a bad data file fails in a second, before any model work.
  std::vector<TaskData> tasks;
  for (const std::string& t : task_names) {
    auto loaded = LoadTask(t, data_dir, limit);
    if (!loaded.ok()) return Fail(loaded.status());
    tasks.push_back(std::move(loaded).value());
  }
  std::string ppl_text;
  bool wikitext_rows = false;
  if (!ppl_file.empty()) {
    auto text = ReadFileToString(ppl_file);
    if (!text.ok()) return Fail(text.status());
    const std::string base = Basename(ppl_file);
    wikitext_rows = ppl_format == "wikitext" ||
                    (ppl_format == "auto" && base.rfind("wiki.", 0) == 0 && EndsWith(base, ".raw"));
    ppl_text = wikitext_rows ? WikiTextJoinRows(*text) : std::move(text).value();
  }

  auto loaded = Model::Load(model_dir);
  if (!loaded.ok()) return Fail(loaded.status());
  const Model& model = **loaded;
  if (model.tokenizer() == nullptr)
    return Fail(
        Status::Error(StrFormat("%s/tokenizer.json: expected a tokenizer, found no such "
                                "file",
                                model_dir.c_str())));
  if (simulate) {
    if (Status s = CheckSimulate(model, model_dir); !s.ok()) return Fail(s);
  }
  const Tokenizer& tok = *model.tokenizer();
  if (tok.vocab_size() > model.config().vocab_size)
    return Fail(Status::Error(
        StrFormat("%s/tokenizer.json: expected at most %lld ids (the model's "
                  "vocab_size), found %d",
                  model_dir.c_str(), (long long)model.config().vocab_size, tok.vocab_size())));
  if (batch == 0) {
    // A decode step streams every weight once for all its rows, so wider steps amortise it
    // better (docs/eval.md); but each row holds a forked state.
    const double state_bytes = static_cast<double>(model.StateBytes());
    batch = std::clamp<int64_t>(static_cast<int64_t>((1 << 30) / state_bytes), 4, 64);
  }
  const kernels::KernelTable& k = kernels::DefaultKernels();
  Runtime engine(model, threads, k, chunk, batch, simulate);
  std::fprintf(stderr, "eval: %s (%s, %s%s), isa %s, %d threads\n", model_dir.c_str(),
               model.recipe().c_str(), model.weight_type().c_str(),
               simulate ? ", simulated in float" : "", kernels::IsaName(k.isa), threads);

  nlohmann::json out = {{"model", model_dir}, {"recipe", model.recipe()}, {"simulate", simulate},
                        {"threads", threads}, {"isa", kernels::IsaName(k.isa)},
                        {"batch", batch},     {"commit", QM_GIT_COMMIT}};
  if (chunk != 256) out["chunk"] = chunk;
  std::string table;

  if (!ppl_file.empty()) {
    std::unique_ptr<Model> ref_model;
    std::unique_ptr<Runtime> ref_engine;
    if (!ref_dir.empty()) {
      auto r = Model::Load(ref_dir);
      if (!r.ok()) return Fail(r.status());
      ref_model = std::move(r).value();
      if (ref_model->config().vocab_size != model.config().vocab_size)
        return Fail(
            Status::Error(StrFormat("%s/config.json: vocab_size: expected %lld (as the "
                                    "evaluated model), found %lld",
                                    ref_dir.c_str(), (long long)model.config().vocab_size,
                                    (long long)ref_model->config().vocab_size)));
      ref_engine = std::make_unique<Runtime>(*ref_model, threads, k, 256, batch);
    }
    const double t0 = NowSeconds();
    const std::vector<int32_t> ids = tok.Encode(ppl_text);
    std::fprintf(stderr, "eval: %s: %zu tokens (%s) in %.1f s\n", ppl_file.c_str(), ids.size(),
                 wikitext_rows ? "wikitext rows joined with \"\\n\\n\"" : "raw text",
                 NowSeconds() - t0);
    PerplexityOptions po;
    po.ctx = ctx;
    po.stride = stride;
    po.max_windows = limit;
    std::unique_ptr<Progress> bar;
    const double t1 = NowSeconds();
    auto res = EvaluatePerplexity({&model, &engine}, {ref_model.get(), ref_engine.get()}, ids, po,
                                  ProgressTo(&bar, "ppl", "windows"));
    if (!res.ok()) return Fail(Status::Error(ppl_file + ": " + res.status().message()));
    const PerplexityResult& p = *res;
    const double secs = NowSeconds() - t1;
    out["ppl"] = p.ppl;
    out["ppl_stderr"] = p.ppl_stderr;
    out["nll"] = p.nll;
    out["tokens"] = p.tokens;
    out["windows"] = p.windows;
    out["ctx"] = p.ctx;
    out["ppl_stride"] = p.stride;
    out["nll"] = p.nll;
    out["ppl_file"] = ppl_file;
    out["ppl_format"] = wikitext_rows ? "wikitext" : "raw";
    out["ppl_seconds"] = secs;
    table += StrFormat("| %s (ctx %lld) | %lld windows | ppl | %.4f | %s |\n",
                       Basename(ppl_file).c_str(), (long long)p.ctx, (long long)p.windows, p.ppl,
                       Pm(p.ppl_stderr).c_str());
    if (p.has_ref) {
      out["ref_model"] = ref_dir;
      out["ref_ppl"] = p.ref_ppl;
      out["kld_mean"] = p.kld_mean;
      out["kld_stderr"] = p.kld_stderr;
      out["kld_median"] = p.kld_median;
      out["kld_p99"] = p.kld_p99;
      out["kld_max"] = p.kld_max;
      out["same_top"] = p.same_top;
      out["same_top_stderr"] = p.same_top_stderr;
      table += StrFormat("| | | ref ppl | %.4f | |\n", p.ref_ppl);
      table += StrFormat("| | | KLD mean | %.6f | ± %.6f |\n", p.kld_mean, p.kld_stderr);
      table += StrFormat("| | | KLD median / p99 / max | %.6f / %.6f / %.6f | |\n", p.kld_median,
                         p.kld_p99, p.kld_max);
      table += StrFormat("| | | same top token | %.4f | ± %.4f |\n", p.same_top, p.same_top_stderr);
    }
  }

  if (!tasks.empty()) {
    EngineScorerOptions so;
    so.fork_state = !no_fork;
    so.max_length = max_length;
    so.batch = batch;
    EngineScorer scorer(&engine, model, batch, so);
    const int32_t eot =
        tok.eos_id() >= 0 ? tok.eos_id() : static_cast<int32_t>(model.config().eos_token_id);
    out["fork"] = !no_fork;
    out["tasks"] = nlohmann::json::array();
    for (const TaskData& t : tasks) {
      std::unique_ptr<Progress> bar;
      const double t0 = NowSeconds(), c0 = CpuSeconds();
      const TaskResult r = RunTask(t, tok, eot, &scorer, ProgressTo(&bar, t.name, "examples"));
      if (r.non_finite > 0) {  // NaN or Inf logits: name the tensor, never print a wrong score
        if (Status s = FindNonFiniteWeights(model); !s.ok()) return Fail(s);
        return Fail(Status::Error(StrFormat(
            "%s: %s: expected finite log-likelihoods, found %lld that are not, with finite "
            "weights: the activations overflow float32",
            model_dir.c_str(), r.task.c_str(), (long long)r.non_finite)));
      }
      const double secs = NowSeconds() - t0, cpu = CpuSeconds() - c0;
      nlohmann::json j = {
          {"task", r.task}, {"n", r.n}, {"acc", r.acc}, {"stderr", NumOrNull(r.acc_stderr)}};
      table += StrFormat("| %s | %lld | acc | %.4f | %s |\n", r.task.c_str(), (long long)r.n, r.acc,
                         Pm(r.acc_stderr).c_str());
      if (r.has_acc_norm) {
        j["acc_norm"] = r.acc_norm;
        j["acc_norm_stderr"] = NumOrNull(r.acc_norm_stderr);
        table +=
            StrFormat("| | | acc_norm | %.4f | %s |\n", r.acc_norm, Pm(r.acc_norm_stderr).c_str());
      }
      if (r.has_ppl) {
        j["ppl"] = r.ppl;
        j["ppl_stderr"] = NumOrNull(r.ppl_stderr);
        table += StrFormat("| | | ppl | %.4f | %s |\n", r.ppl, Pm(r.ppl_stderr).c_str());
      }
      j["seconds"] = secs;
      j["cpu_seconds"] = cpu;
      j["tokens_run"] = scorer.tokens_run();
      j["source"] = t.source;
      out["tasks"].push_back(j);
      std::fprintf(stderr, "eval: %s: %lld examples in %.1f s, %.1f CPU s (%s, %lld tokens run)\n",
                   r.task.c_str(), (long long)r.n, secs, cpu,
                   no_fork ? "each choice from scratch" : "forked states",
                   (long long)scorer.tokens_run());
    }
  }

  if (json) {
    // Paths are bytes, JSON is UTF-8: invalid bytes become U+FFFD rather than an exception.
    const std::string text =
        out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
  } else {
    std::printf("| task | n | metric | value | stderr |\n|---|---:|---|---:|---:|\n%s",
                table.c_str());
  }
  return 0;
}

}  // namespace quamba::cli
