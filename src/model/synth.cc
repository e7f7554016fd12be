#include "model/synth.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/mapped_file.h"
#include "io/unicode.h"
#include "io/safetensors.h"
#include "format/tensors.h"

namespace quamba {
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

bool SynthShape(const std::string& name, MambaConfig* c) {
  const bool m2 = name.rfind("mamba2-", 0) == 0;
  const std::string base = m2 ? "mamba-" + name.substr(7) : name;
  // Mamba-2 shares Mamba-1's layer/width table (quamba2-spec §1.1), 780m/2.7b named differently.
  // (mamba2-1.3b: 48 x 2048 like mamba-1.4b.)
  const std::string m1_name = base == "mamba-780m"   ? "mamba-790m"
                              : base == "mamba-1.3b" ? "mamba-1.4b"
                              : base == "mamba-2.7b" ? "mamba-2.8b"
                                                     : base;
  if (m2 && (base == "mamba-790m" || base == "mamba-1.4b" || base == "mamba-2.8b")) return false;
  if (!m2 && (base == "mamba-780m" || base == "mamba-1.3b" || base == "mamba-2.7b")) return false;
  for (const Shape& s : kShapes)
    if (m1_name == s.name) {
      c->n_layer = s.n_layer;
      c->d_model = s.d_model;
      if (m2) SetMamba2Defaults(c);
      return true;
    }
  return false;
}

void SetMamba2Defaults(MambaConfig* c) {
  // Mamba2.__init__ defaults, as the state-spaces mamba2-* checkpoints use them.
  c->arch = Arch::kMamba2;
  c->d_state = 128;
  c->d_conv = 4;
  c->expand = 2;
  c->headdim = 64;
  c->ngroups = 1;
  c->chunk_size = 256;
  c->nheads = 0;  // derived from d_inner
}

namespace {

void DeriveSizes(MambaConfig* c) {
  if (c->d_inner == 0) c->d_inner = c->expand * c->d_model;
  if (c->dt_rank == 0) c->dt_rank = (c->d_model + 15) / 16;
  if (c->arch == Arch::kMamba2 && c->nheads == 0) c->nheads = c->d_inner / c->headdim;
}

// Bytes free to this user on the filesystem that `path` (or its nearest existing ancestor) is on.
double FreeBytes(std::string path) {
  struct statvfs vfs;
  while (::statvfs(path.c_str(), &vfs) != 0) {
    const size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
    if (path == "." || path == "/") return -1;
    path = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  }
  return (double)vfs.f_bavail * (double)vfs.f_frsize;
}

}  // namespace

double SynthCheckpointBytes(MambaConfig c, DType dtype) {
  DeriveSizes(&c);
  double bytes = 0;
  ForEachTensor(c, [&](const TensorSpec& s) {
    if (s.role == TensorRole::kLmHead && c.tie_embeddings) return;
    double n = (double)DTypeSize(dtype);
    for (int64_t d : s.shape) n *= (double)d;
    bytes += n;
  });
  return bytes;
}

Status WriteSynthCheckpoint(MambaConfig c, DType dt, uint64_t seed, const std::string& dir) {
  DeriveSizes(&c);
  // Refused before anything is written: a checkpoint bigger than the disk would fill it.
  const double need = SynthCheckpointBytes(c, dt), free = FreeBytes(dir);
  if (free >= 0 && need > free)
    return Status::Error(StrFormat("%s: expected a checkpoint that fits in the %.2f GB free on its "
                                   "filesystem, found %.2f GB (--n-layer, --d-model, --vocab)",
                                   dir.c_str(), free / 1e9, need / 1e9));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::Error(StrFormat("%s: cannot create directory: %s", dir.c_str(),
                                   std::strerror(errno)));
  std::vector<TensorToWrite> tensors;
  int index = 0;
  ForEachTensor(c, [&](const TensorSpec& s) {
    if (s.role == TensorRole::kLmHead && c.tie_embeddings) return;  // tied: the table is the head
    const uint64_t tseed = seed * 1000003ull + index++;
    const int64_t dm = c.d_model, di = c.d_inner, r = c.dt_rank, n_layer_c = c.n_layer;
    const int64_t ds = c.d_state;
    const bool is_m2 = c.arch == Arch::kMamba2;
    const TensorRole role = s.role;
    // Chunks come in order: the generator's state carries over from one call to the next.
    tensors.push_back({s.name, dt, s.shape, nullptr,
                       [=, rng = Rng{tseed}](void* dst, int64_t first, int64_t count) mutable {
      auto uni = [&](double bound) { return (float)((2 * rng.Uniform() - 1) * bound); };
      for (int64_t k = 0; k < count; ++k) {
        const int64_t i = first + k;
        float v = 0;
        switch (role) {
          case TensorRole::kEmbedding: v = (float)(0.02 * rng.Normal()); break;  // normal_(std=0.02)
          case TensorRole::kNorm: case TensorRole::kNormF: case TensorRole::kD:
          case TensorRole::kGatedNorm: v = 1; break;
          case TensorRole::kInProj: v = uni(1 / std::sqrt((double)dm)); break;  // nn.Linear
          case TensorRole::kConvW: case TensorRole::kConvB: v = uni(0.5); break;  // fan_in 1*d_conv
          case TensorRole::kXProj: v = uni(1 / std::sqrt((double)di)); break;
          case TensorRole::kDtProjW: v = uni(1 / std::sqrt((double)r)); break;  // dt_rank^-0.5
          case TensorRole::kDtProjB: case TensorRole::kDtBias: {
            // dt = exp(U * (log dt_max - log dt_min) + log dt_min), floor 1e-4;
            // inv_dt = dt + log(-expm1(-dt))  (inverse of softplus)
            double d = std::exp(rng.Uniform() * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3));
            d = std::max(d, 1e-4);
            v = (float)(d + std::log(-std::expm1(-d)));
            break;
          }
          case TensorRole::kALog:
            // Mamba-1: A_log[c, n] = log(n + 1); Mamba-2: A = U(1, 16) per head.
            v = is_m2 ? (float)std::log(1 + 15 * rng.Uniform()) : (float)std::log((double)(i % ds + 1));
            break;
          case TensorRole::kOutProj:  // kaiming_uniform_(a=sqrt 5) then /= sqrt(n_layer)
            v = uni(1 / std::sqrt((double)di)) / (float)std::sqrt((double)n_layer_c);
            break;
          case TensorRole::kLmHead: v = (float)(0.02 * rng.Normal()); break;
        }
        Store(dt, dst, k, v);
      }
    }});
  });
  const std::string cfg = c.ToHfJson();
  QM_RETURN_IF_ERROR(WriteSafeTensors(dir + "/model.safetensors", std::move(tensors),
                                      {{"format", "pt"},
                                       {"quamba_synth_seed", std::to_string(seed)}}));
  return WriteFileAtomic(dir + "/config.json", cfg.data(), cfg.size());
}

}  // namespace quamba
