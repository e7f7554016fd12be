// Float32 Mamba-2 block (quamba2-spec §1.5). Each step quotes the upstream line it implements
// (mamba_ssm/modules/mamba2.py Mamba2.forward / Mamba2.step).
#include <algorithm>
#include <cstdlib>

#include "model/mamba2/mamba2.h"
#include "model/weights.h"

namespace quamba::mamba2 {

const char* TapName(Tap t) {
  switch (t) {
    case Tap::kInProjIn: return "in_proj:input";
    case Tap::kInProjOut: return "in_proj:output";
    case Tap::kConvOut: return "conv1d:output";
    case Tap::kSsdOut: return "ssd:output";
    case Tap::kOutProjIn: return "out_proj:input";
    case Tap::kOutProjOut: return "out_proj:output";
  }
  return "?";
}

std::vector<StateBufferSpec> StateBuffers(const MambaConfig& c, bool int8_conv, bool int8_ssm) {
  return {{"conv", int8_conv ? DType::kI8 : DType::kF32, (c.d_conv - 1) * c.conv_dim()},
          {"ssm", int8_ssm ? DType::kI8 : DType::kF32, c.nheads * c.headdim * c.d_state}};
}

int64_t ChunkLength() {
  static const int64_t q = [] {
    const char* e = std::getenv("QUAMBA_SSD_CHUNK");
    const int64_t v = e ? std::atoll(e) : 64;
    return std::clamp<int64_t>(v, 16, kernels::kSsdMaxChunk);
  }();
  return q;
}

void SsdRows(const kernels::KernelTable& k, const MambaConfig& c, const float* dt_bias,
             const float* A, float* state, bool chunked, int64_t row0, int64_t seq_len,
             const float* xbc, const float* dt, int64_t lddt, float* y, int64_t hb, int64_t he) {
  const int64_t cd = c.conv_dim(), di = c.d_inner, GN = c.ngroups * c.d_state;
  kernels::SsdArgs a;
  a.H = c.nheads;
  a.P = c.headdim;
  a.N = c.d_state;
  a.G = c.ngroups;
  a.ldx = a.ldbc = cd;
  a.lddt = lddt;
  a.ldy = di;
  a.dt_bias = dt_bias;
  a.dt_min = static_cast<float>(c.dt_limit_min);
  a.dt_max = static_cast<float>(c.dt_limit_max);
  a.A = A;
  a.state = state;
  const int64_t q = chunked ? ChunkLength() : seq_len;
  for (int64_t t0 = 0; t0 < seq_len; t0 += q) {
    const int64_t row = row0 + t0;
    a.L = std::min(q, seq_len - t0);
    a.x = xbc + row * cd;
    a.B = xbc + row * cd + di;
    a.C = xbc + row * cd + di + GN;
    a.dt = dt + row * lddt;
    a.y = y + row * di;
    (chunked ? k.ssd_chunk : k.ssd_scan)(a, hb, he);
  }
}

kernels::GatedNormArgs InPlaceGatedNormArgs(const MambaConfig& c, float* y, const float* xbc,
                                        const float* z, int64_t ldz, const float* D,
                                        const float* w, int64_t T) {
  kernels::GatedNormArgs g;
  g.C = c.d_inner;
  g.G = c.ngroups;
  g.P = c.headdim;
  g.y = y;
  g.ldy = c.d_inner;
  g.x = xbc;
  g.ldx = c.conv_dim();
  g.D = D;
  g.z = z;
  g.ldz = ldz;
  g.w = w;
  g.eps = 1e-5f;  // hard-coded in Mamba2.__init__
  g.out = y;
  g.ldo = c.d_inner;
  g.L = T;
  return g;
}

namespace {

class FloatBlock final : public Block {
 public:
  explicit FloatBlock(const BlockEnv& env)
      : c_(env.c),
        w_(env.w),
        pool_(env.pool),
        k_(env.k),
        dm_(env.c.d_model),
        di_(env.c.d_inner),
        dip_(env.c.d_in_proj()),
        cd_(env.c.conv_dim()),
        H_(env.c.nheads),
        eps_(static_cast<float>(env.c.norm_eps)) {
    const int64_t rows = env.max_rows;
    hn_ = env.scratch.Alloc<float>(rows * dm_);
    zxbcdt_ = env.scratch.Alloc<float>(rows * dip_);
    xbc_ = env.scratch.Alloc<float>(rows * cd_);
    y_ = env.scratch.Alloc<float>(rows * di_);
  }

