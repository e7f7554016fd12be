// GPTQ 4-bit weight quantization (Frantar et al. 2023) as Quamba2 runs it (quamba2-spec §2.7):
// symmetric codes q in [0, 15] with offset 8 (w ~ (q - 8) s), one scale per output row and group
// of `group` input columns, block = group = 128, no act-order, damping 1% of the mean Hessian
// diagonal. Columns are quantized left to right; each column's rounding error is spread over the
// columns not yet quantized through the inverse Hessian, so the layer output error ||(W - Ŵ) X||
// is what gets minimised rather than the weight error.
//
// H = (2 / n) Σ x xᵀ over the layer's calibration inputs (HessianAccumulator). Arithmetic is
// float64 throughout (the official code uses float32 Cholesky factors; on real Hessians float64
// is what keeps the factorisation from failing, and the codes differ only at rounding ties).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"

namespace quamba {

struct GptqOptions {
  int64_t group = 128;  // columns per scale group; also the lazy-update block
  double damp = 0.01;   // added to H's diagonal: damp * mean(diag H)
  ThreadPool* pool = nullptr;  // rows split across its threads (null: the calling thread)
};

struct W4Weights {
  int64_t rows = 0, cols = 0, group = 0;
  std::vector<uint8_t> codes;  // (rows, cols), one code 0..15 per byte; w ~ (code - 8) * scale
  std::vector<float> scales;   // (rows, cols / group)
  float Dequant(int64_t r, int64_t c) const {
    return static_cast<float>(codes[r * cols + c] - 8) * scales[r * (cols / group) + c / group];
  }
};

// H = (2 / n) Σ_t x_t x_tᵀ over every row x_t (length `cols`) added; float64, running mean as
// the official code keeps it (so batches of any size give the same H). Plain loops: O(cols²) per
// row; the recipe that uses it at real shapes should accumulate XᵀX with the kernels' GEMM.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols) : cols_(cols), h_(cols * cols, 0.0) {}
  // x: (rows, cols) row-major, row stride ld.
  void Add(const float* x, int64_t rows, int64_t ld);
  // The same for a block of `rows` rows given by its Gram matrix Σ x xᵀ (cols, cols), computed
  // elsewhere (e.g. by a float32 GEMM).
  void AddGram(const float* gram, int64_t rows);
  int64_t cols() const { return cols_; }
  int64_t samples() const { return n_; }
  const std::vector<double>& h() const { return h_; }  // (cols, cols)

 private:
  int64_t cols_;
  int64_t n_ = 0;
  std::vector<double> h_;
};

// The GPTQ grid of one group at its start: s = max|w| * 2 / 15 (the row's largest value lands on
// level 7.5 -> code 15 after clamping, error s/2 like ordinary rounding); 0 -> tiny positive.
float GptqGroupScale(const double* w, int64_t n);
// code = clamp(round_half_even(w / s) + 8, 0, 15).
uint8_t GptqCode(double w, float s);

// GPTQ of w (rows, cols) against the Hessian h (cols, cols). cols must be a multiple of
// opt.group. Errors: shapes, or a Hessian that is not positive definite even after damping.
StatusOr<W4Weights> GptqQuantize(const std::vector<float>& w, int64_t rows, int64_t cols,
                                 const std::vector<double>& h, const GptqOptions& opt);

// Round-to-nearest on the same grid (each group's scale from the original weights): the baseline
// GPTQ is measured against.
W4Weights RtnQuantize4(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t group);

// The layer loss GPTQ minimises, per calibration row: tr((W - Ŵ) H (W - Ŵ)ᵀ) / 2 =
// (1/n) Σ_t ||(W - Ŵ) x_t||².
double LayerLoss(const std::vector<float>& w, const W4Weights& q, const std::vector<double>& h);

}  // namespace quamba
