#include "kernels/ref/ssd_ref.h"

#include <algorithm>
#include <cmath>

#include "kernels/ref/ref.h"

namespace quamba::kernels::ref {

void SsdRecurrence(const SsdArgs& a, int64_t h_begin, int64_t h_end, double* state, double* y) {
  const int64_t heads_per_group = a.H / a.G;
  for (int64_t h = h_begin; h < h_end; ++h) {
    const int64_t g = h / heads_per_group;
    double* S = state + h * a.P * a.N;
    for (int64_t t = 0; t < a.L; ++t) {
      double dt = Softplus(static_cast<double>(a.dt[t * a.lddt + h]) + a.dt_bias[h]);
      dt = std::min(std::max(dt, static_cast<double>(a.dt_min)), static_cast<double>(a.dt_max));
      const double dA = std::exp(dt * a.A[h]);
      const float* B = a.B + t * a.ldbc + g * a.N;
      const float* C = a.C + t * a.ldbc + g * a.N;
      for (int64_t p = 0; p < a.P; ++p) {
        const double x = a.x[t * a.ldx + h * a.P + p];
        double acc = 0;
        for (int64_t n = 0; n < a.N; ++n) {
          double& s = S[p * a.N + n];
          s = dA * s + dt * x * B[n];
          acc += s * C[n];
        }
        y[t * a.ldy + h * a.P + p] = acc;
      }
    }
  }
}

void GatedRmsNorm(const GatedNormArgs& a, int64_t row_begin, int64_t row_end, double* out) {
  const int64_t gs = a.C / a.G;
  for (int64_t t = row_begin; t < row_end; ++t) {
    for (int64_t g = 0; g < a.G; ++g) {
      double ss = 0;
      for (int64_t c = g * gs; c < (g + 1) * gs; ++c) {
        double v = a.y[t * a.ldy + c];
        if (a.D != nullptr) v += static_cast<double>(a.D[c / a.P]) * a.x[t * a.ldx + c];
        v *= Silu(a.z[t * a.ldz + c]);
        out[t * a.ldo + c] = v;
        ss += v * v;
      }
      const double inv = 1.0 / std::sqrt(ss / gs + a.eps);
      for (int64_t c = g * gs; c < (g + 1) * gs; ++c) out[t * a.ldo + c] *= inv * a.w[c];
    }
  }
}

}  // namespace quamba::kernels::ref
