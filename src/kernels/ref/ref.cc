// Float64 reference oracles (see ref.h). Deliberately naive: one loop nest per formula.
#include "kernels/ref/ref.h"

#include <cmath>
#include <limits>
#include <vector>

namespace quamba::kernels::ref {

double Silu(double v) { return v / (1.0 + std::exp(-v)); }

double Softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }

double F16ToDouble(uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 31) {
    return mant == 0 ? sign * std::numeric_limits<double>::infinity()
                     : std::numeric_limits<double>::quiet_NaN();
  }
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);  // subnormal or zero
  return sign * std::ldexp(static_cast<double>(1024 + mant), exp - 25);
}

double BF16ToDouble(uint16_t b) {
  const double sign = (b & 0x8000u) ? -1.0 : 1.0;
  const int exp = (b >> 7) & 0xff;
  const int mant = b & 0x7f;
  if (exp == 255) {
    return mant == 0 ? sign * std::numeric_limits<double>::infinity()
                     : std::numeric_limits<double>::quiet_NaN();
  }
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -133);
  return sign * std::ldexp(static_cast<double>(128 + mant), exp - 134);
}

namespace {

inline double Widen(float v) { return v; }
template <double (*Decode)(uint16_t)>
inline double WidenU16(uint16_t v) {
  return Decode(v);
}

template <typename WT, double (*Load)(WT)>
void MatMulT(const float* x, int64_t M, int64_t K, int64_t ldx, const WT* w, int64_t n_begin,
             int64_t n_end, double* y, int64_t ldy, double* abs_dot) {
  std::vector<double> wrow(K);  // W row n decoded once, reused for every m
  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int64_t k = 0; k < K; ++k) wrow[k] = Load(w[n * K + k]);
    for (int64_t m = 0; m < M; ++m) {
      double acc = 0, abs_acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = static_cast<double>(x[m * ldx + k]) * wrow[k];
        acc += p;
        abs_acc += std::fabs(p);
      }
      y[m * ldy + n] = acc;
      if (abs_dot != nullptr) abs_dot[m * ldy + n] = abs_acc;
    }
  }
}

}  // namespace

void MatMulF32(const float* x, int64_t M, int64_t K, int64_t ldx, const float* w, int64_t n_begin,
               int64_t n_end, double* y, int64_t ldy, double* abs_dot) {
  MatMulT<float, Widen>(x, M, K, ldx, w, n_begin, n_end, y, ldy, abs_dot);
}

void MatMulF16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w,
               int64_t n_begin, int64_t n_end, double* y, int64_t ldy, double* abs_dot) {
  MatMulT<uint16_t, WidenU16<F16ToDouble>>(x, M, K, ldx, w, n_begin, n_end, y, ldy, abs_dot);
}

void MatMulBF16(const float* x, int64_t M, int64_t K, int64_t ldx, const uint16_t* w,
                int64_t n_begin, int64_t n_end, double* y, int64_t ldy, double* abs_dot) {
  MatMulT<uint16_t, WidenU16<BF16ToDouble>>(x, M, K, ldx, w, n_begin, n_end, y, ldy, abs_dot);
}

void AddRmsNorm(float* residual, const float* h, const float* w, int64_t n, float eps, double* y) {
  if (h != nullptr) {
    for (int64_t i = 0; i < n; ++i) residual[i] = residual[i] + h[i];
  }
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(residual[i]) * residual[i];
  const double mean = n > 0 ? ss / static_cast<double>(n) : 0.0;
  const double inv = 1.0 / std::sqrt(mean + static_cast<double>(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<double>(residual[i]) * inv * w[i];
}

void CausalConv1dSilu(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w,
                      const float* b, int d_conv, float* state, double* y, int64_t ldy,
                      int64_t c_begin, int64_t c_end) {
  const int P = d_conv - 1;
  for (int64_t c = c_begin; c < c_end; ++c) {
    // Input at time s (s may be negative: then it comes from the carried state).
    auto input = [&](int64_t s) -> float {
      return s >= 0 ? x[s * ldx + c] : state[(P + s) * C + c];
    };
    for (int64_t t = 0; t < L; ++t) {
      double acc = b != nullptr ? b[c] : 0.0;
      for (int k = 0; k < d_conv; ++k) {
        acc += static_cast<double>(w[k * C + c]) * input(t - P + k);
      }
      y[t * ldy + c] = Silu(acc);
    }
    float last[8];  // the new state: inputs at times L-P .. L-1
    for (int j = 0; j < P; ++j) last[j] = input(L - P + j);
    for (int j = 0; j < P; ++j) state[j * C + c] = last[j];
  }
}

void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end, double* state, double* y) {
  const int64_t N = a.d_state;
  const ScanLayout& lo = a.layout;
  const int64_t a_ld = lo.a_ld != 0 ? lo.a_ld : N;
  for (int64_t c = c_begin; c < c_end; ++c) {
    double* h = state + c * N;
    for (int64_t t = 0; t < a.L; ++t) {
      const double u = a.u[t * a.ldu + c];
      const double dt = Softplus(static_cast<double>(a.delta[t * a.ld_delta + c / lo.dt_group]) +
                                 a.delta_bias[c / lo.dt_group]);
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const double A = a.A[(c / lo.a_group) * a_ld + n * lo.a_n_stride];
        const int64_t i_bc = t * a.ld_bc + (c / lo.bc_group) * lo.bc_ld + n;
        h[n] = std::exp(dt * A) * h[n] + dt * a.B[i_bc] * u;
        acc += h[n] * a.C[i_bc];
      }
      double out = acc + static_cast<double>(a.D[c / lo.d_group]) * u;
      if (a.z != nullptr) out *= Silu(a.z[t * a.ldz + c]);
      y[t * a.ldy + c] = out;
    }
  }
}

void ConvertF16(const uint16_t* src, int64_t n, double* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = F16ToDouble(src[i]);
}

void ConvertBF16(const uint16_t* src, int64_t n, double* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToDouble(src[i]);
}

uint64_t SumU64(const uint8_t* p, int64_t n) {
  uint64_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<uint64_t>(p[i]) << (8 * (i % 8));
  return s;
}

}  // namespace quamba::kernels::ref