  void Forward(int layer, const BlockIo& io) override {
    const LayerWeights& L = w_.layers[layer];
    const int64_t T = io.T, dm = dm_, di = di_;
    const int64_t n_seq = io.per_row_states ? T : 1, seq_len = io.per_row_states ? 1 : T;
    ActivationObserver* obs = io.per_row_states ? nullptr : io.observer;
    auto tap = [&](Tap p, const float* x, int64_t cols, int64_t ld) {
      if (obs != nullptr) obs->Observe(layer, static_cast<int>(p), x, T, cols, ld);
    };

    // residual = hidden_states + residual; hidden_states = self.norm(residual)   (Block, fused)
    const float* add = layer == 0 ? nullptr : io.h;
    auto rows = [&](auto&& f) {
      if (T <= 4) f(int64_t{0}, T);
      else pool_.ParallelRange(T, 1, f);
    };
    rows([&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        k_.add_rms_norm(io.residual + t * dm, add ? add + t * dm : nullptr, L.norm, dm, eps_,
                        hn_ + t * dm);
    });
    tap(Tap::kInProjIn, hn_, dm, dm);

    // zxbcdt = self.in_proj(u)                  (T, d_in_proj) = [z | xBC | dt]
    pool_.ParallelRange(dip_, 64, [&](int64_t b, int64_t e) {
      MatMulRange(k_, hn_, T, dm, L.in_proj, zxbcdt_, dip_, b, e);
    });
    tap(Tap::kInProjOut, zxbcdt_, dip_, dip_);

    // xBC = self.act(self.conv1d(xBC.transpose(1, 2)).transpose(1, 2))   (T, conv_dim)
    pool_.ParallelRange(cd_, 16, [&](int64_t cb, int64_t ce) {
      for (int64_t s = 0; s < n_seq; ++s)
        k_.causal_conv1d_silu(zxbcdt_ + s * dip_ + di, seq_len, cd_, dip_, L.conv_w, L.conv_b,
                              static_cast<int>(c_.d_conv),
                              io.states[s]->Get<float>(layer, kConvState), xbc_ + s * cd_, cd_,
                              cb, ce);
    });
    tap(Tap::kConvOut, xbc_, cd_, cd_);

    // y = mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, dt_bias, dt_softplus,
    //                               dt_limit)  /  selective_state_update(...) in step()
    const bool chunked = !io.per_row_states && T > kRecurrentMaxTokens;
    pool_.ParallelRange(H_, 1, [&](int64_t hb, int64_t he) {
      for (int64_t s = 0; s < n_seq; ++s)  // decode: row s; prefill: rows from 0
        SsdRows(k_, c_, L.dt_bias, L.A, io.states[s]->Get<float>(layer, kSsmState), chunked,
                s * seq_len, seq_len, xbc_, zxbcdt_ + di + cd_, dip_, y_, hb, he);
    });
    tap(Tap::kSsdOut, y_, di, di);

    // y = y + x * D;  y = self.norm(y, z)        (RMSNormGated, group_size = d_ssm / ngroups)
    const kernels::GatedNormArgs g =
        InPlaceGatedNormArgs(c_, y_, xbc_, zxbcdt_, dip_, L.D, L.norm_gated, T);
    rows([&](int64_t b, int64_t e) { k_.gated_rms_norm(g, b, e); });
    tap(Tap::kOutProjIn, y_, di, di);
    // Quamba2 (spec §2.2): y = had(y), whose H^T is folded into out_proj's columns.
    if (L.out_proj_hadamard)
      rows([&](int64_t b, int64_t e) { k_.hadamard_f32(y_ + b * di, e - b, di, di); });

    // out = self.out_proj(y)                    h: (T, d_model)
    pool_.ParallelRange(dm, 64, [&](int64_t b, int64_t e) {
      MatMulRange(k_, y_, T, di, L.out_proj, io.h, dm, b, e);
    });
    tap(Tap::kOutProjOut, io.h, dm, dm);
  }

 private:
  const MambaConfig& c_;
  const ModelWeights& w_;
  ThreadPool& pool_;
  const kernels::KernelTable& k_;
  const int64_t dm_, di_, dip_, cd_, H_;
  const float eps_;
  float* hn_;      // (T, d_model) normalised mixer input
  float* zxbcdt_;  // (T, d_in_proj) in_proj output [z | x | B | C | dt]
  float* xbc_;     // (T, conv_dim) conv + SiLU output [x | B | C]
  float* y_;       // (T, d_inner) SSD output, then the gated-norm output (in place)
};

}  // namespace

std::unique_ptr<Block> MakeFloatBlock(const BlockEnv& env) {
  return std::make_unique<FloatBlock>(env);
}

}  // namespace quamba::mamba2
