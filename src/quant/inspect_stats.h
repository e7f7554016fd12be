// Exact streaming statistics for the outlier inspector (quant/inspect.h): moments merged across
// chunks, the k largest values of a stream (for exact torch.quantile percentiles of the upper
// tail), and a fixed-memory histogram of any float range. Nothing here knows of models.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace quamba {

// Count, min, max, mean and central moments of a stream of values, merged exactly across chunks
// (Chan / Pébay's pairwise update, float64), for the Pearson kurtosis m4 / m2^2. NaN is not
// expected (the float forward of a checked model produces none); it would poison the moments.
class MomentAccumulator {
 public:
  void Add(const float* x, int64_t rows, int64_t cols, int64_t ld);
  void Merge(const MomentAccumulator& o);
  int64_t count() const { return n_; }
  float min() const { return min_; }
  float max() const { return max_; }
  double mean() const { return mean_; }
  double variance() const;  // population variance m2 (NaN when empty)
  double kurtosis() const;  // m4 / m2^2; 3 for a Gaussian; NaN when m2 == 0

 private:
  int64_t n_ = 0;
  float min_ = INFINITY, max_ = -INFINITY;
  double mean_ = 0, M2_ = 0, M3_ = 0, M4_ = 0;  // sums of (x - mean)^k
};

// The k largest values of a stream, exactly (a buffer compacted with nth_element when it reaches
// 2k, so memory stays under 2k floats and the cost is O(1) amortised per value).
class TopK {
 public:
  explicit TopK(int64_t k = 0) : k_(k), floor_(k > 0 ? -INFINITY : NAN) {}
  void Add(float v) {
    if (v >= floor_) {  // never true for NaN (either side)
      if (buf_.empty()) buf_.reserve(2 * k_);  // once: no capacity doubling past 2k
      buf_.push_back(v);
      if ((int64_t)buf_.size() >= 2 * k_) Compact();
    }
  }
  // The kept values, largest first (at most k).
  const std::vector<float>& Sorted();
  int64_t k() const { return k_; }

 private:
  void Compact();
  int64_t k_;
  float floor_;  // smallest value still kept once the buffer has been compacted
  std::vector<float> buf_;
};

// torch.quantile(v, alpha) (linear interpolation, as TorchQuantile in observers.h) of n values of
// which `top_desc` holds the largest, in decreasing order. QM_CHECKs that enough are held:
// n - floor(alpha (n - 1)) values.
float QuantileFromTop(const std::vector<float>& top_desc, int64_t n, double alpha);
// How many of the largest values QuantileFromTop needs for every alpha >= alpha_min.
int64_t TopNeeded(int64_t n, double alpha_min);

// A signed histogram of any range in fixed memory: bins are the float's sign, exponent and top 8
// mantissa bits (relative width 2^-8), for |x| in [2^-40, 2^41); smaller magnitudes count as 0.
class FloatHistogram {
 public:
  FloatHistogram();
  void Add(float v);
  // Counts in `bins` equal bins over [lo, hi]; each fine bin goes whole to the bin holding its
  // centre (values beyond the range go to the end bins).
  std::vector<double> Rebin(double lo, double hi, int bins) const;
  int64_t total() const { return total_; }

 private:
  std::vector<uint64_t> count_;  // (2 signs, exponents, 256)
  uint64_t zero_ = 0;
  int64_t total_ = 0;
};

}  // namespace quamba
