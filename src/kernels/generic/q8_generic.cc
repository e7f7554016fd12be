// Portable int8 kernels: plain loops the baseline compiler auto-vectorises; exact int32
// accumulation and the rounding rule of kernels/q8_rowops.h.
#include "kernels/generic/q8_generic.h"

#include <cmath>

#include "core/check.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"

namespace quamba::kernels::generic {
namespace {

using q8::RoundS8;

inline float Silu(float v) { return v / (1.0f + std::exp(-v)); }
// Upstream selective_scan kernel: delta <= 20 ? log1pf(expf(delta)) : delta.
inline float Softplus(float v) { return v <= 20.0f ? std::log1p(std::exp(v)) : v; }

// sum_k x[k] * w[k] in int32 (integer sums reassociate freely: the loop vectorises).
inline int32_t DotS8(const int8_t* x, const int8_t* w, int64_t K) {
  int32_t acc = 0;
  for (int64_t k = 0; k < K; ++k) acc += static_cast<int32_t>(x[k]) * static_cast<int32_t>(w[k]);
  return acc;
}

// acc (M, [n_begin, n_end)) through an epilogue Out(m, n, acc). Blocks of 8 W rows stay in
// L1/L2 while every x row passes over them, so W is read from memory once.
template <typename Out>
void GemmCore(const GemmArgs& g, int64_t n_begin, int64_t n_end, Out out) {
  QM_DCHECK(g.K <= kGemmS8MaxK, "K = %lld exceeds the int32-exact bound",
            static_cast<long long>(g.K));
  QM_DCHECK(g.w->format == WeightFormat::kS8PerTensor || g.w->format == WeightFormat::kS8PerRow,
            "int8 GEMM on a non-int8 weight");
  QM_DCHECK(g.K == g.w->cols && n_end <= g.w->rows, "GEMM shape outside the weight");
  const int8_t* x = static_cast<const int8_t*>(g.x);
  const int8_t* w = static_cast<const int8_t*>(g.w->data);
  constexpr int64_t kNb = 8;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kNb) {
    const int64_t n1 = n0 + kNb < n_end ? n0 + kNb : n_end;
    for (int64_t m = 0; m < g.M; ++m) {
      const int8_t* xm = x + m * g.ldx;
      for (int64_t n = n0; n < n1; ++n) out(m, n, DotS8(xm, w + n * g.K, g.K));
    }
  }
}

// c_mn of the kernels.h epilogue: fl(a[m] * b), times col[n] when given.
inline float OutScale(const GemmArgs& g, int64_t m, int64_t n) {
  const float s = g.a[m * g.a_stride] * g.b;
  return g.col != nullptr ? s * g.col[n] : s;
}

}  // namespace

void QuantizeF32ToS8(const float* x, int64_t L, int64_t C, int64_t ldx, float inv_scale,
                     const float* col_mult, int8_t* q, int64_t ldq) {
  for (int64_t l = 0; l < L; ++l) {
    const float* xr = x + l * ldx;
    int8_t* qr = q + l * ldq;
    if (col_mult == nullptr) {
      for (int64_t c = 0; c < C; ++c) qr[c] = RoundS8(xr[c] * inv_scale);
    } else {
      for (int64_t c = 0; c < C; ++c) qr[c] = RoundS8(xr[c] * (inv_scale * col_mult[c]));
    }
  }
}

float AddRmsNormQuant(float* residual, const float* h, const float* w, int64_t n, float eps,
                      float inv_scale, int8_t* q) {
  if (h != nullptr)
    for (int64_t i = 0; i < n; ++i) residual[i] += h[i];
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(residual[i]) * residual[i];
  const float inv =
      static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n > 0 ? n : 1) + eps));
  float scale;
  if (inv_scale > 0) {
    scale = 1.0f / inv_scale;
  } else {
    float amax = 0;
    for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(residual[i] * inv * w[i]));
    scale = std::fmax(amax, kMinAbsMax) / 127.0f;
    inv_scale = 1.0f / scale;
  }
  for (int64_t i = 0; i < n; ++i) q[i] = RoundS8((residual[i] * inv) * w[i] * inv_scale);
  return scale;
}

void GemmS8S8ToS32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  int32_t* y = static_cast<int32_t*>(g.y);
  GemmCore(g, n_begin, n_end, [&](int64_t m, int64_t n, int32_t acc) { y[m * g.ldy + n] = acc; });
}

void GemmS8S8ToS8(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  int8_t* y = static_cast<int8_t*>(g.y);
  GemmCore(g, n_begin, n_end, [&](int64_t m, int64_t n, int32_t acc) {
    y[m * g.ldy + n] = RoundS8(static_cast<float>(acc) * OutScale(g, m, n));
  });
}

void GemmS8S8ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  float* y = static_cast<float*>(g.y);
  GemmCore(g, n_begin, n_end, [&](int64_t m, int64_t n, int32_t acc) {
    y[m * g.ldy + n] = static_cast<float>(acc) * OutScale(g, m, n);
  });
}

