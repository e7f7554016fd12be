// Calibration observers of Quamba (spec §2.2, official real_quant/observer.py) and the symmetric
// int8 scale rule. Each Observe() call is one calibration sample (batch 1, as upstream); x is a
// (rows, cols) float32 activation with row stride ld.
#pragma once

#include <cstdint>
#include <vector>

namespace quamba {

// Symmetric per-tensor int8 scale: max(absmax, 1e-5) / 127 (upstream clamps the observed abs-max
// at 1e-5, so an all-zero tensor gets a finite scale; HEAD additionally clamps scales at 1e-6,
// which only differs for absmax < 1.27e-4 and is not applied here: docs/numerics.md).
float ScaleFromAbsMax(float absmax);
// Weight quantization: clamp(round-half-to-even(w / scale), -128, 127), torch.round semantics.
int8_t QuantizeValue(float w, float scale);
// Symmetric int8 of w (n) with one scale: ScaleFromAbsMax(max |w|), QuantizeValue per element;
// returns the scale.
float QuantizeSymmetric(const float* w, int64_t n, int8_t* q);
// max |x| over a strided (rows, cols) block; 0 for an empty one. NaN is ignored.
float TensorAbsMax(const float* x, int64_t rows, int64_t cols, int64_t ld);

// torch.quantile(v, alpha) with linear interpolation, replicating its float32 arithmetic:
// rank = fl(fl(alpha) * (n - 1)), lo = floor(rank), w = rank - lo,
// result = w < 0.5 ? v_lo + w (v_hi - v_lo) : v_hi - (v_hi - v_lo)(1 - w), v_i the i-th smallest.
// Exact selection with std::nth_element (O(n)); reorders v. QM_CHECKs n >= 1, 0 <= alpha <= 1.
float TorchQuantile(std::vector<float>* v, double alpha);

// PerTensorMinmaxObserver: w_max = max over samples of max(|x|.amax(), 1e-5).
class MinMaxObserver {
 public:
  void Observe(const float* x, int64_t rows, int64_t cols, int64_t ld);
  float absmax() const { return w_max_; }
  float scale() const { return ScaleFromAbsMax(w_max_); }
  int64_t samples() const { return samples_; }

 private:
  float w_max_ = 0;
  int64_t samples_ = 0;
};

// PerTensorPercentileObserver: per sample cur = quantile(|x|.flatten(), alpha); the first sample
// sets w_max = cur, later ones w_max += sigma * (cur - w_max) (EMA), in float32 like torch.
class PercentileObserver {
 public:
  explicit PercentileObserver(double alpha = 0.99999, double sigma = 0.01)
      : alpha_(alpha), sigma_(sigma) {}
  void Observe(const float* x, int64_t rows, int64_t cols, int64_t ld);
  float absmax() const { return w_max_; }
  float scale() const { return ScaleFromAbsMax(w_max_); }
  int64_t samples() const { return samples_; }
  double alpha() const { return alpha_; }

 private:
  double alpha_, sigma_;
  float w_max_ = 0;
  int64_t samples_ = 0;
  std::vector<float> buf_;  // |x| of the current sample
};

// Per-channel (column) abs-max over all samples, for SmoothQuant's s_c = act_c^a / w_c^(1-a).
class PerChannelAbsMaxObserver {
 public:
  void Observe(const float* x, int64_t rows, int64_t cols, int64_t ld);
  const std::vector<float>& absmax() const { return ch_; }  // (cols)
  int64_t samples() const { return samples_; }

 private:
  std::vector<float> ch_;
  int64_t samples_ = 0;
};

}  // namespace quamba
