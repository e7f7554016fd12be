// The outlier inspector behind `quamba inspect --calib`: runs the float model over calibration
// samples and measures, at every quantization point of every layer (spec §2.3), the range and
// tails of the activations, their kurtosis, and the int8 scale each recipe would choose; writes
// them as outliers.json plus three SVG plots.
//
// Percentiles of |x| are exact torch.quantile values (linear interpolation) over all values of
// all samples: only the upper 1% of |x| is kept per (layer, point), which is all p99..p99.999
// need. When even that exceeds the memory budget, every s-th value (s coprime to the tensor's
// width, so every channel and token is visited) is kept instead and the report says so. Abs-max,
// mean, std and kurtosis are always exact.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace quamba {

// The seven points reported: the six quantized activations of the Mamba block plus
// out_proj:input after Quamba's Hadamard rotation (what its recipe actually quantizes).
enum class InspectPoint : uint8_t {
  kInProjIn,
  kInProjOut,
  kXProjIn,       // SSM input x (conv + SiLU output)
  kXProjOut,
  kDtProjOut,
  kOutProjIn,     // y * SiLU(z), before any rotation
  kOutProjInHad,  // H y: the same tensor after the online Hadamard transform
};
constexpr int kNumInspectPoints = 7;
// "in_proj:input", ..., "out_proj:input", "out_proj:input:hadamard". The seven slots are
// Mamba-1's quantization points; on Mamba-2 they hold its counterparts: kXProjIn the SSM input x
// (conv output, x channels), kXProjOut the conv output's B and C channels, kDtProjOut the SSD
// output y before the D skip and the gated norm ("conv1d:output:x", "conv1d:output:BC",
// "ssd:output").
const char* InspectPointName(InspectPoint p, Arch arch = Arch::kMamba1);

// Percentiles of |x| reported at every point.
constexpr std::array<double, 4> kInspectPercentiles = {0.99, 0.999, 0.9999, 0.99999};
// Display names matching kInspectPercentiles ("p99", "p99.9", ...).
constexpr std::array<const char*, 4> kInspectPercentileNames = {"p99", "p99.9", "p99.99",
                                                                "p99.999"};

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

struct PointStats {
  int64_t count = 0;  // values seen (tokens x width)
  double min = 0, max = 0, absmax = 0, mean = 0, std = 0, kurtosis = 0;
  std::array<double, 4> pct{};  // percentiles of |x| (kInspectPercentiles)
  int64_t pct_count = 0;        // values the percentiles were computed from (count, or subsample)
  float scale_minmax = 0;       // absmax / 127 (ScaleFromAbsMax)
  float scale_quamba = 0;       // what the quamba recipe uses to quantize this tensor
  // x_proj:input only: share of |x| beyond Quamba's percentile bound (NaN elsewhere, or when
  // the bound lies below the kept tail of a subsampled run).
  double clipped_quamba = 0;
};

struct Histogram {
  int layer = -1;
  std::string point;
  std::vector<double> edges;   // bins + 1
  std::vector<double> counts;  // bins
};

struct InspectOptions {
  int threads = 1;
  const kernels::KernelTable* kernels = nullptr;  // null: kernels::DefaultKernels()
  bool progress = false;
  // Memory for the |x| tails that make percentiles exact; beyond it values are subsampled.
  int64_t max_memory_bytes = int64_t{1} << 30;
  double percentile_alpha = 0.99999;  // Quamba's x_proj:input observer (spec §2.2)
  double percentile_sigma = 0.01;
  int hist_bins = 201;  // bins of the plotted histograms (over the data's own range)
};

struct InspectReport {
  std::string model_dir;
  MambaConfig config;
  std::vector<std::string> calib_files;
  int64_t samples = 0, calib_len = 0, tokens = 0;  // calib_len: the longest sample
  int64_t subsample_stride = 1;  // 1: exact percentiles; s: every s-th value
  bool hadamard = false;         // d_inner admits Quamba's Hadamard transform
  double percentile_alpha = 0, percentile_sigma = 0;
  std::vector<std::array<PointStats, kNumInspectPoints>> layers;  // (n_layer, points)
  std::vector<float> pct_ema;  // (n_layer) Quamba's percentile-EMA |x| bound for x_proj:input
  int ssm_layer = 0;   // largest max/p99.99 of the SSM input x
  int kurt_layer = 0;  // largest kurtosis of out_proj:input (before rotation)
  Histogram ssm_hist;           // SSM input x of ssm_layer
  Histogram out_hist, had_hist;  // out_proj:input of kurt_layer, before / after Hadamard
};

// Runs the float model over `samples` (one Prefill each, as calibration does) and measures.
StatusOr<InspectReport> InspectActivations(const Model& model,
                                           const std::vector<std::vector<int32_t>>& samples,
                                           const InspectOptions& opt);

// outliers.json (format "quamba-outliers/1"; docs/inspect.md).
std::string OutliersJson(const InspectReport& r);
// The per-layer table printed by `quamba inspect --calib`.
std::string OutliersTable(const InspectReport& r);
// The plots: per-layer ranges at every point; the SSM-input histogram of ssm_layer; out_proj:input
// before vs after the Hadamard rotation for kurt_layer.
std::string RangesSvg(const InspectReport& r);
std::string SsmInputSvg(const InspectReport& r);
std::string HadamardSvg(const InspectReport& r);

// Writes outliers.json, ranges.svg, ssm_input.svg and hadamard.svg into out_dir (created if
// missing), each atomically. Sets *written to the paths.
Status WriteInspectReport(const InspectReport& r, const std::string& out_dir,
                          std::vector<std::string>* written);

}  // namespace quamba
