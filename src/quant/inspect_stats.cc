// Streaming statistics of the outlier inspector (see inspect_stats.h).
#include "quant/inspect_stats.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "core/status.h"

namespace quamba {
namespace {

// The rank torch.quantile interpolates at: fl(alpha) * (n - 1) in float32, as TorchQuantile
// (exact for n <= 2^24, torch's own limit); in float64 beyond that.
struct Rank {
  int64_t lo, hi;
  float w;
};
Rank QuantileRank(int64_t n, double alpha) {
  const float fa = static_cast<float>(alpha);
  if (n - 1 <= (int64_t{1} << 24)) {
    const float r = fa * static_cast<float>(n - 1);
    const int64_t lo = static_cast<int64_t>(r);
    return {lo, static_cast<int64_t>(std::ceil(r)), r - static_cast<float>(lo)};
  }
  const double r = static_cast<double>(fa) * static_cast<double>(n - 1);
  const int64_t lo = static_cast<int64_t>(r);
  return {lo, static_cast<int64_t>(std::ceil(r)), static_cast<float>(r - static_cast<double>(lo))};
}

}  // namespace

void MomentAccumulator::Add(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  if (rows * cols == 0) return;
  MomentAccumulator b;
  b.n_ = rows * cols;
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ld;
    double row_sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = row[c];
      row_sum += v;
      if (v < b.min_) b.min_ = v;
      if (v > b.max_) b.max_ = v;
    }
    sum += row_sum;
  }
  b.mean_ = sum / static_cast<double>(b.n_);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double d = x[r * ld + c] - b.mean_, d2 = d * d;
      b.M2_ += d2;
      b.M3_ += d2 * d;
      b.M4_ += d2 * d2;
    }
  Merge(b);
}

void MomentAccumulator::Merge(const MomentAccumulator& b) {
  if (b.n_ == 0) return;
  if (n_ == 0) {
    *this = b;
    return;
  }
  const double na = static_cast<double>(n_), nb = static_cast<double>(b.n_), n = na + nb;
  const double d = b.mean_ - mean_, d2 = d * d;
  const double M2 = M2_ + b.M2_ + d2 * na * nb / n;
  const double M3 = M3_ + b.M3_ + d2 * d * na * nb * (na - nb) / (n * n) +
                    3 * d * (na * b.M2_ - nb * M2_) / n;
  const double M4 = M4_ + b.M4_ + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n) +
                    6 * d2 * (na * na * b.M2_ + nb * nb * M2_) / (n * n) +
                    4 * d * (na * b.M3_ - nb * M3_) / n;
  mean_ += d * nb / n;
  min_ = std::min(min_, b.min_);
  max_ = std::max(max_, b.max_);
  M2_ = M2;
  M3_ = M3;
  M4_ = M4;
  n_ += b.n_;
}

double MomentAccumulator::variance() const {
  return n_ == 0 ? NAN : M2_ / static_cast<double>(n_);
}

double MomentAccumulator::kurtosis() const {
  if (n_ == 0 || M2_ <= 0) return NAN;
  return static_cast<double>(n_) * M4_ / (M2_ * M2_);
}

void TopK::Compact() {
  if ((int64_t)buf_.size() <= k_) return;
  std::nth_element(buf_.begin(), buf_.begin() + (k_ - 1), buf_.end(), std::greater<float>());
  buf_.resize(k_);
  floor_ = buf_.empty() ? INFINITY : *std::min_element(buf_.begin(), buf_.end());
}

const std::vector<float>& TopK::Sorted() {
  if (k_ == 0) buf_.clear();
  Compact();
  std::sort(buf_.begin(), buf_.end(), std::greater<float>());
  return buf_;
}

int64_t TopNeeded(int64_t n, double alpha_min) {
  if (n <= 0) return 0;
  return std::min(n, n - QuantileRank(n, alpha_min).lo);
}

float QuantileFromTop(const std::vector<float>& top_desc, int64_t n, double alpha) {
  QM_CHECK(n >= 1, "quantile of an empty tensor");
  const Rank r = QuantileRank(n, alpha);
  QM_CHECK(n - 1 - r.lo < (int64_t)top_desc.size(),
           "quantile %g of %lld values needs the top %lld, have %zu", alpha, (long long)n,
           (long long)(n - r.lo), top_desc.size());
  const float a = top_desc[n - 1 - r.lo], b = top_desc[n - 1 - r.hi];
  return r.w < 0.5f ? a + r.w * (b - a) : b - (b - a) * (1.0f - r.w);
}

// Bins: index = (sign * kExps + exp - kExpLo) * 256 + top 8 mantissa bits.
namespace {
constexpr int kExpLo = 127 - 40, kExpHi = 127 + 40, kExps = kExpHi - kExpLo + 1;
}  // namespace

FloatHistogram::FloatHistogram() : count_(2 * kExps * 256, 0) {}

void FloatHistogram::Add(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  const int exp = (bits >> 23) & 0xff;
  if (exp == 0xff && (bits & 0x7fffff) != 0) return;  // NaN
  ++total_;
  if (exp < kExpLo) {
    ++zero_;
    return;
  }
  const int sign = bits >> 31;
  const int e = std::min(exp, kExpHi) - kExpLo;
  const int m = exp > kExpHi ? 255 : (bits >> 15) & 0xff;
  ++count_[(sign * kExps + e) * 256 + m];
}

std::vector<double> FloatHistogram::Rebin(double lo, double hi, int bins) const {
  std::vector<double> out(bins, 0.0);
  if (bins <= 0 || !(hi > lo)) return out;
  auto put = [&](double v, uint64_t c) {
    int64_t i = static_cast<int64_t>(std::floor((v - lo) / (hi - lo) * bins));
    i = std::clamp<int64_t>(i, 0, bins - 1);
    out[i] += static_cast<double>(c);
  };
  if (zero_ > 0) put(0.0, zero_);
  for (int s = 0; s < 2; ++s)
    for (int e = 0; e < kExps; ++e)
      for (int m = 0; m < 256; ++m) {
        const uint64_t c = count_[(s * kExps + e) * 256 + m];
        if (c == 0) continue;
        const double mag = std::ldexp(1.0 + (m + 0.5) / 256.0, e + kExpLo - 127);
        put(s ? -mag : mag, c);
      }
  return out;
}

}  // namespace quamba
