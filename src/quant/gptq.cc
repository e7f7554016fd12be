// GPTQ (see gptq.h). The loop follows IST-DASLab's gptq.py as Quamba2's gptq_utils.py runs it:
// the rows of U = chol(H⁻¹, upper) stand for the inverse Hessian of the columns not yet
// quantized, errors are applied lazily per 128-column block.
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace quamba {
namespace {

// In-place Cholesky a = L Lᵀ (lower triangle of a receives L; the upper triangle is zeroed).
// false when a pivot is not positive (not positive definite).
bool CholeskyLower(std::vector<double>* a, int64_t n) {
  double* m = a->data();
  for (int64_t j = 0; j < n; ++j) {
    double d = m[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= m[j * n + k] * m[j * n + k];
    if (!(d > 0)) return false;
    const double ljj = std::sqrt(d);
    m[j * n + j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = m[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= m[i * n + k] * m[j * n + k];
      m[i * n + j] = s / ljj;
    }
    for (int64_t i = 0; i < j; ++i) m[i * n + j] = 0;
  }
  return true;
}

// H⁻¹ from its Cholesky factor L (lower): H⁻¹ = L⁻ᵀ L⁻¹. Row-oriented so every inner loop
// walks contiguous memory (K = 4096 at mamba-1.4b's out_proj).
std::vector<double> InverseFromCholesky(const std::vector<double>& l, int64_t n) {
  // Li = L⁻¹ (lower), row by row: row i = (e_i - Σ_{k<i} L[i][k] Li[k][:]) / L[i][i].
  std::vector<double> li(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double* ri = &li[i * n];
    ri[i] = 1.0;
    for (int64_t k = 0; k < i; ++k) {
      const double c = l[i * n + k];
      if (c == 0) continue;
      const double* rk = &li[k * n];
      for (int64_t j = 0; j <= k; ++j) ri[j] -= c * rk[j];
    }
    const double d = 1.0 / l[i * n + i];
    for (int64_t j = 0; j <= i; ++j) ri[j] *= d;
  }
  // H⁻¹ = Liᵀ Li = Σ_k (row k of Li)ᵀ (row k of Li): lower triangle, then mirrored.
  std::vector<double> inv(n * n, 0.0);
  for (int64_t k = 0; k < n; ++k) {
    const double* rk = &li[k * n];
    for (int64_t a = 0; a <= k; ++a) {
      const double c = rk[a];
      if (c == 0) continue;
      double* ra = &inv[a * n];
      for (int64_t b = 0; b <= a; ++b) ra[b] += c * rk[b];
    }
  }
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < a; ++b) inv[b * n + a] = inv[a * n + b];
  return inv;
}

}  // namespace

void HessianAccumulator::Add(const float* x, int64_t rows, int64_t ld) {
  if (rows <= 0) return;
  const int64_t n = cols_;
  // Running mean as the official add_batch: H <- H n/(n+m) + (2/(n+m)) Σ x xᵀ.
  const double keep = static_cast<double>(n_) / static_cast<double>(n_ + rows);
  const double add = 2.0 / static_cast<double>(n_ + rows);
  for (double& v : h_) v *= keep;
  std::vector<double> xr(n);
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t k = 0; k < n; ++k) xr[k] = x[t * ld + k];
    for (int64_t a = 0; a < n; ++a) {
      const double xa = add * xr[a];
      if (xa == 0) continue;
      double* row = h_.data() + a * n;
      for (int64_t b = 0; b < n; ++b) row[b] += xa * xr[b];
    }
  }
  n_ += rows;
}

void HessianAccumulator::AddGram(const float* gram, int64_t rows) {
  if (rows <= 0) return;
  const double keep = static_cast<double>(n_) / static_cast<double>(n_ + rows);
  const double add = 2.0 / static_cast<double>(n_ + rows);
  for (size_t i = 0; i < h_.size(); ++i) h_[i] = h_[i] * keep + add * gram[i];
  n_ += rows;
}

float GptqGroupScale(const double* w, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(w[i]));
  const float s = static_cast<float>(m * 2.0 / 15.0);
  return s > 0 ? s : 1e-30f;  // an all-zero group: every code 8, whatever the scale
}

uint8_t GptqCode(double w, float s) {
  const double q = std::nearbyint(w / static_cast<double>(s)) + 8;  // half-even (default mode)
  return static_cast<uint8_t>(std::clamp(q, 0.0, 15.0));
}

