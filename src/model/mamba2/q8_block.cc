// Static int8 Mamba-2 block of Quamba2's A8 recipes (quamba2-spec §2.5; step numbers in
// brackets are its table's): int8 in_proj / out_proj GEMMs through Int8Gemm (W8 or W4 weights),
// the int8 conv with per-channel scales, the SSD on dequantised int8 inputs (x per sort-and-
// cluster group, B / C per SSD group) in float32 as the official kernels do, an int8 SSM state
// requantised after every call (a decode step; a prefill chunk at its end), the gated norm in
// float32, then the online Hadamard fused with the out_proj-input quantization.
#include <algorithm>

#include "model/mamba2/mamba2.h"
#include "model/weights.h"

namespace quamba::mamba2 {
namespace {

class StaticInt8Block final : public Block {
 public:
  // int8_state: the SSM state kept int8 (QuantConfig::SsmStateInt8), else float32.
  StaticInt8Block(const BlockEnv& env, bool hadamard, bool int8_state)
      : hadamard_(hadamard),
        int8_state_(int8_state),
        c_(env.c),
        w_(env.w),
        pool_(env.pool),
        k_(env.k),
        q8_(env.q8),
        gemm_(*env.gemm),
        dm_(env.c.d_model),
        di_(env.c.d_inner),
        dip_(env.c.d_in_proj()),
        cd_(env.c.conv_dim()),
        H_(env.c.nheads),
        P_(env.c.headdim),
        N_(env.c.d_state),
        eps_(static_cast<float>(env.c.norm_eps)) {
    QM_CHECK(env.gemm != nullptr, "int8 block without an Int8Gemm");
    const int64_t rows = env.max_rows;
    hn_q_ = env.scratch.Alloc<int8_t>(rows * dm_);
    zxbcdt_q_ = env.scratch.Alloc<int8_t>(rows * dip_);
    xbc_q_ = env.scratch.Alloc<int8_t>(rows * cd_);
    xbc_ = env.scratch.Alloc<float>(rows * cd_);
    z_ = env.scratch.Alloc<float>(rows * di_);
    dt_ = env.scratch.Alloc<float>(rows * H_);
    y_ = env.scratch.Alloc<float>(rows * di_);
    y_q_ = env.scratch.Alloc<int8_t>(rows * di_);
    if (int8_state) state_ = env.scratch.Alloc<float>(H_ * P_ * N_);
  }

  void Forward(int layer, const BlockIo& io) override {
    const QLayerWeights& L = w_.qlayers[layer];
    const int64_t T = io.T, dm = dm_, di = di_, dip = dip_, cd = cd_, H = H_, P = P_, N = N_;
    const int64_t n_seq = io.per_row_states ? T : 1, seq_len = io.per_row_states ? 1 : T;
    auto rows = [&](auto&& f) {
      if (T <= 4) f(int64_t{0}, T);
      else pool_.ParallelRange(T, 1, f);
    };

    // [1] residual += h; hn_q = RoundS8(RMSNorm(residual) / s_in)     (T, d_model), weight 1
    const float* add = layer == 0 ? nullptr : io.h;
    rows([&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        q8_.add_rms_norm_quant(io.residual + t * dm, add ? add + t * dm : nullptr, L.norm, dm,
                               eps_, 1.0f / L.s_in, hn_q_ + t * dm);
    });
    // [2] zxbcdt_q = RoundS8(fl(s_in * col[n]) * (hn_q @ W_in^T))      (T, d_in_proj) int8
    gemm_.Run(hn_q_, T, dm, dm, L.in_proj, &L.s_in, 0, 1.0f, zxbcdt_q_, nullptr, dip);

    // [3-4] xbc_q = RoundS8(SiLU(conv(xBC_q)) / s_out[c]), per-channel scales  (T, conv_dim);
    // then its dequantised copy for the SSD and the D skip.
    pool_.ParallelRange(cd, 16, [&](int64_t cb, int64_t ce) {
      kernels::Conv1dS8Args a;
      a.C = cd;
      a.d_conv = static_cast<int>(c_.d_conv);
      a.ldx = dip;
      a.w = L.conv_w;
      a.scale_acc = L.conv_scale_acc;
      a.bias_f32 = L.conv_bias_f;
      a.inv_scale_y_ch = L.xbc_inv_scale;
      a.ldy = cd;
      for (int64_t s = 0; s < n_seq; ++s) {
        a.L = seq_len;
        a.x = zxbcdt_q_ + s * dip + di;
        a.state = io.states[s]->Get<int8_t>(layer, kConvState);
        a.y = xbc_q_ + s * cd;
        q8_.causal_conv1d_silu_s8(a, cb, ce);
      }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t ch = cb; ch < ce; ++ch)
          xbc_[t * cd + ch] = L.xbc_scale[ch] * static_cast<float>(xbc_q_[t * cd + ch]);
    });
    // z = s_z z_q (T, d_inner); dt = s_dt dt_q (T, nheads): dequantised for the norm and SSD.
    rows([&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int8_t* q = zxbcdt_q_ + t * dip;
        for (int64_t ch = 0; ch < di; ++ch) z_[t * di + ch] = L.s_z * static_cast<float>(q[ch]);
        for (int64_t h = 0; h < H; ++h)
          dt_[t * H + h] = L.s_dt * static_cast<float>(q[di + cd + h]);
      }
    });

