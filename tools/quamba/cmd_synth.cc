// quamba synth: a randomly initialised Mamba-1 checkpoint at a real shape (model/synth.h), for
// speed work and tests: the weights are random, so is the text it generates.
#include <cstdio>
#include <string>

#include "args.h"
#include "commands.h"
#include "io/mapped_file.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "model/synth.h"

namespace quamba::cli {

int CmdSynth(int argc, char** argv) {
  std::string shape_name, out_dir, dtype_name = "f32", tokenizer;
  int64_t vocab = 50280, n_layer = 0, d_model = 0;
  uint64_t seed = 1234;
  bool force = false;
  Flags flags("synth", "--shape NAME -o DIR [--dtype f32|f16|bf16]");
  flags.Add("--shape", &shape_name, "mamba-130m | mamba-370m | mamba-790m | mamba-1.4b | "
            "mamba-2.8b | mamba2-130m | mamba2-370m | mamba2-780m | mamba2-1.3b | mamba2-2.7b | "
            "custom, custom2 (Mamba-2) with --n-layer and --d-model", true);
  flags.Add("-o,--out", &out_dir, "output directory, created with its parents (must not exist "
            "unless --force)", true);
  flags.Add("--dtype", &dtype_name, "f32 | f16 | bf16 (default f32)");
  flags.Add("--vocab", &vocab, "vocabulary rows (default 50280, GPT-NeoX padded)", 1, 1 << 22);
  flags.Add("--n-layer", &n_layer, "layers (custom shape, or override)", 1, 512);
  flags.Add("--d-model", &d_model, "model width (custom shape, or override)", 1, 1 << 16);
  flags.Add("--seed", &seed, "random seed (default 1234)");
  flags.Add("--tokenizer", &tokenizer, "tokenizer.json to copy into the output directory "
            "(default: a byte-level tokenizer, one id per byte; \"none\": no tokenizer)");
  flags.AddBool("--force", &force, "replace an earlier synth output at -o (only one that holds "
                "nothing else)");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  MambaConfig c;
  if (shape_name == "custom2") SetMamba2Defaults(&c);
  const bool found =
      shape_name == "custom" || shape_name == "custom2" || SynthShape(shape_name, &c);
  if (!found)
    return UsageError(Status::Error(StrFormat("synth --shape: expected mamba-130m, mamba-370m, "
                                              "mamba-790m, mamba-1.4b, mamba-2.8b, mamba2-130m, "
                                              "mamba2-370m, mamba2-780m, mamba2-1.3b, "
                                              "mamba2-2.7b, custom or custom2, found \"%s\"",
                                              shape_name.c_str())));
  if (n_layer) c.n_layer = n_layer;
  if (d_model) c.d_model = d_model;
  if (c.n_layer == 0 || c.d_model == 0)
    return UsageError(Status::Error("synth --shape custom: expected --n-layer and --d-model, "
                                    "found them missing"));
  if (c.arch == Arch::kMamba2 && (2 * c.d_model) % c.headdim != 0)
    return UsageError(Status::Error(StrFormat("synth --d-model: expected a multiple of 32 for "
                                              "Mamba-2 (d_inner = 2 d_model in heads of 64), "
                                              "found %lld", (long long)c.d_model)));
  DType dt;
  if (dtype_name == "f32") dt = DType::kF32;
  else if (dtype_name == "f16") dt = DType::kF16;
  else if (dtype_name == "bf16") dt = DType::kBF16;
  else
    return UsageError(Status::Error(StrFormat("synth --dtype: expected f32, f16 or bf16, found "
                                              "\"%s\"", dtype_name.c_str())));
  c.expand = 2;
  c.d_inner = 2 * c.d_model;
  c.dt_rank = (c.d_model + 15) / 16;
  if (c.arch == Arch::kMamba2) c.nheads = c.d_inner / c.headdim;
  c.vocab_size = vocab;
  c.dialect = "hf";

  std::string tok_text;
  if (tokenizer.empty()) {
    tok_text = ByteLevelTokenizerJson();
  } else if (tokenizer != "none") {
    auto t = ReadFileToString(tokenizer);
    if (!t.ok()) return Fail(t.status());
    tok_text = std::move(t).value();
  }

  const double bytes = SynthCheckpointBytes(c, dt);
  std::fprintf(stderr, "synth: %s, %lld layers, d_model %lld, vocab %lld, %s: %.2f GB\n",
               shape_name.c_str(), (long long)c.n_layer, (long long)c.d_model,
               (long long)c.vocab_size, dtype_name.c_str(), bytes / 1e9);
  OutputDirOptions od;
  od.command = "synth";
  od.force = force;
  od.inputs = {tokenizer};
  od.outputs = {"config.json", "model.safetensors", "tokenizer.json"};
  od.is_earlier_output = [](const std::string& dir) {  // its weights carry synth's seed
    auto st = TensorStore::Open(dir + "/model.safetensors");
    return st.ok() && (*st)->metadata().count("quamba_synth_seed") > 0;
  };
  auto out = OutputDir::Create(out_dir, od);
  if (!out.ok()) return Fail(out.status());
  for (const std::string& n : (*out)->notes()) std::fprintf(stderr, "synth: %s\n", n.c_str());
  const std::string& tmp = (*out)->tmp();
  if (Status s = WriteSynthCheckpoint(c, dt, seed, tmp); !s.ok()) return Fail(s);
  if (!tok_text.empty())
    if (Status s = WriteFileAtomic(tmp + "/tokenizer.json", tok_text.data(), tok_text.size());
        !s.ok())
      return Fail(s);
  if (Status s = (*out)->Commit(); !s.ok()) return Fail(s);
  std::fprintf(stderr, "synth: wrote %s\n", out_dir.c_str());
  return 0;
}

}  // namespace quamba::cli
