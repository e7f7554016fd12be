// Float32 Mamba-1 block, and the float conv / scan the int8 blocks share.
#include "model/mamba1/blocks.h"

#include <algorithm>
#include <utility>

namespace quamba::mamba1 {

BlockBase::BlockBase(const BlockEnv& env)
    : c_(env.c),
      w_(env.w),
      pool_(env.pool),
      k_(env.k),
      q8_(env.q8),
      dm_(env.c.d_model),
      di_(env.c.d_inner),
      ds_(env.c.d_state),
      R_(env.c.dt_rank),
      n_dbl_(env.c.dt_rank + 2 * env.c.d_state),
      eps_(static_cast<float>(env.c.norm_eps)) {
  const int64_t rows = env.max_rows;
  hn_ = env.scratch.Alloc<float>(rows * dm_);
  xz_ = env.scratch.Alloc<float>(rows * 2 * di_);
  xc_ = env.scratch.Alloc<float>(rows * di_);
  x_dbl_ = env.scratch.Alloc<float>(rows * n_dbl_);
  dt_ = env.scratch.Alloc<float>(rows * di_);
  y_ = env.scratch.Alloc<float>(rows * di_);
  const int64_t seg = std::max(R_, ds_);
  ones_ = env.scratch.Alloc<float>(seg);
  tmp_ = env.scratch.Alloc<float>(seg);
  for (int64_t i = 0; i < seg; ++i) ones_[i] = 1.0f;
}

// modeling_falcon_mamba.py: time_step = rms_forward(time_step); B = rms_forward(B); C = ...
// (a weightless RMSNorm with eps mixer_rms_eps over each segment of each row).
void BlockBase::MixerRmsNorm(int64_t T) {
  const float eps = static_cast<float>(c_.mixer_rms_eps);
  for (int64_t t = 0; t < T; ++t) {
    for (auto [off, n] : {std::pair<int64_t, int64_t>{0, R_}, {R_, ds_}, {R_ + ds_, ds_}}) {
      float* seg = x_dbl_ + t * n_dbl_ + off;
      std::copy(seg, seg + n, tmp_);
      k_.add_rms_norm(tmp_, nullptr, ones_, n, eps, seg);
    }
  }
}

void FloatBlock::MatMulRange(const float* x, int64_t M, int64_t ldx, const MatrixRef& w,
                             float* y, int64_t ldy, int64_t nb, int64_t ne) {
  quamba::MatMulRange(k_, x, M, ldx, w, y, ldy, nb, ne);
}

void FloatBlock::MatMul(const float* x, int64_t M, int64_t ldx, const MatrixRef& w, float* y,
                        int64_t ldy) {
  // Split output features across threads; 64 keeps slices aligned to any kernel's tile.
  pool_.ParallelRange(w.rows, 64, [&](int64_t b, int64_t e) {
    quamba::MatMulRange(k_, x, M, ldx, w, y, ldy, b, e);
  });
}

// One Mamba block on rows [0, T).
void FloatBlock::Forward(int layer, const BlockIo& io) {
  const LayerWeights& L = w_.layers[layer];
  const int64_t T = io.T, dm = dm_, di = di_;

  // residual = hidden_states + residual; hidden_states = self.norm(residual)   (Block, fused)
  // The first layer starts the residual stream from the embedding (copied in by the runtime).
  const float* add = layer == 0 ? nullptr : io.h;
  ForRows(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      k_.add_rms_norm(io.residual + t * dm, add ? add + t * dm : nullptr, L.norm, dm, eps_,
                      hn_ + t * dm);
  });
  ActivationObserver* obs = io.per_row_states ? nullptr : io.observer;
  auto tap = [&](Tap p, const float* x, int64_t cols) {
    if (obs != nullptr) obs->Observe(layer, static_cast<int>(p), x, T, cols, cols);
  };
  tap(Tap::kInProjIn, hn_, dm);

