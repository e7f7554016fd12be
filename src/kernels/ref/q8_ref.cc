// Oracles for the int8 kernels (see q8_ref.h). Deliberately naive: one loop nest per formula.
#include "kernels/ref/q8_ref.h"

#include <cmath>

#include "core/check.h"
#include "kernels/ref/ref.h"

namespace quamba::kernels::ref {

int8_t RoundS8(double v) {
  if (std::isnan(v)) return -128;
  const double r = std::nearbyint(v);
  if (r < -128) return -128;
  if (r > 127) return 127;
  return static_cast<int8_t>(r);
}

void QuantizeF32ToS8(const float* x, int64_t L, int64_t C, int64_t ldx, float inv_scale,
                     const float* col_mult, int8_t* q, int64_t ldq) {
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t c = 0; c < C; ++c) {
      const float m = col_mult != nullptr ? inv_scale * col_mult[c] : inv_scale;
      const float v = x[l * ldx + c] * m;  // the contract's float product
      q[l * ldq + c] = RoundS8(v);
    }
  }
}

double AddRmsNormQuant(float* residual, const float* h, const float* w, int64_t n, float eps,
                       float inv_scale, int8_t* q, double* y_out) {
  if (h != nullptr)
    for (int64_t i = 0; i < n; ++i) residual[i] += h[i];
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(residual[i]) * residual[i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n > 0 ? n : 1) + eps);
  std::vector<double> y(static_cast<size_t>(n));
  double amax = 0;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<double>(residual[i]) * inv * w[i];
    amax = std::fmax(amax, std::fabs(y[i]));
    if (y_out != nullptr) y_out[i] = y[i];
  }
  const double scale = inv_scale > 0 ? 1.0 / inv_scale
                                     : std::fmax(amax, static_cast<double>(kMinAbsMax)) / 127.0;
  for (int64_t i = 0; i < n; ++i) q[i] = RoundS8(y[i] / scale);
  return scale;
}

void GemmS8S8(const GemmArgs& g, int64_t n_begin, int64_t n_end, int64_t* acc, int64_t ldacc) {
  QM_CHECK(WeightNumType(g.w->format) == NumType::kS8, "int8 oracle on a non-int8 weight");
  const int8_t* x = static_cast<const int8_t*>(g.x);
  const int8_t* w = static_cast<const int8_t*>(g.w->data);
  for (int64_t m = 0; m < g.M; ++m) {
    for (int64_t n = n_begin; n < n_end; ++n) {
      int64_t s = 0;
      for (int64_t k = 0; k < g.K; ++k)
        s += static_cast<int64_t>(x[m * g.ldx + k]) * w[n * g.K + k];
      acc[m * ldacc + n] = s;
    }
  }
}

float EpilogueF32Contract(int64_t acc, float a, float b) {
  const float scale = a * b;
  return static_cast<float>(acc) * scale;
}

int8_t EpilogueS8Contract(int64_t acc, float a, float b) {
  return RoundS8(EpilogueF32Contract(acc, a, b));
}

float EpilogueF32Contract(int64_t acc, float a, float b, float col) {
  const float scale = a * b;
  const float c = scale * col;
  return static_cast<float>(acc) * c;
}

int8_t EpilogueS8Contract(int64_t acc, float a, float b, float col) {
  return RoundS8(EpilogueF32Contract(acc, a, b, col));
}

double S4Weight(const WeightDesc& w, int64_t n, int64_t k) {
  QM_CHECK(w.format == WeightFormat::kS4Group && w.cols % 2 == 0 && w.group > 0 &&
               w.cols % w.group == 0,
           "not a kS4Group weight");
  const uint8_t byte = static_cast<const uint8_t*>(w.data)[n * (w.cols / 2) + k / 2];
  const int code = k % 2 == 0 ? byte & 0xF : byte >> 4;
  return static_cast<double>(w.scales[n * (w.cols / w.group) + k / w.group]) * (code - kS4Zero);
}

void GemmS8S4Contract(const GemmArgs& g, int64_t n_begin, int64_t n_end, float* t, int64_t ldt,
                      double* t_abs) {
  const WeightDesc& w = *g.w;
  QM_CHECK(w.format == WeightFormat::kS4Group && g.K == w.cols && g.K % 2 == 0 && w.group > 0 &&
               w.group % 2 == 0 && g.K % w.group == 0,
           "not a kS4Group GEMM");
  const auto* x = static_cast<const int8_t*>(g.x);
  const auto* q = static_cast<const uint8_t*>(w.data);
  const int64_t ng = g.K / w.group;
  for (int64_t m = 0; m < g.M; ++m) {
    for (int64_t n = n_begin; n < n_end; ++n) {
      float sum = 0.0f;
      double sum_abs = 0.0;
      for (int64_t gi = 0; gi < ng; ++gi) {
        int64_t acc = 0;
        for (int64_t k = gi * w.group; k < (gi + 1) * w.group; ++k) {
          const uint8_t byte = q[n * (g.K / 2) + k / 2];
          const int code = k % 2 == 0 ? byte & 0xF : byte >> 4;
          acc += static_cast<int64_t>(x[m * g.ldx + k]) * (code - kS4Zero);
        }
        const float term = w.scales[n * ng + gi] * static_cast<float>(acc);
        sum = sum + term;
        sum_abs += std::fabs(static_cast<double>(term));
      }
      t[m * ldt + n] = sum;
      if (t_abs != nullptr) t_abs[m * ldt + n] = sum_abs;
    }
  }
}

