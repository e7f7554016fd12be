// Quantized Mamba-1 block forward: static W8A8 with integer kernels (Quamba spec §2.3, numbers
// in brackets refer to its table), the per-token dynamic baseline, and a float fake-quant
// simulation of the static path for ablations.
#include <algorithm>
#include <cmath>

#include "model/mamba.h"

namespace quamba {
namespace {

// Fake quantization with the int8 kernels' rounding: s * RoundS8(fl(x * fl(1/s))).
inline float FakeQuant(float x, float inv_s, float s) {
  float v = std::nearbyint(std::min(127.0f, std::max(-128.0f, x * inv_s)));
  return s * v;
}

void FakeQuantRows(float* x, int64_t T, int64_t C, int64_t ld, float s) {
  const float inv = 1.0f / s;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) x[t * ld + c] = FakeQuant(x[t * ld + c], inv, s);
}

}  // namespace

void Engine::GemmS8(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                    const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                    int64_t ldy) {
  kernels::GemmS8Args g;
  g.M = M;
  g.K = K;
  g.x = x;
  g.ldx = ldx;
  g.w = w.q;
  g.a = a;
  g.a_stride = a_stride;
  g.b = b;
  pool_.ParallelRange(w.rows, 64, [&](int64_t nb, int64_t ne) {
    if (y8 != nullptr) {
      q8_.gemm_s8s8_s8(g, y8, ldy, nb, ne);
    } else {
      q8_.gemm_s8s8_f32(g, yf, ldy, nb, ne);
    }
  });
}

void Engine::QuantizeRowsDynamic(const float* x, int64_t T, int64_t C, int64_t ldx, int8_t* q) {
  for (int64_t t = 0; t < T; ++t) {
    float am = 0;
    for (int64_t c = 0; c < C; ++c) am = std::max(am, std::fabs(x[t * ldx + c]));
    const float s = std::max(am, kernels::kMinAbsMax) / 127.0f;
    row_scale_[t] = s;
    q8_.quantize_f32_s8(x + t * ldx, 1, C, C, 1.0f / s, nullptr, q + t * C, C);
  }
}

