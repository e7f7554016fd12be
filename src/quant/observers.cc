// Observers and the symmetric scale rule (see observers.h).
#include "quant/observers.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "kernels/q8.h"

namespace quamba {
namespace {
// Upstream coming_max.clamp(min=1e-5); the same floor as the dynamic-quant kernels.
constexpr float kMinObservedAbsMax = kernels::kMinAbsMax;
}  // namespace

float ScaleFromAbsMax(float absmax) {
  return std::max(absmax, kMinObservedAbsMax) / 127.0f;
}

int8_t QuantizeValue(float w, float scale) {
  const float v = w / scale;
  if (!(v >= -128.0f)) return -128;  // also NaN
  if (v > 127.0f) return 127;
  return static_cast<int8_t>(std::nearbyint(v));
}

float QuantizeSymmetric(const float* w, int64_t n, int8_t* q) {
  float am = 0;
  for (int64_t i = 0; i < n; ++i) am = std::max(am, std::fabs(w[i]));
  const float scale = ScaleFromAbsMax(am);
  for (int64_t i = 0; i < n; ++i) q[i] = QuantizeValue(w[i], scale);
  return scale;
}

float TensorAbsMax(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  float m = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m = std::fmax(m, std::fabs(x[r * ld + c]));
  return m;
}

float TorchQuantile(std::vector<float>* v, double alpha) {
  QM_CHECK(!v->empty(), "quantile of an empty tensor");
  QM_CHECK(alpha >= 0 && alpha <= 1, "quantile alpha %g outside [0, 1]", alpha);
  const int64_t n = static_cast<int64_t>(v->size());
  // torch: q is a float32 tensor; ranks = q * (n - 1) in float32 (n <= 2^24 is exact).
  const float rank = static_cast<float>(alpha) * static_cast<float>(n - 1);
  const int64_t lo = static_cast<int64_t>(rank);
  const float w = rank - static_cast<float>(lo);
  const int64_t hi = static_cast<int64_t>(std::ceil(rank));
  std::nth_element(v->begin(), v->begin() + lo, v->end());
  const float a = (*v)[lo];
  // After nth_element everything past lo is >= a; the hi-th smallest is their minimum.
  const float b = hi > lo ? *std::min_element(v->begin() + lo + 1, v->end()) : a;
  // at::lerp: the branch keeps the result exact at both ends.
  return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

void MinMaxObserver::Observe(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  const float cur = std::max(TensorAbsMax(x, rows, cols, ld), kMinObservedAbsMax);
  w_max_ = samples_ == 0 ? cur : std::max(w_max_, cur);
  ++samples_;
}

void PercentileObserver::Observe(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  if (rows * cols == 0) return;
  buf_.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) buf_[r * cols + c] = std::fabs(x[r * ld + c]);
  const float cur = TorchQuantile(&buf_, alpha_);
  if (samples_ == 0) {
    w_max_ = cur;
  } else {
    w_max_ = w_max_ + static_cast<float>(sigma_) * (cur - w_max_);
  }
  ++samples_;
}

void PerChannelAbsMaxObserver::Observe(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  if (ch_.empty()) ch_.assign(static_cast<size_t>(cols), 0.0f);
  QM_CHECK(static_cast<int64_t>(ch_.size()) == cols, "channel count changed from %zu to %lld",
           ch_.size(), static_cast<long long>(cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) ch_[c] = std::fmax(ch_[c], std::fabs(x[r * ld + c]));
  ++samples_;
}

}  // namespace quamba