    // [6-7] y = SSD(x, dt, A, B, C) from S = s_S S_q; S_q = RoundS8(S / s_S) after the call.
    const bool chunked = !io.per_row_states && T > kRecurrentMaxTokens;
    pool_.ParallelRange(H, 1, [&](int64_t hb, int64_t he) {
      for (int64_t s = 0; s < n_seq; ++s) {
        if (!int8_state_) {  // --ssm-state f32
          SsdRows(k_, c_, L.dt_bias, L.A, io.states[s]->Get<float>(layer, kSsmState), chunked,
                  s * seq_len, seq_len, xbc_, dt_, H, y_, hb, he);
          continue;
        }
        int8_t* sq = io.states[s]->Get<int8_t>(layer, kSsmState);
        for (int64_t ch = hb * P; ch < he * P; ++ch) {
          const float* sc = L.state_scale + L.state_row[ch] * N;
          for (int64_t n = 0; n < N; ++n)
            state_[ch * N + n] = sc[n] * static_cast<float>(sq[ch * N + n]);
        }
        SsdRows(k_, c_, L.dt_bias, L.A, state_, chunked, s * seq_len, seq_len, xbc_, dt_, H, y_,
                hb, he);
        for (int64_t ch = hb * P; ch < he * P; ++ch)
          q8_.quantize_f32_s8(state_ + ch * N, 1, N, N, 1.0f,
                              L.state_inv_scale + L.state_row[ch] * N, sq + ch * N, N);
      }
    });

    // [8] y = RMSNormGated(y + D x, z) (grouped, float32); [9] y_q = RoundS8(H y / s_o)
    // (RoundS8(y / s_o) without the rotation)
    const kernels::GatedNormArgs g =
        InPlaceGatedNormArgs(c_, y_, xbc_, z_, di, L.D, L.norm_gated, T);
    rows([&](int64_t b, int64_t e) {
      k_.gated_rms_norm(g, b, e);
      if (hadamard_) {
        q8_.hadamard_quant(y_ + b * di, e - b, di, di, 1.0f / L.s_o, y_q_ + b * di, di);
      } else {  // --no-hadamard
        q8_.quantize_f32_s8(y_ + b * di, e - b, di, di, 1.0f / L.s_o, nullptr, y_q_ + b * di, di);
      }
    });
    // [10] h = s_o * s_wo * (y_q @ (H_dm W_out H_di^T)_q^T)            (T, d_model) fp32
    gemm_.Run(y_q_, T, di, di, L.out_proj, &L.s_o, 0, L.out_proj.scale, nullptr, io.h, dm);
  }

 private:
  const bool hadamard_;  // the online Hadamard before out_proj (off: --no-hadamard)
  const bool int8_state_;  // the SSM state int8 (off: --ssm-state f32)
  const MambaConfig& c_;
  const ModelWeights& w_;
  ThreadPool& pool_;
  const kernels::KernelTable& k_;
  const kernels::KernelTable& q8_;
  Int8Gemm& gemm_;
  const int64_t dm_, di_, dip_, cd_, H_, P_, N_;
  const float eps_;
  int8_t* hn_q_;      // (T, d_model) int8 in_proj input
  int8_t* zxbcdt_q_;  // (T, d_in_proj) int8 [z | x | B | C | dt_raw]
  int8_t* xbc_q_;     // (T, conv_dim) int8 conv output [x | B | C]
  float* xbc_;        // (T, conv_dim) its dequantised values
  float* z_;          // (T, d_inner) dequantised z
  float* dt_;         // (T, nheads) dequantised dt_raw
  float* y_;          // (T, d_inner) SSD output, then the gated-norm output (in place)
  int8_t* y_q_;       // (T, d_inner) int8 out_proj input (after the Hadamard)
  float* state_ = nullptr;  // (nheads, headdim, d_state) one sequence's dequantised SSM state
};

}  // namespace

std::unique_ptr<Block> MakeStaticInt8Block(const BlockEnv& env, const QuantConfig& qc) {
  return std::make_unique<StaticInt8Block>(env, qc.hadamard, qc.SsmStateInt8(env.c.arch));
}

}  // namespace quamba::mamba2
