#include "kernels/generic/generic.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
#include "kernels/generic/q8_generic.h"

namespace quamba::kernels::generic {
namespace {

// Dot product with 8 independent partial sums: keeps the rounding error ~ K/8 * eps instead of
// K * eps and lets the compiler vectorise. `Load` widens one weight element to float.
template <typename WT, float (*Load)(WT)>
inline float Dot(const float* x, const WT* w, int64_t K) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[k + j] * Load(w[k + j]);
  float tail = 0;
  for (; k < K; ++k) tail += x[k] * Load(w[k]);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

inline float LoadF32(float v) { return v; }
inline float LoadF16(uint16_t v) { return F16ToF32(v); }
inline float LoadBF16(uint16_t v) { return BF16ToF32(v); }

template <typename WT, float (*Load)(WT)>
void MatMulT(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  QM_DCHECK(g.a == nullptr && g.col == nullptr, "float GEMMs have no epilogue");
  QM_DCHECK(g.K == g.w->cols && n_end <= g.w->rows, "GEMM shape outside the weight");
  const float* x = static_cast<const float*>(g.x);
  float* y = static_cast<float*>(g.y);
  const int64_t M = g.M, K = g.K, ldx = g.ldx, ldy = g.ldy;
  const WT* W = static_cast<const WT*>(g.w->data);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const WT* wrow = W + n * K;
    for (int64_t m = 0; m < M; ++m) y[m * ldy + n] = Dot<WT, Load>(x + m * ldx, wrow, K);
  }
}

inline float Silu(float v) { return v / (1.0f + std::exp(-v)); }
// Upstream selective_scan kernel: delta <= 20 ? log1pf(expf(delta)) : delta.
inline float Softplus(float v) { return v <= 20.0f ? std::log1p(std::exp(v)) : v; }

}  // namespace

void GemmF32F32ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  MatMulT<float, LoadF32>(g, n_begin, n_end);
}
void GemmF32F16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  MatMulT<uint16_t, LoadF16>(g, n_begin, n_end);
}
void GemmF32BF16ToF32(const GemmArgs& g, int64_t n_begin, int64_t n_end) {
  MatMulT<uint16_t, LoadBF16>(g, n_begin, n_end);
}

void AddRmsNorm(float* residual, const float* h, const float* w, int64_t n, float eps, float* y) {
  if (h != nullptr)
    for (int64_t i = 0; i < n; ++i) residual[i] += h[i];
  double ss = 0;  // double: n up to ~8k, cheap, and keeps the norm exact to float rounding
  for (int64_t i = 0; i < n; ++i) ss += (double)residual[i] * residual[i];
  const float inv = (float)(1.0 / std::sqrt(ss / (double)(n > 0 ? n : 1) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = residual[i] * inv * w[i];
}

void CausalConv1dSilu(const float* x, int64_t L, int64_t C, int64_t ldx, const float* w,
                      const float* b, int d_conv, float* state, float* y, int64_t ldy,
                      int64_t c_begin, int64_t c_end) {
  QM_DCHECK(d_conv >= 1 && d_conv <= 8);
  const int P = d_conv - 1;  // past inputs carried in `state`
  for (int64_t c = c_begin; c < c_end; ++c) {
    float win[8];  // win[0..P-1] = previous inputs (oldest first), win[P] = current
    for (int j = 0; j < P; ++j) win[j] = state[j * C + c];
    for (int64_t t = 0; t < L; ++t) {
      win[P] = x[t * ldx + c];
      float acc = b ? b[c] : 0.0f;
      for (int k = 0; k < d_conv; ++k) acc += w[k * C + c] * win[k];
      y[t * ldy + c] = Silu(acc);
      for (int j = 0; j < P; ++j) win[j] = win[j + 1];
    }
    for (int j = 0; j < P; ++j) state[j * C + c] = win[j];
  }
}

void SelectiveScan(const ScanArgs& a, int64_t c_begin, int64_t c_end) {
  const int64_t N = a.d_state;
  const ScanLayout& lo = a.layout;
  const int64_t a_ld = lo.ALd(N), as = lo.a_n_stride;
  for (int64_t c = c_begin; c < c_end; ++c) {
    float* h = a.state + c * N;
    const float* Ac = a.A + (c / lo.a_group) * a_ld;
    const int64_t bc = (c / lo.bc_group) * lo.bc_ld, dc = c / lo.dt_group;
    const float Dc = a.D[c / lo.d_group];
    for (int64_t t = 0; t < a.L; ++t) {
      const float u = a.u[t * a.ldu + c];
      const float dt = Softplus(a.delta[t * a.ld_delta + dc] + a.delta_bias[dc]);
      const float* Bt = a.B + t * a.ld_bc + bc;
      const float* Ct = a.C + t * a.ld_bc + bc;
      const float dtu = dt * u;
      float acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        h[n] = std::exp(dt * Ac[n * as]) * h[n] + dtu * Bt[n];
        acc += h[n] * Ct[n];
      }
      float out = acc + Dc * u;
      if (a.z != nullptr) out *= Silu(a.z[t * a.ldz + c]);
      a.y[t * a.ldy + c] = out;
    }
  }
}

void ConvertF16(const void* src, int64_t n, float* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
}
void ConvertBF16(const void* src, int64_t n, float* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(s[i]);
}

uint64_t SumU64(const uint8_t* p, int64_t n) {
  // Eight independent accumulators keep the loads, not the add chain, the limit.
  uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int j = 0; j < 8; ++j) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * j, 8);
      acc[j] += v;
    }
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    acc[0] += v;
  }
  uint64_t tail = 0;
  if (n > i) std::memcpy(&tail, p + i, static_cast<size_t>(n - i));  // little-endian, zero-extended
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

void FillTable(KernelTable* t) {
  t->SetGemm(NumType::kF32, NumType::kF32, NumType::kF32, GemmF32F32ToF32);
  t->SetGemm(NumType::kF32, NumType::kF16, NumType::kF32, GemmF32F16ToF32);
  t->SetGemm(NumType::kF32, NumType::kBF16, NumType::kF32, GemmF32BF16ToF32);
  t->add_rms_norm = AddRmsNorm;
  t->causal_conv1d_silu = CausalConv1dSilu;
  t->selective_scan = SelectiveScan;
  t->convert_f16 = ConvertF16;
  t->convert_bf16 = ConvertBF16;
  t->sum_u64 = SumU64;
  FillQ8Table(t);
}

}  // namespace quamba::kernels::generic
