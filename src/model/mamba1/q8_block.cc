// Quantized Mamba-1 blocks: static W8A8 with integer kernels (Quamba spec §2.3, numbers in
// brackets refer to its table) and the per-token dynamic baseline. Their int8 GEMMs go through
// Int8Gemm: the integer kernels, or --simulate's float GEMMs over the same grid.
#include <algorithm>
#include <cmath>

#include "model/mamba1/blocks.h"

namespace quamba::mamba1 {

Int8BlockBase::Int8BlockBase(const BlockEnv& env) : BlockBase(env), gemm_(*env.gemm) {
  QM_CHECK(env.gemm != nullptr, "int8 block without an Int8Gemm");
  const int64_t rows = env.max_rows;
  hn_q_ = env.scratch.Alloc<int8_t>(rows * dm_);
  xz_q_ = env.scratch.Alloc<int8_t>(rows * 2 * di_);
  u_q_ = env.scratch.Alloc<int8_t>(rows * di_);
  u_qs_ = env.scratch.Alloc<int8_t>(rows * di_);
  x_dbl_q_ = env.scratch.Alloc<int8_t>(rows * n_dbl_);
  dt_q_ = env.scratch.Alloc<int8_t>(rows * di_);
  y_q_ = env.scratch.Alloc<int8_t>(rows * di_);
  row_scale_ = env.scratch.Alloc<float>(rows);
}

StaticInt8Block::StaticInt8Block(const BlockEnv& env, bool smooth, bool hadamard,
                                 bool int8_state)
    : Int8BlockBase(env), smooth_(smooth), hadamard_(hadamard) {
  if (int8_state) state_f_ = env.scratch.Alloc<float>(di_ * ds_);
}

void DynamicInt8Block::QuantizeRowsDynamic(const float* x, int64_t T, int64_t C, int64_t ldx, int8_t* q) {
  for (int64_t t = 0; t < T; ++t) {
    float am = 0;
    for (int64_t c = 0; c < C; ++c) am = std::max(am, std::fabs(x[t * ldx + c]));
    const float s = std::max(am, kernels::kMinAbsMax) / 127.0f;
    row_scale_[t] = s;
    q8_.quantize_f32_s8(x + t * ldx, 1, C, C, 1.0f / s, nullptr, q + t * C, C);
  }
}

void StaticInt8Block::Forward(int layer, const BlockIo& io) {
  const QLayerWeights& L = w_.qlayers[layer];
  const int64_t T = io.T, dm = dm_, di = di_, ds = ds_, R = R_, n_dbl = n_dbl_;
  const float eps = eps_;

  // [1] residual = h + residual; hn_q = RoundS8(RMSNorm(residual) / s_in)
  float* const h = io.h;
  const float* add = layer == 0 ? nullptr : h;
  ForRows(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      q8_.add_rms_norm_quant(io.residual + t * dm, add ? add + t * dm : nullptr, L.norm, dm,
                             eps, 1.0f / L.s_in, hn_q_ + t * dm);
  });
  // Per channel range [cb, ce), fused:
  // [2-3] xz_q = RoundS8(s_in * s_w * (hn_q @ W_in^T) / s_xz)        (T, 2*d_inner): x and z rows
  // [4-5] u_q = RoundS8(SiLU(conv(x_q)) / s_u)                        (T, d_inner)
  const bool smooth = smooth_;
  ForChannels([&](int64_t cb, int64_t ce) {
    const float b_in = L.in_proj.scale / L.s_xz;
    gemm_.RunRange(hn_q_, T, dm, dm, L.in_proj, &L.s_in, 0, b_in, xz_q_, nullptr, 2 * di, cb, ce);
    gemm_.RunRange(hn_q_, T, dm, dm, L.in_proj, &L.s_in, 0, b_in, xz_q_, nullptr, 2 * di,
                   di + cb, di + ce);
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
    for (int64_t s = 0; s < n_seq(io); ++s) {
      a.L = seq_len(io);
      a.x = xz_q_ + s * 2 * di;
      a.state = io.states[s]->Get<int8_t>(layer, kConvState);
      // SmoothQuant needs u twice (plain for the scan, smoothed for x_proj): float out first.
      if (smooth) a.y_f32 = xc_ + s * di;
      else a.y = u_q_ + s * di;
      q8_.causal_conv1d_silu_s8(a, cb, ce);
    }
    if (smooth) {
      q8_.quantize_f32_s8(xc_ + cb, T, ce - cb, di, 1.0f / L.s_u, nullptr, u_q_ + cb, di);
      q8_.quantize_f32_s8(xc_ + cb, T, ce - cb, di, 1.0f / L.s_u_smooth,
                          L.x_proj_smooth_inv + cb, u_qs_ + cb, di);
    }
  });
  const int8_t* x_proj_in = smooth ? u_qs_ : u_q_;
  const float s_x_proj_in = smooth ? L.s_u_smooth : L.s_u;
  // [6-7] x_dbl_q = RoundS8(s_u * s_wx * (u_q @ W_x^T) / s_xdbl)      (T, dt_rank + 2*d_state)
  gemm_.Run(x_proj_in, T, di, di, L.x_proj, &s_x_proj_in, 0, L.x_proj.scale / L.s_xdbl,
            x_dbl_q_, nullptr, n_dbl);
  // Per channel range, fused:
  // [8-9] dt_q = RoundS8(s_xdbl * s_wdt * (dt_low_q @ W_dt^T) / s_dt)  (T, d_inner)
  // [10-12] y = selective_scan(u, dt, A, B, C, D, z) from int8 inputs   (T, d_inner) fp32
  // With an int8 SSM state (Quamba2, s_ssm_state > 0): S = s_S * S_q before the scan, S_q =
  // RoundS8(S / s_S) after it; y uses the unrounded S (the official decode kernel's order).
  const bool int8_state = L.s_ssm_state > 0;
  QM_CHECK(int8_state == (state_f_ != nullptr), "layer %d: int8 SSM state scale without the "
           "block's int8 state (or the reverse)", layer);
  ForChannels([&](int64_t cb, int64_t ce) {
    gemm_.RunRange(x_dbl_q_, T, R, n_dbl, L.dt_proj, &L.s_xdbl, 0, L.dt_proj.scale / L.s_dt,
                   dt_q_, nullptr, di, cb, ce);
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
    for (int64_t s = 0; s < n_seq(io); ++s) {
      a.L = seq_len(io);
      a.u = u_q_ + s * di;
      a.delta = dt_q_ + s * di;
      a.B = x_dbl_q_ + s * n_dbl + R;
      a.C = x_dbl_q_ + s * n_dbl + R + ds;
      a.z = xz_q_ + s * 2 * di + di;
      a.y = y_ + s * di;
      if (!int8_state) {
        a.state = io.states[s]->Get<float>(layer, kSsmState);
        q8_.selective_scan_s8(a, cb, ce);
        continue;
      }
      // Channels [cb, ce) only: the other threads own the rest of state_f_.
      int8_t* sq = io.states[s]->Get<int8_t>(layer, kSsmState);
      for (int64_t i = cb * ds; i < ce * ds; ++i)
        state_f_[i] = L.s_ssm_state * static_cast<float>(sq[i]);
      a.state = state_f_;
      q8_.selective_scan_s8(a, cb, ce);
      q8_.quantize_f32_s8(state_f_ + cb * ds, 1, (ce - cb) * ds, (ce - cb) * ds,
                          1.0f / L.s_ssm_state, nullptr, sq + cb * ds, (ce - cb) * ds);
    }
  });
  // [13] y_q = RoundS8(H y / s_o) (quamba) | RoundS8(y / s_o) (minmax) | RoundS8(y / (s s_o))
  ForRows(T, [&](int64_t b, int64_t e) {
    if (hadamard_) {
      q8_.hadamard_quant(y_ + b * di, e - b, di, di, 1.0f / L.s_o, y_q_ + b * di, di);
    } else {
      q8_.quantize_f32_s8(y_ + b * di, e - b, di, di, 1.0f / L.s_o,
                          smooth ? L.out_proj_smooth_inv : nullptr, y_q_ + b * di, di);
    }
  });
  // [14] h = s_o * s_wo * (y_q @ (W_out H^T)_q^T)                      (T, d_model) fp32
  gemm_.Run(y_q_, T, di, di, L.out_proj, &L.s_o, 0, L.out_proj.scale, nullptr, h, dm);
}

