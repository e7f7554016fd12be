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

std::vector<StateBufferSpec> StateBuffers(const MambaConfig& c, bool int8) {
  const DType dt = int8 ? DType::kI8 : DType::kF32;
  return {{"conv", dt, (c.d_conv - 1) * c.conv_dim()},
          {"ssm", dt, c.nheads * c.headdim * c.d_state}};
}

int64_t ChunkLength() {
  static const int64_t q = [] {
    const char* e = std::getenv("QUAMBA_SSD_CHUNK");
    const int64_t v = e ? std::atoll(e) : 64;
    return std::clamp<int64_t>(v, 16, kernels::kSsdMaxChunk);
  }();
  return q;
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
        GN_(env.c.ngroups * env.c.d_state),
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
    kernels::SsdArgs a;
    a.H = H_;
    a.P = c_.headdim;
    a.N = c_.d_state;
    a.G = c_.ngroups;
    a.ldx = a.ldbc = cd_;
    a.lddt = dip_;
    a.ldy = di;
    a.dt_bias = L.dt_bias;
    a.dt_min = static_cast<float>(c_.dt_limit_min);
    a.dt_max = static_cast<float>(c_.dt_limit_max);
    a.A = L.A;
    const bool chunked = !io.per_row_states && T > kRecurrentMaxTokens;
    const int64_t q = chunked ? ChunkLength() : seq_len;
    pool_.ParallelRange(H_, 1, [&](int64_t hb, int64_t he) {
      for (int64_t s = 0; s < n_seq; ++s) {
        kernels::SsdArgs sa = a;
        sa.state = io.states[s]->Get<float>(layer, kSsmState);
        for (int64_t t0 = 0; t0 < seq_len; t0 += q) {
          const int64_t row = s * seq_len + t0;  // decode: row s; prefill: token t0
          sa.L = std::min(q, seq_len - t0);
          sa.x = xbc_ + row * cd_;
          sa.B = xbc_ + row * cd_ + di;
          sa.C = xbc_ + row * cd_ + di + GN_;
          sa.dt = zxbcdt_ + row * dip_ + di + cd_;
          sa.y = y_ + row * di;
          (chunked ? k_.ssd_chunk : k_.ssd_scan)(sa, hb, he);
        }
      }
    });
    tap(Tap::kSsdOut, y_, di, di);

    // y = y + x * D;  y = self.norm(y, z)        (RMSNormGated, group_size = d_ssm / ngroups)
    kernels::GatedNormArgs g;
    g.C = di;
    g.G = c_.ngroups;
    g.P = c_.headdim;
    g.y = y_;
    g.ldy = di;
    g.x = xbc_;
    g.ldx = cd_;
    g.D = L.D;
    g.z = zxbcdt_;
    g.ldz = dip_;
    g.w = L.norm_gated;
    g.eps = 1e-5f;  // hard-coded in Mamba2.__init__
    g.out = y_;
    g.ldo = di;
    g.L = T;
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
  const int64_t dm_, di_, dip_, cd_, H_, GN_;
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