  // Per channel range [cb, ce), fused:
  // xz = self.in_proj(hidden_states)            xz_: (T, 2*d_inner) = [x | z], rows of x and z
  // x = self.act(self.conv1d(x)[..., :seqlen])  xc_: (T, d_inner); conv_state carried
  ForChannels([&](int64_t cb, int64_t ce) {
    MatMulRange(hn_, T, dm, L.in_proj, xz_, 2 * di, cb, ce);
    MatMulRange(hn_, T, dm, L.in_proj, xz_, 2 * di, di + cb, di + ce);
    ConvF32(layer, io, L.conv_w, L.conv_b, cb, ce);
  });
  tap(Tap::kInProjOut, xz_, 2 * di);
  tap(Tap::kXProjIn, xc_, di);

  // x_dbl = self.x_proj(x); dt, B, C = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
  MatMul(xc_, T, di, L.x_proj, x_dbl_, n_dbl_);
  if (c_.mixer_rms) MixerRmsNorm(T);  // FalconMamba
  tap(Tap::kXProjOut, x_dbl_, n_dbl_);
  // Per channel range, fused:
  // dt = self.dt_proj.weight @ dt.t()           (bias is added inside the scan, as upstream)
  // y = selective_scan_fn(x, dt, A, B, C, D, z, delta_bias=dt_proj.bias, delta_softplus=True)
  ForChannels([&](int64_t cb, int64_t ce) {
    MatMulRange(x_dbl_, T, n_dbl_, L.dt_proj, dt_, di, cb, ce);
    ScanF32(layer, io, L.dt_bias, L.A, L.D, cb, ce);
  });
  tap(Tap::kDtProjOut, dt_, di);
  tap(Tap::kOutProjIn, y_, di);
  // Quamba2 (spec §2.2): y = had(y), whose H^T is folded into out_proj's columns.
  if (L.out_proj_hadamard)
    ForRows(T, [&](int64_t b, int64_t e) { k_.hadamard_f32(y_ + b * di, e - b, di, di); });

  // out = self.out_proj(y)                      h: (T, d_model)
  MatMul(y_, T, di, L.out_proj, io.h, dm);
  tap(Tap::kOutProjOut, io.h, dm);
}

void BlockBase::ConvF32(int layer, const BlockIo& io, const float* w, const float* b,
                        int64_t cb, int64_t ce) {
  const int64_t di = di_;
  for (int64_t s = 0; s < n_seq(io); ++s)
    k_.causal_conv1d_silu(xz_ + s * 2 * di, seq_len(io), di, 2 * di, w, b,
                          static_cast<int>(c_.d_conv), io.states[s]->Get<float>(layer, kConvState),
                          xc_ + s * di, di, cb, ce);
}

void BlockBase::ScanF32(int layer, const BlockIo& io, const float* dt_bias, const float* A,
                        const float* D, int64_t cb, int64_t ce) {
  const int64_t di = di_, ds = ds_, R = R_, n_dbl = n_dbl_;
  {
    kernels::ScanArgs a;
    a.d_inner = di;
    a.d_state = ds;
    a.ldu = di;
    a.ld_delta = di;
    a.delta_bias = dt_bias;
    a.A = A;
    a.ld_bc = n_dbl;
    a.D = D;
    a.ldz = 2 * di;
    a.ldy = di;
    a.L = seq_len(io);
    for (int64_t s = 0; s < n_seq(io); ++s) {
      a.u = xc_ + s * di;
      a.delta = dt_ + s * di;
      a.B = x_dbl_ + s * n_dbl + R;
      a.C = x_dbl_ + s * n_dbl + R + ds;
      a.z = xz_ + s * 2 * di + di;
      a.state = io.states[s]->Get<float>(layer, kSsmState);
      a.y = y_ + s * di;
      k_.selective_scan(a, cb, ce);
    }
  }
}

}  // namespace quamba::mamba1
