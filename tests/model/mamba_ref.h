// A slow, obvious float64 Mamba-1 forward for tests, written straight from the upstream math
// (selective_scan_ref, MambaMixer.slow_forward), reading tensors by name from the checkpoint so
// it shares nothing with the engine but the file reader.
#pragma once

#include <cmath>
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