void CausalConv1dSiluS8(const Conv1dS8Args& a, int64_t c_begin, int64_t c_end) {
  QM_DCHECK(a.d_conv >= 1 && a.d_conv <= 8, "d_conv %d outside 1..8", a.d_conv);
  const int P = a.d_conv - 1;  // past inputs carried in `state`
  const int64_t C = a.C;
  const float swx_t = a.scale_w * a.scale_x;
  for (int64_t c = c_begin; c < c_end; ++c) {
    int32_t win[8];  // win[0..P-1] = previous inputs (oldest first), win[P] = current
    for (int j = 0; j < P; ++j) win[j] = a.state[j * C + c];
    const float swx = a.scale_acc != nullptr ? a.scale_acc[c] : swx_t;
    const float bias = a.bias_f32 != nullptr ? a.bias_f32[c]
                       : a.b != nullptr     ? a.scale_b * static_cast<float>(a.b[c])
                                            : 0.0f;
    const float inv_y = a.inv_scale_y_ch != nullptr ? a.inv_scale_y_ch[c] : a.inv_scale_y;
    for (int64_t t = 0; t < a.L; ++t) {
      win[P] = a.x[t * a.ldx + c];
      int32_t acc = 0;
      for (int k = 0; k < a.d_conv; ++k) acc += static_cast<int32_t>(a.w[k * C + c]) * win[k];
      const float s = Silu(static_cast<float>(acc) * swx + bias);
      if (a.y_f32 != nullptr) {
        a.y_f32[t * a.ldy + c] = s;
      } else {
        a.y[t * a.ldy + c] = RoundS8(s * inv_y);
      }
      for (int j = 0; j < P; ++j) win[j] = win[j + 1];
    }
    for (int j = 0; j < P; ++j) a.state[j * C + c] = static_cast<int8_t>(win[j]);
  }
}

void SelectiveScanS8(const ScanS8Args& a, int64_t c_begin, int64_t c_end) {
  const int64_t N = a.d_state;
  const ScanLayout& lo = a.layout;
  const int64_t a_ld = lo.ALd(N), as = lo.a_n_stride;
  for (int64_t c = c_begin; c < c_end; ++c) {
    float* h = a.state + c * N;
    const float* Ac = a.A + (c / lo.a_group) * a_ld;
    const int64_t bc = (c / lo.bc_group) * lo.bc_ld, dc = c / lo.dt_group;
    const float Dc = a.D[c / lo.d_group];
    for (int64_t t = 0; t < a.L; ++t) {
      const float u = a.scale_u * static_cast<float>(a.u[t * a.ldu + c]);
      const float delta = a.scale_delta * static_cast<float>(a.delta[t * a.ld_delta + dc]);
      const float dt = Softplus(delta + a.delta_bias[dc]);
      const int8_t* Bt = a.B + t * a.ld_bc + bc;
      const int8_t* Ct = a.C + t * a.ld_bc + bc;
      const float dtu = dt * u;
      float acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float b = a.scale_B * static_cast<float>(Bt[n]);
        const float cc = a.scale_C * static_cast<float>(Ct[n]);
        h[n] = std::exp(dt * Ac[n * as]) * h[n] + dtu * b;
        acc += h[n] * cc;
      }
      float out = acc + Dc * u;
      if (a.z != nullptr) out *= Silu(a.scale_z * static_cast<float>(a.z[t * a.ldz + c]));
      a.y[t * a.ldy + c] = out;
    }
  }
}

void HadamardF32(float* x, int64_t L, int64_t n, int64_t ldx) {
  int K = 0, lg = 0;
  QM_CHECK(HadamardSizeOk(n, &K, &lg), "unsupported Hadamard size %lld",
           static_cast<long long>(n));
  const int8_t* hk = HadamardFactor(K);
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  float* tmp = static_cast<float*>(q8::Scratch(q8::Q8Slot::kA, n * sizeof(float)));
  for (int64_t l = 0; l < L; ++l) {
    float* v = x + l * ldx;
    q8::HadamardRowUnnormalised(v, K, int64_t{1} << lg, hk, tmp);
    for (int64_t i = 0; i < n; ++i) v[i] *= norm;
  }
}

void HadamardF32ToS8(const float* x, int64_t L, int64_t n, int64_t ldx, float inv_scale, int8_t* q,
                     int64_t ldq) {
  int K = 0, lg = 0;
  QM_CHECK(HadamardSizeOk(n, &K, &lg), "unsupported Hadamard size %lld",
           static_cast<long long>(n));
  const int8_t* hk = HadamardFactor(K);
  const float mult = inv_scale * static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  float* row = static_cast<float*>(q8::Scratch(q8::Q8Slot::kA, n * sizeof(float)));
  float* tmp = static_cast<float*>(q8::Scratch(q8::Q8Slot::kB, n * sizeof(float)));
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < n; ++i) row[i] = x[l * ldx + i];
    q8::HadamardRowUnnormalised(row, K, int64_t{1} << lg, hk, tmp);
    for (int64_t i = 0; i < n; ++i) q[l * ldq + i] = RoundS8(row[i] * mult);
  }
}

void FillQ8Table(KernelTable* t) {
  t->quantize_f32_s8 = QuantizeF32ToS8;
  t->add_rms_norm_quant = AddRmsNormQuant;
  t->SetGemm(NumType::kS8, NumType::kS8, NumType::kS32, GemmS8S8ToS32);
  t->SetGemm(NumType::kS8, NumType::kS8, NumType::kS8, GemmS8S8ToS8);
  t->SetGemm(NumType::kS8, NumType::kS8, NumType::kF32, GemmS8S8ToF32);
  t->SetGemm(NumType::kS8, NumType::kS4, NumType::kS8, GemmS8S4ToS8);
  t->SetGemm(NumType::kS8, NumType::kS4, NumType::kF32, GemmS8S4ToF32);
  t->SetGemm(NumType::kF32, NumType::kS4, NumType::kF32, GemmF32S4ToF32);
  t->causal_conv1d_silu_s8 = CausalConv1dSiluS8;
  t->selective_scan_s8 = SelectiveScanS8;
  t->hadamard_f32 = HadamardF32;
  t->hadamard_quant = HadamardF32ToS8;
}

}  // namespace quamba::kernels::generic
