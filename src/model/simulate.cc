#include "model/simulate.h"

#include "core/check.h"

namespace quamba {

SimulatedInt8Gemm::SimulatedInt8Gemm(ThreadPool& pool, const kernels::KernelTable& k,
                                     const kernels::KernelTable& q8,
                                     const std::vector<QMatrix>& matrices, int64_t max_rows,
                                     int64_t max_k, int64_t max_n_int8_out)
    : pool_(pool), k_(k), q8_(q8), x_(max_rows * max_k), acc_(max_rows * max_n_int8_out) {
  for (const QMatrix& m : matrices) {
    if (m.key() == nullptr) continue;
    std::vector<float>& v = grid_[m.key()];
    v.resize(m.rows * m.cols);
    if (!m.s4()) {
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(m.q[i]);
      continue;
    }
    // 4-bit: code - 8 as floats, laid out group by group, (K / group, N, group), so that each
    // group's columns are one contiguous (N, group) matrix for the float GEMM.
    const int64_t G = m.group, N = m.rows, K = m.cols;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int code = kernels::S4Code(m.q4 + n * (K / 2), k);
        v[(k / G) * N * G + n * G + k % G] = static_cast<float>(code - kernels::kS4Zero);
      }
  }
}

const float* SimulatedInt8Gemm::Grid(const QMatrix& w) const {
  auto it = grid_.find(w.key());
  QM_CHECK(it != grid_.end(), "no float copy of a %lld x %lld weight", (long long)w.rows,
           (long long)w.cols);
  return it->second.data();
}

void SimulatedInt8Gemm::Columns(const float* xf, int64_t M, int64_t K, const QMatrix& w,
                                const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                                int64_t ldy, float* acc, int64_t ld_acc, int64_t nb,
                                int64_t ne) {
  const int64_t N = w.rows;
  const float* wf = Grid(w);
  // acc: straight into yf (fp32 output), else into the scratch.
  if (y8 == nullptr) {
    acc = yf;
    ld_acc = ldy;
  }
  if (w.s4()) {
    // The W4A8 contract: per group an exact integer sum (a float GEMM over |acc_g| <= 1024 G
    // < 2^24), then t = sum over groups in ascending order of fl(scale[n, g] * acc_g), one
    // rounding per operation, as the kernels.
    const int64_t G = w.group, n_groups = K / G;
    thread_local std::vector<float> t, part;
    t.assign(M * N, 0.0f);
    part.resize(M * N);
    for (int64_t g = 0; g < n_groups; ++g) {
      MatMulRangeF32(k_, xf + g * G, M, G, K, wf + g * N * G, N, part.data(), N, nb, ne);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = nb; n < ne; ++n) {
          const float prod = w.scales[n * n_groups + g] * part[m * N + n];
          t[m * N + n] = t[m * N + n] + prod;
        }
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = nb; n < ne; ++n) acc[m * ld_acc + n] = t[m * N + n];
  } else {
    MatMulRangeF32(k_, xf, M, K, K, wf, N, acc, ld_acc, nb, ne);
  }
  for (int64_t m = 0; m < M; ++m) {
    const float scale = a[m * a_stride] * b;
    // c_mn = fl(scale * col[n]) with per-row factors (kernels.h GemmArgs::col).
    if (y8 != nullptr) {
      // The kernels' own quantize op: RoundS8(fl(acc * c_mn)), the ToS8 epilogue's rounding.
      q8_.quantize_f32_s8(acc + m * ld_acc + nb, 1, ne - nb, ld_acc, scale,
                          w.col != nullptr ? w.col + nb : nullptr, y8 + m * ldy + nb, ldy);
    } else {
      for (int64_t n = nb; n < ne; ++n)
        yf[m * ldy + n] = acc[m * ld_acc + n] * (w.col != nullptr ? scale * w.col[n] : scale);
    }
  }
}

void SimulatedInt8Gemm::Run(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
                            const float* a, int64_t a_stride, float b, int8_t* y8, float* yf,
                            int64_t ldy) {
  const int64_t N = w.rows;
  QM_CHECK(M * K <= static_cast<int64_t>(x_.size()), "simulation x scratch too small");
  QM_CHECK(y8 == nullptr || M * N <= static_cast<int64_t>(acc_.size()),
           "simulation acc scratch too small");
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) x_[m * K + k] = static_cast<float>(x[m * ldx + k]);
  pool_.ParallelRange(N, 64, [&](int64_t nb, int64_t ne) {
    Columns(x_.data(), M, K, w, a, a_stride, b, y8, yf, ldy, acc_.data(), N, nb, ne);
  });
}

void SimulatedInt8Gemm::RunRange(const int8_t* x, int64_t M, int64_t K, int64_t ldx,
                                 const QMatrix& w, const float* a, int64_t a_stride, float b,
                                 int8_t* y8, float* yf, int64_t ldy, int64_t nb, int64_t ne) {
  // Called from several threads at once: each converts x into its own buffer (grown once per
  // thread; --simulate is a checking mode, not a speed path).
  thread_local std::vector<float> xf, acc;
  xf.resize(M * K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xf[m * K + k] = static_cast<float>(x[m * ldx + k]);
  if (y8 != nullptr) acc.resize(M * w.rows);
  Columns(xf.data(), M, K, w, a, a_stride, b, y8, yf, ldy, acc.data(), w.rows, nb, ne);
}

}  // namespace quamba
