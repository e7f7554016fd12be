// quamba synth: a randomly initialised Mamba-1 checkpoint at a real shape, initialised as
// mamba_ssm does (mamba_simple.py Mamba.__init__ + mixer_seq_simple.py _init_weights), in HF
// layout. For speed work and tests: the weights are random, the text it writes is not.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "args.h"
#include "commands.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

namespace quamba::cli {
namespace {

struct Shape {
  const char* name;
  int64_t n_layer, d_model;
};
constexpr Shape kShapes[] = {{"mamba-130m", 24, 768},  {"mamba-370m", 48, 1024},
                             {"mamba-790m", 48, 1536}, {"mamba-1.4b", 48, 2048},
                             {"mamba-2.8b", 64, 2560}};

// splitmix64: fast, seedable, good enough for initialisation.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double Normal() {  // Box-Muller
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

void Store(DType dt, void* dst, int64_t i, float v) {
  switch (dt) {
    case DType::kF32: static_cast<float*>(dst)[i] = v; break;
    case DType::kF16: static_cast<uint16_t*>(dst)[i] = F32ToF16(v); break;
    case DType::kBF16: static_cast<uint16_t*>(dst)[i] = F32ToBF16(v); break;
    default: QM_CHECK(false, "synth dtype");
  }
}

}  // namespace

int CmdSynth(int argc, char** argv) {
  std::string shape_name, out_dir, dtype_name = "f32", tokenizer;
  int64_t vocab = 50280, n_layer = 0, d_model = 0;
  uint64_t seed = 1234;
  Flags flags("synth", "--shape NAME -o DIR [--dtype f32|f16|bf16]");
  flags.Add("--shape", &shape_name, "mamba-130m | mamba-370m | mamba-790m | mamba-1.4b | "
            "mamba-2.8b | custom (with --n-layer and --d-model)", true);
  flags.Add("-o,--out", &out_dir, "output directory (created)", true);
  flags.Add("--dtype", &dtype_name, "f32 | f16 | bf16 (default f32)");
  flags.Add("--vocab", &vocab, "vocabulary rows (default 50280, GPT-NeoX padded)", 1, 1 << 22);
  flags.Add("--n-layer", &n_layer, "layers (custom shape, or override)", 1, 512);
  flags.Add("--d-model", &d_model, "model width (custom shape, or override)", 1, 1 << 16);
  flags.Add("--seed", &seed, "random seed (default 1234)");
  flags.Add("--tokenizer", &tokenizer, "tokenizer.json to copy into the output directory");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  MambaConfig c;
  bool found = shape_name == "custom";
  for (const Shape& s : kShapes)
    if (shape_name == s.name) {
      c.n_layer = s.n_layer;
      c.d_model = s.d_model;
      found = true;
    }
  if (!found)
    return UsageError(Status::Error(StrFormat("synth --shape: expected mamba-130m, mamba-370m, "
                                              "mamba-790m, mamba-1.4b, mamba-2.8b or custom, "
                                              "found \"%s\"", shape_name.c_str())));
  if (n_layer) c.n_layer = n_layer;
  if (d_model) c.d_model = d_model;
  if (c.n_layer == 0 || c.d_model == 0)
    return UsageError(Status::Error("synth --shape custom: expected --n-layer and --d-model, "
                                    "found them missing"));
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
  c.vocab_size = vocab;
  c.dialect = "hf";

  if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Fail(Status::Error(StrFormat("%s: cannot create directory: %s", out_dir.c_str(),
                                        std::strerror(errno))));
  std::string tok_text;
  if (!tokenizer.empty()) {
    auto t = ReadFileToString(tokenizer);
    if (!t.ok()) return Fail(t.status());
    tok_text = std::move(t).value();
  }

  std::vector<TensorToWrite> tensors;
  uint64_t total = 0;
  int index = 0;
  ForEachTensor(c, [&](const TensorSpec& s) {
    if (s.optional && s.role == TensorRole::kLmHead) return;  // tied
    int64_t numel = 1;
    for (int64_t d : s.shape) numel *= d;
    total += numel * DTypeSize(dt);
    const uint64_t tseed = seed * 1000003ull + index++;
    const int64_t dm = c.d_model, di = c.d_inner, r = c.dt_rank, n_layer_c = c.n_layer;
    const int64_t ds = c.d_state;
    const TensorRole role = s.role;
    tensors.push_back({s.name, dt, s.shape, nullptr, [=](void* dst) {
      Rng rng{tseed};
      auto uni = [&](double bound) { return (float)((2 * rng.Uniform() - 1) * bound); };
      for (int64_t i = 0; i < numel; ++i) {
        float v = 0;
        switch (role) {
          case TensorRole::kEmbedding: v = (float)(0.02 * rng.Normal()); break;  // normal_(std=0.02)
          case TensorRole::kNorm: case TensorRole::kNormF: case TensorRole::kD: v = 1; break;
          case TensorRole::kInProj: v = uni(1 / std::sqrt((double)dm)); break;  // nn.Linear
          case TensorRole::kConvW: case TensorRole::kConvB: v = uni(0.5); break;  // fan_in 1*d_conv
          case TensorRole::kXProj: v = uni(1 / std::sqrt((double)di)); break;
          case TensorRole::kDtProjW: v = uni(1 / std::sqrt((double)r)); break;  // dt_rank^-0.5
          case TensorRole::kDtProjB: {
            // dt = exp(U * (log dt_max - log dt_min) + log dt_min), floor 1e-4;
            // inv_dt = dt + log(-expm1(-dt))  (inverse of softplus)
            double d = std::exp(rng.Uniform() * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3));
            d = std::max(d, 1e-4);
            v = (float)(d + std::log(-std::expm1(-d)));
            break;
          }
          case TensorRole::kALog: v = (float)std::log((double)(i % ds + 1)); break;
          case TensorRole::kOutProj:  // kaiming_uniform_(a=sqrt 5) then /= sqrt(n_layer)
            v = uni(1 / std::sqrt((double)di)) / (float)std::sqrt((double)n_layer_c);
            break;
          case TensorRole::kLmHead: v = (float)(0.02 * rng.Normal()); break;
        }
        Store(dt, dst, i, v);
      }
    }});
  });
  std::fprintf(stderr, "synth: %s, %lld layers, d_model %lld, vocab %lld, %s: %.2f GB\n",
               shape_name.c_str(), (long long)c.n_layer, (long long)c.d_model,
               (long long)c.vocab_size, dtype_name.c_str(), total / 1e9);
  const std::string cfg = c.ToHfJson();
  if (Status s = WriteSafeTensors(out_dir + "/model.safetensors", std::move(tensors),
                                  {{"format", "pt"}, {"quamba_synth_seed", std::to_string(seed)}});
      !s.ok())
    return Fail(s);
  if (Status s = WriteFileAtomic(out_dir + "/config.json", cfg.data(), cfg.size()); !s.ok())
    return Fail(s);
  if (!tok_text.empty())
    if (Status s = WriteFileAtomic(out_dir + "/tokenizer.json", tok_text.data(), tok_text.size());
        !s.ok())
      return Fail(s);
  std::fprintf(stderr, "synth: wrote %s\n", out_dir.c_str());
  return 0;
}

}  // namespace quamba::cli
