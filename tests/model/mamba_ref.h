// A slow, obvious float64 forward for tests, written straight from the upstream math, reading
// tensors by name from the checkpoint so it shares nothing with the engine but the file reader:
// Mamba-1 (selective_scan_ref, MambaMixer.slow_forward; FalconMamba's weightless RMSNorm of dt,
// B and C when mixer_rms) and Mamba-2 (the token recurrence of quamba2-spec §1.5 with the
// grouped gated RMSNorm).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "format/config.h"

namespace quamba::testing {

class MambaRef {
 public:
  MambaRef(const MambaConfig& c, const TensorStore& st) : c_(c), st_(st) {}

  // Logits (L, vocab) for ids, starting from a zero state.
  std::vector<double> Forward(const std::vector<int32_t>& ids) const {
    const int64_t L = ids.size(), dm = c_.d_model, di = c_.d_inner, ds = c_.d_state;
    const int64_t r = c_.dt_rank, K = c_.d_conv, V = c_.vocab_size;
    std::vector<double> emb = Get(st_.Find("backbone.embeddings.weight")
                                      ? "backbone.embeddings.weight"
                                      : "backbone.embedding.weight");
    std::vector<double> res(L * dm);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < dm; ++i) res[t * dm + i] = emb[ids[t] * dm + i];
    for (int l = 0; l < c_.n_layer; ++l) {
      const std::string p = "backbone.layers." + std::to_string(l) + ".";
      std::vector<double> hn = Norm(res, Get(p + "norm.weight"), L);
      if (c_.arch == Arch::kMamba2) {
        std::vector<double> out = Mixer2(hn, p, L);
        for (int64_t i = 0; i < L * dm; ++i) res[i] += out[i];
        continue;
      }
      std::vector<double> xz = Linear(hn, Get(p + "mixer.in_proj.weight"), L, dm, 2 * di);
      std::vector<double> cw = Get(p + "mixer.conv1d.weight"), cb = Get(p + "mixer.conv1d.bias");
      std::vector<double> u(L * di);
      for (int64_t t = 0; t < L; ++t)
        for (int64_t ch = 0; ch < di; ++ch) {
          double acc = cb[ch];
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t - (K - 1) + k;
            if (s >= 0) acc += cw[ch * K + k] * xz[s * 2 * di + ch];
          }
          u[t * di + ch] = acc / (1 + std::exp(-acc));
        }
      std::vector<double> xd = Linear(u, Get(p + "mixer.x_proj.weight"), L, di, r + 2 * ds);
      if (c_.mixer_rms) {  // FalconMamba: rms_forward(dt_low), rms_forward(B), rms_forward(C)
        for (int64_t t = 0; t < L; ++t)
          for (auto [off, n] : {std::pair<int64_t, int64_t>{0, r}, {r, ds}, {r + ds, ds}}) {
            double ss = 0;
            for (int64_t i = 0; i < n; ++i) ss += xd[t * (r + 2 * ds) + off + i] * xd[t * (r + 2 * ds) + off + i];
            const double inv = 1 / std::sqrt(ss / n + c_.mixer_rms_eps);
            for (int64_t i = 0; i < n; ++i) xd[t * (r + 2 * ds) + off + i] *= inv;
          }
      }
      std::vector<double> dtl(L * r);
      for (int64_t t = 0; t < L; ++t)
        for (int64_t i = 0; i < r; ++i) dtl[t * r + i] = xd[t * (r + 2 * ds) + i];
      std::vector<double> dt = Linear(dtl, Get(p + "mixer.dt_proj.weight"), L, r, di);
      std::vector<double> db = Get(p + "mixer.dt_proj.bias"), Alog = Get(p + "mixer.A_log"),
                          D = Get(p + "mixer.D");
      std::vector<double> y(L * di), h(di * ds, 0.0);
      for (int64_t t = 0; t < L; ++t)
        for (int64_t ch = 0; ch < di; ++ch) {
          const double v = dt[t * di + ch] + db[ch];
          const double delta = v <= 20 ? std::log1p(std::exp(v)) : v;
          double acc = 0;
          for (int64_t n = 0; n < ds; ++n) {
            const double A = -std::exp(Alog[ch * ds + n]);
            const double B = xd[t * (r + 2 * ds) + r + n], C = xd[t * (r + 2 * ds) + r + ds + n];
            double& hs = h[ch * ds + n];
            hs = std::exp(delta * A) * hs + delta * B * u[t * di + ch];
            acc += hs * C;
          }
          const double z = xz[t * 2 * di + di + ch];
          y[t * di + ch] = (acc + D[ch] * u[t * di + ch]) * (z / (1 + std::exp(-z)));
        }
      std::vector<double> out = Linear(y, Get(p + "mixer.out_proj.weight"), L, di, dm);
      for (int64_t i = 0; i < L * dm; ++i) res[i] += out[i];
    }
    std::vector<double> hf = Norm(res, Get("backbone.norm_f.weight"), L);
    const bool has_head = st_.Find("lm_head.weight") != nullptr;
    return Linear(hf, has_head ? Get("lm_head.weight") : emb, L, dm, V);
  }

 private:
  // Mamba-2 mixer over L tokens from a zero state.
  std::vector<double> Mixer2(const std::vector<double>& hn, const std::string& p,
                             int64_t L) const {
    const int64_t dm = c_.d_model, di = c_.d_inner, N = c_.d_state, G = c_.ngroups;
    const int64_t H = c_.nheads, P = c_.headdim, K = c_.d_conv;
    const int64_t cd = di + 2 * G * N, dip = 2 * di + 2 * G * N + H;
    std::vector<double> zx = Linear(hn, Get(p + "mixer.in_proj.weight"), L, dm, dip);
    std::vector<double> cw = Get(p + "mixer.conv1d.weight"), cb = Get(p + "mixer.conv1d.bias");
    if (cb.empty()) cb.assign(cd, 0.0);
    std::vector<double> xbc(L * cd);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t ch = 0; ch < cd; ++ch) {
        double acc = cb[ch];
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t - (K - 1) + k;
          if (s >= 0) acc += cw[ch * K + k] * zx[s * dip + di + ch];
        }
        xbc[t * cd + ch] = acc / (1 + std::exp(-acc));
      }
    std::vector<double> db = Get(p + "mixer.dt_bias"), Alog = Get(p + "mixer.A_log"),
                        D = Get(p + "mixer.D"), nw = Get(p + "mixer.norm.weight");
    std::vector<double> S(H * P * N, 0.0), v(L * di);
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / G);
        const double raw = zx[t * dip + di + cd + h] + db[h];
        double dt = raw <= 20 ? std::log1p(std::exp(raw)) : raw;
        dt = std::min(std::max(dt, c_.dt_limit_min), c_.dt_limit_max);
        const double dA = std::exp(dt * -std::exp(Alog[h]));
        for (int64_t q = 0; q < P; ++q) {
          const double x = xbc[t * cd + h * P + q];
          double y = 0;
          for (int64_t n = 0; n < N; ++n) {
            double& s = S[(h * P + q) * N + n];
            s = dA * s + dt * x * xbc[t * cd + di + g * N + n];
            y += s * xbc[t * cd + di + G * N + g * N + n];
          }
          const double z = zx[t * dip + h * P + q];
          v[t * di + h * P + q] = (y + D[h] * x) * (z / (1 + std::exp(-z)));
        }
      }
      const int64_t gs = di / G;  // grouped RMSNorm, eps 1e-5
      for (int64_t g = 0; g < G; ++g) {
        double ss = 0;
        for (int64_t c = g * gs; c < (g + 1) * gs; ++c) ss += v[t * di + c] * v[t * di + c];
        const double inv = 1 / std::sqrt(ss / gs + 1e-5);
        for (int64_t c = g * gs; c < (g + 1) * gs; ++c) v[t * di + c] *= inv * nw[c];
      }
    }
    return Linear(v, Get(p + "mixer.out_proj.weight"), L, di, dm);
  }

  std::vector<double> Get(const std::string& name) const {
    const TensorView* t = st_.Find(name);
    std::vector<double> v(t ? t->numel() : 0);
    for (int64_t i = 0; i < (int64_t)v.size(); ++i) {
      if (t->dtype == DType::kF32) {
        float f;
        std::memcpy(&f, t->data + 4 * i, 4);
        v[i] = f;
      } else {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        v[i] = t->dtype == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
      }
    }
    return v;
  }
  std::vector<double> Norm(const std::vector<double>& x, const std::vector<double>& w,
                           int64_t L) const {
    const int64_t dm = c_.d_model;
    std::vector<double> y(x.size());
    for (int64_t t = 0; t < L; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < dm; ++i) ss += x[t * dm + i] * x[t * dm + i];
      const double inv = 1 / std::sqrt(ss / dm + c_.norm_eps);
      for (int64_t i = 0; i < dm; ++i) y[t * dm + i] = x[t * dm + i] * inv * w[i];
    }
    return y;
  }
  static std::vector<double> Linear(const std::vector<double>& x, const std::vector<double>& W,
                                    int64_t M, int64_t K, int64_t N) {
    std::vector<double> y(M * N);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * W[n * K + k];
        y[m * N + n] = acc;
      }
    return y;
  }
  const MambaConfig& c_;
  const TensorStore& st_;
};

}  // namespace quamba::testing