void DynamicInt8Block::Forward(int layer, const BlockIo& io) {
  const QLayerWeights& L = w_.qlayers[layer];
  const int64_t T = io.T, dm = dm_, di = di_, R = R_, n_dbl = n_dbl_;
  const float eps = eps_;
  float* const h = io.h;
  const float* add = layer == 0 ? nullptr : h;
  // Per-token scales: each row quantized with its own absmax/127; int8 GEMMs, fp32 outputs.
  for (int64_t t = 0; t < T; ++t)
    row_scale_[t] = q8_.add_rms_norm_quant(io.residual + t * dm, add ? add + t * dm : nullptr,
                                           L.norm, dm, eps, 0.0f, hn_q_ + t * dm);
  ForChannels([&](int64_t cb, int64_t ce) {  // in_proj rows of x and z, then the float conv
    gemm_.RunRange(hn_q_, T, dm, dm, L.in_proj, row_scale_, 1, L.in_proj.scale, nullptr, xz_,
                   2 * di, cb, ce);
    gemm_.RunRange(hn_q_, T, dm, dm, L.in_proj, row_scale_, 1, L.in_proj.scale, nullptr, xz_,
                   2 * di, di + cb, di + ce);
    ConvF32(layer, io, L.conv_w_f, L.conv_b_f, cb, ce);
  });
  QuantizeRowsDynamic(xc_, T, di, di, u_q_);
  gemm_.Run(u_q_, T, di, di, L.x_proj, row_scale_, 1, L.x_proj.scale, nullptr, x_dbl_, n_dbl);
  QuantizeRowsDynamic(x_dbl_, T, R, n_dbl, dt_q_);  // dt_low, packed (T, R)
  ForChannels([&](int64_t cb, int64_t ce) {  // dt_proj rows, then the float scan
    gemm_.RunRange(dt_q_, T, R, R, L.dt_proj, row_scale_, 1, L.dt_proj.scale, nullptr, dt_, di,
                   cb, ce);
    ScanF32(layer, io, L.dt_bias, L.A, L.D, cb, ce);
  });
  QuantizeRowsDynamic(y_, T, di, di, y_q_);
  gemm_.Run(y_q_, T, di, di, L.out_proj, row_scale_, 1, L.out_proj.scale, nullptr, h, dm);
}

}  // namespace quamba::mamba1
