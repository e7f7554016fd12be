// Quantized Mamba-1 block forward: static W8A8 with integer kernels (Quamba spec §2.3, numbers
// in brackets refer to its table), the per-token dynamic baseline, and the --simulate mode that
// does their integer GEMMs in float.
#include <algorithm>
#include <cmath>

#include "model/mamba.h"

namespace quamba {
void Engine::GemmS8(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                    const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                    int64_t ldy) {
  if (simulate_) return GemmSim(x, M, K, ldx, w, a, a_stride, b, y8, yf, ldy);
  kernels::WeightDesc wd;
  wd.format = kernels::WeightFormat::kS8PerTensor;
  wd.data = w.q;
  wd.rows = w.rows;
  wd.cols = w.cols;
  wd.scale = w.scale;
  kernels::GemmArgs g;
  g.M = M;
  g.K = K;
  g.x = x;
  g.ldx = ldx;
  g.w = &wd;
  g.a = a;
  g.a_stride = a_stride;
  g.b = b;
  g.y = y8 != nullptr ? static_cast<void*>(y8) : static_cast<void*>(yf);
  g.ldy = ldy;
  const kernels::GemmFn f = q8_.Gemm(kernels::NumType::kS8, wd,
                                     y8 != nullptr ? kernels::NumType::kS8 : kernels::NumType::kF32);
  pool_.ParallelRange(w.rows, 64, [&](int64_t nb, int64_t ne) { f(g, nb, ne); });
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

// --simulate: the int8 x int8 -> int32 product done in float32 instead, over the same
// integer-grid values (x_q and W_q as floats) with the same epilogue (kernels/q8.h):
//   acc = x_q @ W_q^T (float GEMM: exact while partial sums stay below 2^24, i.e. always for
//   K * 128 * 128 < 2^24, K < 1024), y = fl(acc * fl(a[m] * b)), RoundS8 for an int8 output.
// Every quantize point upstream and downstream is shared with the int8 engine, so the two agree
// bit for bit where the float sums are exact: the mode checks the integer GEMM kernels (VNNI
// offsets, wrap-around, requantizing epilogues) against plain float arithmetic end to end.
void Engine::GemmSim(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                     const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                     int64_t ldy) {
  auto it = sim_weights_.find(w.q);
  QM_CHECK(it != sim_weights_.end(), "no float copy of a %lld x %lld weight", (long long)w.rows,
           (long long)w.cols);
  const float* wf = it->second.data();
  const int64_t N = w.rows;
  QM_CHECK(M * K <= static_cast<int64_t>(sim_x_.size()), "simulation x scratch too small");
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) sim_x_[m * K + k] = static_cast<float>(x[m * ldx + k]);
  // acc: straight into yf (fp32 output), else into the scratch.
  float* acc = yf;
  int64_t ld_acc = ldy;
  if (y8 != nullptr) {
    QM_CHECK(M * N <= static_cast<int64_t>(sim_acc_.size()), "simulation acc scratch too small");
    acc = sim_acc_.data();
    ld_acc = N;
  }
  kernels::WeightDesc wd;
  wd.format = kernels::WeightFormat::kF32;
  wd.data = wf;
  wd.rows = N;
  wd.cols = K;
  kernels::GemmArgs g;
  g.M = M;
  g.K = K;
  g.x = sim_x_.data();
  g.ldx = K;
  g.w = &wd;
  g.y = acc;
  g.ldy = ld_acc;
  const kernels::GemmFn f = k_.Gemm(kernels::NumType::kF32, wd, kernels::NumType::kF32);
  pool_.ParallelRange(N, 64, [&](int64_t nb, int64_t ne) {
    f(g, nb, ne);
    for (int64_t m = 0; m < M; ++m) {
      const float scale = a[m * a_stride] * b;
      if (y8 != nullptr) {
        // The kernels' own quantize op: RoundS8(fl(acc * scale)), the ToS8 epilogue's rounding.
        q8_.quantize_f32_s8(acc + m * ld_acc + nb, 1, ne - nb, ld_acc, scale, nullptr,
                            y8 + m * ldy + nb, ldy);
      } else {
        for (int64_t n = nb; n < ne; ++n) yf[m * ldy + n] = acc[m * ld_acc + n] * scale;
      }
    }
  });
}

// Quamba2's W8A8 lm_head (spec §3.5): norm_f = QRMSNorm(out = lm_head:input), then the int8
// GEMM with fp32 logits. Dynamic recipe: per-token input scales.
void Engine::LogitsQ8(const int64_t* rows, int64_t n_rows, float* logits) {
  const int64_t dm = c_.d_model, V = c_.vocab_size;
  const float eps = static_cast<float>(c_.norm_eps);
  const QMatrix& W = qw_->lm_head_q;
  const bool st = qw_->qc.static_acts;
  const float s_in = qw_->s_lm_head_in;
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