void GemmS8S4Double(const GemmArgs& g, int64_t n_begin, int64_t n_end, double* y, int64_t ldy) {
  const auto* x = static_cast<const int8_t*>(g.x);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = n_begin; n < n_end; ++n) {
      double sum = 0.0;
      for (int64_t k = 0; k < g.K; ++k) sum += x[m * g.ldx + k] * S4Weight(*g.w, n, k);
      y[m * ldy + n] = sum;
    }
}

void GemmF32S4Double(const GemmArgs& g, int64_t n_begin, int64_t n_end, double* y, int64_t ldy,
                     double* y_abs) {
  const auto* x = static_cast<const float*>(g.x);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = n_begin; n < n_end; ++n) {
      double sum = 0.0, sum_abs = 0.0;
      for (int64_t k = 0; k < g.K; ++k) {
        const double p = x[m * g.ldx + k] * S4Weight(*g.w, n, k);
        sum += p;
        sum_abs += std::fabs(p);
      }
      y[m * ldy + n] = sum;
      if (y_abs != nullptr) y_abs[m * ldy + n] = sum_abs;
    }
}

void CausalConv1dSiluS8(const Conv1dS8Args& a, int64_t c_begin, int64_t c_end, double* y,
                        int64_t ldy) {
  const int P = a.d_conv - 1;
  const int64_t C = a.C;
  for (int64_t c = c_begin; c < c_end; ++c) {
    for (int64_t t = 0; t < a.L; ++t) {
      int64_t acc = 0;
      for (int k = 0; k < a.d_conv; ++k) {
        const int64_t src = t - P + k;  // input time index; negative: from state
        const int8_t xv = src >= 0 ? a.x[src * a.ldx + c] : a.state[(P + src) * C + c];
        acc += static_cast<int64_t>(a.w[k * C + c]) * xv;
      }
      const double sa = a.scale_acc != nullptr ? static_cast<double>(a.scale_acc[c])
                                               : static_cast<double>(a.scale_w) * a.scale_x;
      double v = sa * static_cast<double>(acc);
      if (a.bias_f32 != nullptr) {
        v += a.bias_f32[c];
      } else if (a.b != nullptr) {
        v += static_cast<double>(a.scale_b) * a.b[c];
      }
      y[t * ldy + c] = Silu(v);
    }
    // New state: the last P inputs of the sequence state ++ x.
    int8_t last[8];
    for (int j = 0; j < P; ++j) {
      const int64_t src = a.L - P + j;
      last[j] = src >= 0 ? a.x[src * a.ldx + c] : a.state[(P + src) * C + c];
    }
    for (int j = 0; j < P; ++j) a.state[j * C + c] = last[j];
  }
}

void SelectiveScanS8(const ScanS8Args& a, int64_t c_begin, int64_t c_end, double* state,
                     double* y) {
  const int64_t N = a.d_state;
  const ScanLayout& lo = a.layout;
  const int64_t a_ld = lo.a_ld != 0 ? lo.a_ld : N;
  for (int64_t c = c_begin; c < c_end; ++c) {
    double* h = state + c * N;
    for (int64_t t = 0; t < a.L; ++t) {
      const double u = static_cast<double>(a.scale_u) * a.u[t * a.ldu + c];
      const int64_t dc = c / lo.dt_group;
      const double dt = Softplus(static_cast<double>(a.scale_delta) * a.delta[t * a.ld_delta + dc] +
                                 a.delta_bias[dc]);
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i_bc = t * a.ld_bc + (c / lo.bc_group) * lo.bc_ld + n;
        const double b = static_cast<double>(a.scale_B) * a.B[i_bc];
        const double cc = static_cast<double>(a.scale_C) * a.C[i_bc];
        const double A = a.A[(c / lo.a_group) * a_ld + n * lo.a_n_stride];
        h[n] = std::exp(dt * A) * h[n] + dt * b * u;
        acc += h[n] * cc;
      }
      double out = acc + static_cast<double>(a.D[c / lo.d_group]) * u;
      if (a.z != nullptr) out *= Silu(static_cast<double>(a.scale_z) * a.z[t * a.ldz + c]);
      y[t * a.ldy + c] = out;
    }
  }
}

std::vector<int8_t> HadamardMatrix(int64_t n) {
  int K = 0, lg = 0;
  QM_CHECK(HadamardSizeOk(n, &K, &lg), "unsupported Hadamard size %lld",
           static_cast<long long>(n));
  const int64_t p = int64_t{1} << lg;
  const int8_t* hk = HadamardFactor(K);
  std::vector<int8_t> H(static_cast<size_t>(n * n));
  // Element i = c * p + j; (H_K (x) H_p)[(c, j), (c', j')] = H_K[c][c'] * (-1)^popcount(j & j').
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t s = 0; s < n; ++s) {
      const int64_t c = r / p, j = r % p, cc = s / p, jj = s % p;
      const int sylvester = (__builtin_popcountll(static_cast<uint64_t>(j & jj)) & 1) ? -1 : 1;
      H[r * n + s] = static_cast<int8_t>(hk[c * K + cc] * sylvester);
    }
  }
  return H;
}

void HadamardDense(const float* x, int64_t L, int64_t n, int64_t ldx, double* y) {
  const std::vector<int8_t> H = HadamardMatrix(n);
  const double norm = 1.0 / std::sqrt(static_cast<double>(n));
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t r = 0; r < n; ++r) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += H[r * n + i] * static_cast<double>(x[l * ldx + i]);
      y[l * n + r] = s * norm;
    }
  }
}

}  // namespace quamba::kernels::ref
