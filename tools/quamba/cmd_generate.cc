// quamba generate / quamba tokenize
#include <cstdio>
#include <memory>
#include <vector>

#include "args.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "io/mapped_file.h"
#include "model/finite.h"
#include "model/runtime.h"
#include "model/sampler.h"

namespace quamba::cli {
namespace {

StatusOr<std::unique_ptr<Model>> LoadWithTokenizer(const std::string& dir) {
  QM_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::Load(dir));
  if (m->tokenizer() == nullptr)
    return Status::Error(StrFormat("%s/tokenizer.json: expected a tokenizer, found no such file",
                                   dir.c_str()));
  return m;
}

// The prompt from -p TEXT or -f FILE ("-": standard input), exactly one of them. A file can
// carry what an argument cannot: more than the 128 KiB argument limit, and NUL bytes.
StatusOr<std::string> ReadPrompt(const char* cmd, const std::string& prompt,
                                 const std::string& file, bool prompt_given) {
  if (prompt_given == !file.empty())
    return Status::Error(StrFormat("%s: expected exactly one of -p TEXT and -f FILE, found %s",
                                   cmd, prompt_given ? "both" : "neither"));
  if (prompt_given) return prompt;
  if (file != "-") return ReadFileToString(file);
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) text.append(buf, n);
  if (std::ferror(stdin))
    return Status::Error(StrFormat("%s -f -: cannot read standard input", cmd));
  return text;
}

}  // namespace

int CmdGenerate(int argc, char** argv) {
  std::string model_dir, prompt, prompt_file;
  int64_t n_predict = 128;
  SamplerOptions so;
  int threads = DefaultThreadCount();
  bool verbose = false, simulate = false;
  Flags flags("generate", "-m DIR (-p TEXT | -f FILE) [options]");
  flags.Add("-m,--model", &model_dir, "model directory (config.json, model.safetensors, "
            "tokenizer.json)", true);
  flags.Add("-p,--prompt", &prompt, "prompt text");
  flags.Add("-f,--file", &prompt_file, "read the prompt from a file (- for standard input)");
  flags.Add("-n,--n-predict", &n_predict, "tokens to generate (default 128)", 0, 1 << 20);
  flags.Add("--temp", &so.temperature, "sampling temperature; 0 = greedy (default 0.8)", 0, 100);
  flags.Add("--top-p", &so.top_p, "nucleus sampling mass (default 0.95)", 0, 1);
  flags.Add("--top-k", &so.top_k, "keep the k most likely tokens; 0 = all (default 40)", 0,
            1 << 30);
  flags.Add("--repeat-penalty", &so.repeat_penalty, "penalty for the last 64 tokens; 1 = off "
            "(default 1.0)", 0.01, 100);
  flags.Add("--seed", &so.seed, "random seed (default 0)");
  flags.Add("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
  flags.AddBool("-v,--verbose", &verbose, "print the kernel ISA and model details");
  flags.AddBool("--simulate", &simulate, "quantized models: the int8 GEMMs done as float GEMMs "
                "over the same integer grid (checks the integer kernels)");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }

  auto prompt_text = ReadPrompt("generate", prompt, prompt_file, flags.given("-p"));
  if (!prompt_text.ok()) {
    return prompt_file.empty() || prompt_file == "-" ? UsageError(prompt_text.status())
                                                     : Fail(prompt_text.status());
  }
  prompt = std::move(prompt_text).value();
  const double t0 = NowSeconds();
  auto loaded = LoadWithTokenizer(model_dir);
  if (!loaded.ok()) return Fail(loaded.status());
  const Model& model = **loaded;
  const Tokenizer& tok = *model.tokenizer();
  const kernels::KernelTable& k = kernels::DefaultKernels();
  if (simulate) {
    if (Status s = CheckSimulate(model, model_dir); !s.ok()) return Fail(s);
  }
  Runtime engine(model, threads, k, 256, 16, simulate);
  const double t_load = NowSeconds() - t0;
  if (verbose)
    std::fprintf(stderr, "model: %s, %lld layers, d_model %lld, vocab %lld; isa %s, %d threads\n",
                 model_dir.c_str(), (long long)model.config().n_layer,
                 (long long)model.config().d_model, (long long)model.config().vocab_size,
                 kernels::IsaName(k.isa), threads);

  std::vector<int32_t> ids = tok.Encode(prompt);
  const int32_t eos = tok.eos_id() >= 0 ? tok.eos_id() : (int32_t)model.config().eos_token_id;
  if (ids.empty()) ids.push_back(eos);  // an empty prompt starts from the document separator
  SequenceState state = model.NewState();
  std::vector<float> logits(model.config().vocab_size);
  Sampler sampler(so, model.config().vocab_size);

  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  const double t1 = NowSeconds();
  engine.Prefill(&state, ids, logits.data(), /*all_logits=*/false);
  const double t_prompt = NowSeconds() - t1;
  const int64_t V = model.config().vocab_size;
  if (Status s = CheckFiniteLogits(model, logits.data(), V, "after the prompt"); !s.ok()) {
    std::printf("\n");
    return Fail(s);
  }

  std::vector<int32_t> history = ids;
  int64_t generated = 0;
  const double t2 = NowSeconds();
  for (; generated < n_predict; ++generated) {
    const int32_t next = sampler.Sample(logits.data(), history);
    if (next == eos) break;
    history.push_back(next);
    const std::string piece = tok.DecodeToken(next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    if (generated + 1 == n_predict) {
      ++generated;
      break;
    }
    SequenceState* sp = &state;
    engine.DecodeStep({&sp, 1}, {&next, 1}, logits.data());
    if (Status s = CheckFiniteLogits(model, logits.data(), V,
                                     StrFormat("generated token %lld", (long long)generated + 1));
        !s.ok()) {
      std::printf("\n");
      return Fail(s);
    }
  }
  const double t_gen = NowSeconds() - t2;
  std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr,
               "load: %.2f s | prompt: %zu tokens, %.1f tok/s | generation: %lld tokens, %.1f "
               "tok/s | isa %s, %d threads\n",
               t_load, ids.size(), ids.size() / std::max(t_prompt, 1e-9), (long long)generated,
               generated / std::max(t_gen, 1e-9), kernels::IsaName(k.isa), threads);
  return 0;
}

int CmdTokenize(int argc, char** argv) {
  std::string model_dir, prompt, prompt_file;
  bool json = false;
  Flags flags("tokenize", "-m DIR (-p TEXT | -f FILE) [--json]");
  flags.Add("-m,--model", &model_dir, "model directory, or a tokenizer.json file", true);
  flags.Add("-p,--prompt", &prompt, "text to tokenize");
  flags.Add("-f,--file", &prompt_file, "read the text from a file (- for standard input)");
  flags.AddBool("--json", &json, "print a JSON array instead of space-separated ids");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  auto text = ReadPrompt("tokenize", prompt, prompt_file, flags.given("-p"));
  if (!text.ok()) {
    return prompt_file.empty() || prompt_file == "-" ? UsageError(text.status())
                                                     : Fail(text.status());
  }
  prompt = std::move(text).value();
  const bool is_json_file = model_dir.size() > 5 && model_dir.substr(model_dir.size() - 5) == ".json";
  auto tok = Tokenizer::Load(is_json_file ? model_dir : model_dir + "/tokenizer.json");
  if (!tok.ok()) return Fail(tok.status());
  const std::vector<int32_t> ids = tok->Encode(prompt);
  std::string out = json ? "[" : "";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += json ? ", " : " ";
    out += std::to_string(ids[i]);
  }
  out += json ? "]\n" : "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace quamba::cli