StatusOr<W4Weights> GptqQuantize(const std::vector<float>& w_in, int64_t rows, int64_t cols,
                                 const std::vector<double>& h_in, const GptqOptions& opt) {
  const int64_t g = opt.group;
  if (g <= 0 || cols <= 0 || rows <= 0 || cols % g != 0)
    return Status::Error(StrFormat("gptq: expected columns a positive multiple of the group %lld, "
                                   "found %lld x %lld", (long long)g, (long long)rows,
                                   (long long)cols));
  if (static_cast<int64_t>(w_in.size()) != rows * cols ||
      static_cast<int64_t>(h_in.size()) != cols * cols)
    return Status::Error("gptq: weight or Hessian size disagrees with the shape");
  const int64_t K = cols, N = rows;
  std::vector<double> W(w_in.begin(), w_in.end());  // (N, K), updated with spread errors
  std::vector<double> H = h_in;                     // (K, K)
  // Dead inputs (never nonzero in calibration): H_dd = 1 and the column zeroed.
  for (int64_t d = 0; d < K; ++d) {
    if (H[d * K + d] == 0) {
      H[d * K + d] = 1;
      for (int64_t r = 0; r < N; ++r) W[r * K + d] = 0;
    }
  }
  double mean_diag = 0;
  for (int64_t d = 0; d < K; ++d) mean_diag += H[d * K + d];
  mean_diag /= static_cast<double>(K);
  for (int64_t d = 0; d < K; ++d) H[d * K + d] += opt.damp * mean_diag;
  if (!CholeskyLower(&H, K))
    return Status::Error("gptq: the damped Hessian is not positive definite (non-finite inputs?)");
  std::vector<double> U = InverseFromCholesky(H, K);  // H⁻¹
  if (!CholeskyLower(&U, K))                          // H⁻¹ = L' L'ᵀ; U = L'ᵀ (upper)
    return Status::Error("gptq: the inverse Hessian is not positive definite");
  // Ut[i * K + j] = U[i][j] = L'[j][i]: rows of U contiguous for the updates below.
  std::vector<double> Ut(K * K);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) Ut[i * K + j] = U[j * K + i];
  U = std::vector<double>();

  W4Weights out;
  out.rows = N;
  out.cols = K;
  out.group = g;
  out.codes.assign(N * K, 8);
  out.scales.assign(N * (K / g), 0.0f);
  // Rows are independent given U (each row's errors only move its own later columns): split
  // them across threads. Per row, block by block: the group scale at the block start, then each
  // column quantized and its error spread inside the block at once, and over the columns after
  // the block lazily (W[r, i2:] -= Err[r] · U[i1:i2, i2:]).
  auto quantize_rows = [&](int64_t rb, int64_t re) {
    std::vector<double> err(g);
    for (int64_t r = rb; r < re; ++r) {
      double* wr = &W[r * K];
      for (int64_t i1 = 0; i1 < K; i1 += g) {
        const int64_t i2 = i1 + g, gi = i1 / g;
        const float s = GptqGroupScale(wr + i1, g);
        out.scales[r * (K / g) + gi] = s;
        for (int64_t i = i1; i < i2; ++i) {
          const double* ui = &Ut[i * K];
          const uint8_t q = GptqCode(wr[i], s);
          out.codes[r * K + i] = q;
          const double e = (wr[i] - static_cast<double>(q - 8) * static_cast<double>(s)) / ui[i];
          err[i - i1] = e;
          for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * ui[j];
        }
        for (int64_t i = i1; i < i2; ++i) {
          const double e = err[i - i1];
          if (e == 0) continue;
          const double* ui = &Ut[i * K];
          for (int64_t j = i2; j < K; ++j) wr[j] -= e * ui[j];
        }
      }
    }
  };
  if (opt.pool != nullptr) {
    opt.pool->ParallelRange(N, 1, quantize_rows);
  } else {
    quantize_rows(0, N);
  }
  return out;
}

W4Weights RtnQuantize4(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t group) {
  QM_CHECK(group > 0 && cols % group == 0 && static_cast<int64_t>(w.size()) == rows * cols);
  W4Weights out;
  out.rows = rows;
  out.cols = cols;
  out.group = group;
  out.codes.resize(rows * cols);
  out.scales.resize(rows * (cols / group));
  std::vector<double> grp(group);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += group) {
      for (int64_t k = 0; k < group; ++k) grp[k] = w[r * cols + c0 + k];
      const float s = GptqGroupScale(grp.data(), group);
      out.scales[r * (cols / group) + c0 / group] = s;
      for (int64_t k = 0; k < group; ++k) out.codes[r * cols + c0 + k] = GptqCode(grp[k], s);
    }
  }
  return out;
}

double LayerLoss(const std::vector<float>& w, const W4Weights& q, const std::vector<double>& h) {
  const int64_t N = q.rows, K = q.cols;
  QM_CHECK(static_cast<int64_t>(w.size()) == N * K && static_cast<int64_t>(h.size()) == K * K);
  double loss = 0;
  std::vector<double> d(K);
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t k = 0; k < K; ++k) d[k] = static_cast<double>(w[r * K + k]) - q.Dequant(r, k);
    for (int64_t a = 0; a < K; ++a) {
      double s = 0;
      for (int64_t b = 0; b < K; ++b) s += h[a * K + b] * d[b];
      loss += d[a] * s;
    }
  }
  return loss / 2;
}

}  // namespace quamba