void Engine::LayerQ8(int layer, int64_t T, SequenceState* const* states, bool per_row_states) {
  const QLayerWeights& L = qw_->layers[layer];
  const int64_t dm = c_.d_model, di = c_.d_inner, ds = c_.d_state, R = c_.dt_rank;
  const int64_t n_dbl = R + 2 * ds;
  const float eps = static_cast<float>(c_.norm_eps);

  // [1] residual = h + residual; hn_q = RoundS8(RMSNorm(residual) / s_in)
  const float* add = layer == 0 ? nullptr : h_.data();
  pool_.ParallelRange(T, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      q8_.add_rms_norm_quant(residual_.data() + t * dm, add ? add + t * dm : nullptr, L.norm, dm,
                             eps, 1.0f / L.s_in, hn_q_.data() + t * dm);
  });
  // [2-3] xz_q = RoundS8(s_in * s_w * (hn_q @ W_in^T) / s_xz)        (T, 2*d_inner)
  GemmS8(hn_q_.data(), T, dm, dm, L.in_proj, &L.s_in, 0, L.in_proj.scale / L.s_xz, xz_q_.data(),
         nullptr, 2 * di);
  // [4-5] u_q = RoundS8(SiLU(conv(x_q)) / s_u)                        (T, d_inner)
  const int64_t conv_stride = (c_.d_conv - 1) * di;
  const bool smooth = qw_->qc.smooth;
  pool_.ParallelRange(di, 16, [&](int64_t b, int64_t e) {
    kernels::Conv1dS8Args a;
    a.C = di;
    a.d_conv = static_cast<int>(c_.d_conv);
    a.ldx = 2 * di;
    a.scale_x = L.s_xz;
    a.w = L.conv_w;
    a.scale_w = L.s_conv_w;
    a.b = L.conv_b;
    a.scale_b = L.s_conv_b;
    a.ldy = di;
    a.inv_scale_y = 1.0f / L.s_u;
    const int64_t n_seq = per_row_states ? T : 1;
    for (int64_t s = 0; s < n_seq; ++s) {
      a.L = per_row_states ? 1 : T;
      a.x = xz_q_.data() + s * 2 * di;
      a.state = states[s]->conv_q.data() + layer * conv_stride;
      // SmoothQuant needs u twice (plain for the scan, smoothed for x_proj): float out first.
      if (smooth) a.y_f32 = xc_.data() + s * di;
      else a.y = u_q_.data() + s * di;
      q8_.causal_conv1d_silu_s8(a, b, e);
    }
  });
  const int8_t* x_proj_in = u_q_.data();
  float s_x_proj_in = L.s_u;
  if (smooth) {
    q8_.quantize_f32_s8(xc_.data(), T, di, di, 1.0f / L.s_u, nullptr, u_q_.data(), di);
    q8_.quantize_f32_s8(xc_.data(), T, di, di, 1.0f / L.s_u_smooth, L.x_proj_smooth_inv,
                        u_qs_.data(), di);
    x_proj_in = u_qs_.data();
    s_x_proj_in = L.s_u_smooth;
  }
  // [6-7] x_dbl_q = RoundS8(s_u * s_wx * (u_q @ W_x^T) / s_xdbl)      (T, dt_rank + 2*d_state)
  GemmS8(x_proj_in, T, di, di, L.x_proj, &s_x_proj_in, 0, L.x_proj.scale / L.s_xdbl,
         x_dbl_q_.data(), nullptr, n_dbl);
  // [8-9] dt_q = RoundS8(s_xdbl * s_wdt * (dt_low_q @ W_dt^T) / s_dt)  (T, d_inner)
  GemmS8(x_dbl_q_.data(), T, R, n_dbl, L.dt_proj, &L.s_xdbl, 0, L.dt_proj.scale / L.s_dt,
         dt_q_.data(), nullptr, di);
  // [10-12] y = selective_scan(u, dt, A, B, C, D, z) from int8 inputs   (T, d_inner) fp32
  const int64_t ssm_stride = di * ds;
  pool_.ParallelRange(di, 16, [&](int64_t b, int64_t e) {
    kernels::ScanS8Args a;
    a.d_inner = di;
    a.d_state = ds;
    a.ldu = di;
    a.scale_u = L.s_u;
    a.ld_delta = di;
    a.scale_delta = L.s_dt;
    a.delta_bias = L.dt_bias;
    a.A = L.A;
    a.ld_bc = n_dbl;
    a.scale_B = a.scale_C = L.s_xdbl;
    a.D = L.D;
    a.ldz = 2 * di;
    a.scale_z = L.s_xz;
    a.ldy = di;
    const int64_t n_seq = per_row_states ? T : 1;
    for (int64_t s = 0; s < n_seq; ++s) {
      a.L = per_row_states ? 1 : T;
      a.u = u_q_.data() + s * di;
      a.delta = dt_q_.data() + s * di;
      a.B = x_dbl_q_.data() + s * n_dbl + R;
      a.C = x_dbl_q_.data() + s * n_dbl + R + ds;
      a.z = xz_q_.data() + s * 2 * di + di;
      a.state = states[s]->ssm.data() + layer * ssm_stride;
      a.y = y_.data() + s * di;
      q8_.selective_scan_s8(a, b, e);
    }
  });
  // [13] y_q = RoundS8(H y / s_o) (quamba) | RoundS8(y / s_o) (minmax) | RoundS8(y / (s s_o))
  pool_.ParallelRange(T, 1, [&](int64_t b, int64_t e) {
    if (qw_->qc.hadamard) {
      q8_.hadamard_quant(y_.data() + b * di, e - b, di, di, 1.0f / L.s_o, y_q_.data() + b * di,
                         di);
    } else {
      q8_.quantize_f32_s8(y_.data() + b * di, e - b, di, di, 1.0f / L.s_o,
                          smooth ? L.out_proj_smooth_inv : nullptr, y_q_.data() + b * di, di);
    }
  });
  // [14] h = s_o * s_wo * (y_q @ (W_out H^T)_q^T)                      (T, d_model) fp32
  GemmS8(y_q_.data(), T, di, di, L.out_proj, &L.s_o, 0, L.out_proj.scale, nullptr, h_.data(), dm);
}

