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
#include "quant/inspect_stats.h"
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