void Engine::LayerDynamic(int layer, int64_t T, SequenceState* const* states,
                          bool per_row_states) {
  const QLayerWeights& L = qw_->layers[layer];
  const int64_t dm = c_.d_model, di = c_.d_inner, ds = c_.d_state, R = c_.dt_rank;
  const int64_t n_dbl = R + 2 * ds;
  const float eps = static_cast<float>(c_.norm_eps);
  const float* add = layer == 0 ? nullptr : h_.data();
  // Per-token scales: each row quantized with its own absmax/127; int8 GEMMs, fp32 outputs.
  for (int64_t t = 0; t < T; ++t)
    row_scale_[t] = q8_.add_rms_norm_quant(residual_.data() + t * dm, add ? add + t * dm : nullptr,
                                           L.norm, dm, eps, 0.0f, hn_q_.data() + t * dm);
  GemmS8(hn_q_.data(), T, dm, dm, L.in_proj, row_scale_.data(), 1, L.in_proj.scale, nullptr,
         xz_.data(), 2 * di);
  ConvF32(layer, T, states, per_row_states, L.conv_w_f, L.conv_b_f);
  QuantizeRowsDynamic(xc_.data(), T, di, di, u_q_.data());
  GemmS8(u_q_.data(), T, di, di, L.x_proj, row_scale_.data(), 1, L.x_proj.scale, nullptr,
         x_dbl_.data(), n_dbl);
  QuantizeRowsDynamic(x_dbl_.data(), T, R, n_dbl, dt_q_.data());  // dt_low, packed (T, R)
  GemmS8(dt_q_.data(), T, R, R, L.dt_proj, row_scale_.data(), 1, L.dt_proj.scale, nullptr,
         dt_.data(), di);
  ScanF32(layer, T, states, per_row_states, L.dt_bias, L.A, L.D);
  QuantizeRowsDynamic(y_.data(), T, di, di, y_q_.data());
  GemmS8(y_q_.data(), T, di, di, L.out_proj, row_scale_.data(), 1, L.out_proj.scale, nullptr,
         h_.data(), dm);
}

void Engine::LayerSim(int layer, int64_t T, SequenceState* const* states, bool per_row_states) {
  const QLayerWeights& L = qw_->layers[layer];
  const SimLayer& S = sim_[layer];
  const int64_t dm = c_.d_model, di = c_.d_inner, ds = c_.d_state, R = c_.dt_rank;
  const int64_t n_dbl = R + 2 * ds;
  const float eps = static_cast<float>(c_.norm_eps);
  QM_CHECK(qw_->qc.static_acts, "simulation of the dynamic recipe is not implemented");
  auto matmul = [&](const float* x, int64_t K, int64_t ldx, const std::vector<float>& w,
                    int64_t N, float* y, int64_t ldy) {
    pool_.ParallelRange(N, 64, [&](int64_t b, int64_t e) {
      k_.matmul_f32(x, T, K, ldx, w.data(), b, e, y, ldy);
    });
  };
  const float* add = layer == 0 ? nullptr : h_.data();
  for (int64_t t = 0; t < T; ++t)
    k_.add_rms_norm(residual_.data() + t * dm, add ? add + t * dm : nullptr, L.norm, dm, eps,
                    hn_.data() + t * dm);
  FakeQuantRows(hn_.data(), T, dm, dm, L.s_in);                          // [1]
  matmul(hn_.data(), dm, dm, S.in_proj, 2 * di, xz_.data(), 2 * di);     // [2]
  FakeQuantRows(xz_.data(), T, 2 * di, 2 * di, L.s_xz);                   // [3][11]
  ConvF32(layer, T, states, per_row_states, L.conv_w_f, L.conv_b_f);  // [4]
  // x_proj input: smoothed copy for SmoothQuant, else u itself.
  std::vector<float>& xin = y_;  // y_ is free until the scan; reuse it as scratch
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < di; ++c) {
      const float u = xc_[t * di + c];
      xin[t * di + c] = L.x_proj_smooth_inv
                            ? FakeQuant(u * L.x_proj_smooth_inv[c], 1.0f / L.s_u_smooth,
                                        L.s_u_smooth)
                            : FakeQuant(u, 1.0f / L.s_u, L.s_u);
    }
  FakeQuantRows(xc_.data(), T, di, di, L.s_u);                            // [5]
  matmul(xin.data(), di, di, S.x_proj, n_dbl, x_dbl_.data(), n_dbl);      // [6]
  FakeQuantRows(x_dbl_.data(), T, n_dbl, n_dbl, L.s_xdbl);                // [7]
  matmul(x_dbl_.data(), R, n_dbl, S.dt_proj, di, dt_.data(), di);         // [8]
  FakeQuantRows(dt_.data(), T, di, di, L.s_dt);                           // [9]
  ScanF32(layer, T, states, per_row_states, L.dt_bias, L.A, L.D);      // [10-12]
  if (qw_->qc.hadamard) q8_.hadamard_f32(y_.data(), T, di, di);          // [13]
  if (L.out_proj_smooth_inv)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < di; ++c) y_[t * di + c] *= L.out_proj_smooth_inv[c];
  FakeQuantRows(y_.data(), T, di, di, L.s_o);
  matmul(y_.data(), di, di, S.out_proj, dm, h_.data(), dm);               // [14]
}

}  // namespace quamba

namespace quamba {

// Quamba2's W8A8 lm_head (spec §3.5): norm_f = QRMSNorm(out = lm_head:input), then the int8
// GEMM with fp32 logits. Dynamic recipe: per-token input scales. Simulation: float fake quant.
void Engine::LogitsQ8(const int64_t* rows, int64_t n_rows, float* logits) {
  const int64_t dm = c_.d_model, V = c_.vocab_size;
  const float eps = static_cast<float>(c_.norm_eps);
  const QMatrix& W = qw_->lm_head_q;
  const bool st = qw_->qc.static_acts;
  const float s_in = qw_->s_lm_head_in;
  if (simulate_) {
    // residual = hidden_states + residual; hidden_states = fq(self.norm_f(residual))
    for (int64_t i = 0; i < n_rows; ++i) {
      const int64_t t = rows ? rows[i] : i;
      k_.add_rms_norm(residual_.data() + t * dm, h_.data() + t * dm, norm_f_, dm, eps,
                      hn_.data() + i * dm);
    }
    FakeQuantRows(hn_.data(), n_rows, dm, dm, s_in);
    const MatrixRef w{sim_lm_head_.data(), DType::kF32, V, dm};
    MatMul(hn_.data(), n_rows, dm, w, logits, V);
    return;
  }
  // hn_q = RoundS8(norm_f(residual + h) / s_in)                         (n_rows, d_model)
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t t = rows ? rows[i] : i;
    row_scale_[i] = q8_.add_rms_norm_quant(residual_.data() + t * dm, h_.data() + t * dm, norm_f_,
                                           dm, eps, st ? 1.0f / s_in : 0.0f,
                                           hn_q_.data() + i * dm);
  }
  // logits = s_in * s_w * (hn_q @ W_lm^T)                               (n_rows, vocab)
  GemmS8(hn_q_.data(), n_rows, dm, dm, W, st ? &s_in : row_scale_.data(), st ? 0 : 1, W.scale,
         nullptr, logits, V);
}

}  // namespace quamba
