// The outlier inspector (see inspect.h).
#include "quant/inspect.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/progress.h"
#include "core/thread_pool.h"
#include "io/mapped_file.h"
#include "model/finite.h"
#include "model/mamba1/mamba1.h"
#include "model/mamba2/mamba2.h"
#include "model/runtime.h"
#include "quant/hadamard.h"
#include "quant/observers.h"

namespace quamba {
namespace {

constexpr int kP = kNumInspectPoints;

int64_t PointWidth(const MambaConfig& c, InspectPoint p) {
  if (c.arch == Arch::kMamba2) {
    switch (p) {
      case InspectPoint::kInProjIn: return c.d_model;
      case InspectPoint::kInProjOut: return c.d_in_proj();
      case InspectPoint::kXProjOut: return 2 * c.ngroups * c.d_state;
      default: return c.d_inner;
    }
  }
  switch (p) {
    case InspectPoint::kInProjIn: return c.d_model;
    case InspectPoint::kInProjOut: return 2 * c.d_inner;
    case InspectPoint::kXProjOut: return c.dt_rank + 2 * c.d_state;
    default: return c.d_inner;
  }
}

// Histograms are kept for the three points the plots show.
int HistSlot(InspectPoint p) {
  switch (p) {
    case InspectPoint::kXProjIn: return 0;
    case InspectPoint::kOutProjIn: return 1;
    case InspectPoint::kOutProjInHad: return 2;
    default: return -1;
  }
}

// Running statistics of one (layer, point).
struct PointAcc {
  MomentAccumulator moments;
  TopK top;
  int64_t kept = 0;   // values offered to `top`
  int64_t phase = 0;  // subsampling: offset of the next kept value in the next chunk
};

// Each Observe() call splits its work into independent tasks (moments, tail, histogram, the
// percentile EMA; each owns its accumulator) run on a pool while the engine waits: results do not
// depend on the thread count.
class InspectObserver : public ActivationObserver {
 public:
  InspectObserver(const MambaConfig& c, int64_t tokens, int64_t stride, bool hadamard,
                  const InspectOptions& opt, const kernels::KernelTable& k)
      : k_(k),
        arch_(c.arch),
        di_(c.d_inner),
        stride_(stride), hadamard_(hadamard), acc_(c.n_layer * kP), hist_(c.n_layer * 3),
        pool_(std::max(1, opt.threads)) {
    for (int l = 0; l < c.n_layer; ++l) {
      pct_.emplace_back(opt.percentile_alpha, opt.percentile_sigma);
      for (int p = 0; p < kP; ++p) {
        const int64_t n = tokens * PointWidth(c, static_cast<InspectPoint>(p));
        acc_[l * kP + p].top = TopK(TopNeeded((n + stride - 1) / stride, kInspectPercentiles[0]));
      }
    }
  }

  void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
               int64_t ld) override {
    if (arch_ == Arch::kMamba2) {
      switch (static_cast<mamba2::Tap>(tap)) {
        case mamba2::Tap::kInProjIn: return ObservePoint(layer, InspectPoint::kInProjIn, x, rows, cols, ld);
        case mamba2::Tap::kInProjOut: return ObservePoint(layer, InspectPoint::kInProjOut, x, rows, cols, ld);
        case mamba2::Tap::kConvOut:  // [x | B | C]: x is the SSM input, B and C the other slot
          ObservePoint(layer, InspectPoint::kXProjIn, x, rows, di_, ld);
          return ObservePoint(layer, InspectPoint::kXProjOut, x + di_, rows, cols - di_, ld);
        case mamba2::Tap::kSsdOut: return ObservePoint(layer, InspectPoint::kDtProjOut, x, rows, cols, ld);
        case mamba2::Tap::kOutProjIn: return ObservePoint(layer, InspectPoint::kOutProjIn, x, rows, cols, ld);
        default: return;
      }
    }
    InspectPoint ip;
    switch (static_cast<mamba1::Tap>(tap)) {
      case mamba1::Tap::kInProjIn: ip = InspectPoint::kInProjIn; break;
      case mamba1::Tap::kInProjOut: ip = InspectPoint::kInProjOut; break;
      case mamba1::Tap::kXProjIn: ip = InspectPoint::kXProjIn; break;
      case mamba1::Tap::kXProjOut: ip = InspectPoint::kXProjOut; break;
      case mamba1::Tap::kDtProjOut: ip = InspectPoint::kDtProjOut; break;
      case mamba1::Tap::kOutProjIn: ip = InspectPoint::kOutProjIn; break;
      default: return;  // out_proj:output is not quantized
    }
    ObservePoint(layer, ip, x, rows, cols, ld);
  }

  void ObservePoint(int layer, InspectPoint ip, const float* x, int64_t rows, int64_t cols,
                    int64_t ld) {
    tasks_.clear();
    AddTasks(layer, ip, x, rows, cols, ld);
    // One call = one whole sample (the engine's chunk is the sample length), as upstream.
    if (ip == InspectPoint::kXProjIn)
      tasks_.push_back([=, this] { pct_[layer].Observe(x, rows, cols, ld); });
    if (ip == InspectPoint::kOutProjIn && hadamard_) {
      buf_.resize(rows * cols);
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(buf_.data() + r * cols, x + r * ld, cols * sizeof(float));
      QM_CHECK(HadamardTransformRows(k_, buf_.data(), rows, cols, cols).ok(),
               "d_inner %lld was checked", (long long)cols);
      AddTasks(layer, InspectPoint::kOutProjInHad, buf_.data(), rows, cols, cols);
    }
    std::atomic<size_t> next{0};
    pool_.Run([&](int, int) {
      for (size_t i; (i = next.fetch_add(1)) < tasks_.size();) tasks_[i]();
    });
  }

  PointAcc& acc(int layer, InspectPoint p) { return acc_[layer * kP + (int)p]; }
  const FloatHistogram& hist(int layer, int slot) const { return hist_[layer * 3 + slot]; }
  float pct_ema(int layer) const { return pct_[layer].absmax(); }

 private:
  void AddTasks(int layer, InspectPoint p, const float* x, int64_t rows, int64_t cols,
                int64_t ld) {
    PointAcc* a = &acc(layer, p);
    tasks_.push_back([=] { a->moments.Add(x, rows, cols, ld); });
    tasks_.push_back([=, this] {
      if (stride_ == 1) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) a->top.Add(std::fabs(x[r * ld + c]));
        a->kept += rows * cols;
      } else {
        const int64_t total = rows * cols;
        int64_t j = a->phase;
        for (; j < total; j += stride_, ++a->kept)
          a->top.Add(std::fabs(x[(j / cols) * ld + j % cols]));
        a->phase = j - total;
      }
    });
    if (const int slot = HistSlot(p); slot >= 0) {
      FloatHistogram* h = &hist_[layer * 3 + slot];
      tasks_.push_back([=] {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) h->Add(x[r * ld + c]);
      });
    }
  }

  const kernels::KernelTable& k_;
  Arch arch_;
  int64_t di_;
  int64_t stride_;
  bool hadamard_;
  std::vector<PointAcc> acc_;         // (n_layer, kP)
  std::vector<FloatHistogram> hist_;  // (n_layer, 3)
  std::vector<PercentileObserver> pct_;
  std::vector<float> buf_;            // (rows, d_inner) out_proj:input after the rotation
  std::vector<std::function<void()>> tasks_;
  ThreadPool pool_;
};

int64_t Gcd(int64_t a, int64_t b) { return b == 0 ? a : Gcd(b, a % b); }

Histogram MakeHistogram(const FloatHistogram& h, int layer, InspectPoint p, double lo, double hi,
                        int bins, Arch arch) {
  Histogram o;
  o.layer = layer;
  o.point = InspectPointName(p, arch);
  o.counts = h.Rebin(lo, hi, bins);
  for (int i = 0; i <= bins; ++i) o.edges.push_back(lo + (hi - lo) * i / bins);
  return o;
}

}  // namespace

const char* InspectPointName(InspectPoint p, Arch arch) {
  if (arch == Arch::kMamba2) {
    switch (p) {
      case InspectPoint::kXProjIn: return "conv1d:output:x";
      case InspectPoint::kXProjOut: return "conv1d:output:BC";
      case InspectPoint::kDtProjOut: return "ssd:output";
      default: break;
    }
  }
  switch (p) {
    case InspectPoint::kInProjIn: return "in_proj:input";
    case InspectPoint::kInProjOut: return "in_proj:output";
    case InspectPoint::kXProjIn: return "x_proj:input";
    case InspectPoint::kXProjOut: return "x_proj:output";
    case InspectPoint::kDtProjOut: return "dt_proj:output";
    case InspectPoint::kOutProjIn: return "out_proj:input";
    case InspectPoint::kOutProjInHad: return "out_proj:input:hadamard";
  }
  return "?";
}


StatusOr<InspectReport> InspectActivations(const Model& model,
                                           const std::vector<std::vector<int32_t>>& samples,
                                           const InspectOptions& opt) {
  if (model.quantized())
    return Status::Error(StrFormat("%s: expected a float model to inspect activations, found a "
                                   "quantized one (recipe %s)",
                                   model.dir().c_str(), model.recipe().c_str()));
  if (samples.empty())
    return Status::Error("calibration: expected at least one sample, found none");
  const MambaConfig& c = model.config();
  InspectReport r;
  r.model_dir = model.dir();
  r.config = c;
  r.samples = (int64_t)samples.size();
  r.percentile_alpha = opt.percentile_alpha;
  r.percentile_sigma = opt.percentile_sigma;
  r.hadamard = CheckHadamardSize(c.d_inner).ok();
  int64_t max_len = 1;
  for (const auto& s : samples) {
    r.tokens += (int64_t)s.size();
    max_len = std::max<int64_t>(max_len, s.size());
  }
  r.calib_len = max_len;

  // Exact percentiles keep the top 1% of |x| per (layer, point), up to 2x that while buffering.
  double need = 0;
  std::vector<int64_t> widths;
  for (int p = 0; p < kP; ++p) {
    if (p == (int)InspectPoint::kOutProjInHad && !r.hadamard) continue;
    const int64_t w = PointWidth(c, static_cast<InspectPoint>(p));
    widths.push_back(w);
    need += 8.0 * (double)TopNeeded(r.tokens * w, kInspectPercentiles[0]) * (double)c.n_layer;
  }
  int64_t stride = 1;
  if (need > (double)opt.max_memory_bytes) {
    stride = (int64_t)std::ceil(need / (double)std::max<int64_t>(opt.max_memory_bytes, 1));
    // Coprime to every width: the kept values walk over all channels and tokens.
    for (;; ++stride) {
      bool ok = true;
      for (int64_t w : widths) ok &= Gcd(stride, w) == 1;
      if (ok) break;
    }
  }
  r.subsample_stride = stride;

  const kernels::KernelTable& k = opt.kernels ? *opt.kernels : kernels::DefaultKernels();
  InspectObserver obs(c, r.tokens, stride, r.hadamard, opt, k);
  Runtime engine(model, opt.threads, k, max_len, 1);
  engine.set_observer(&obs);
  SequenceState state = model.NewState();
  std::optional<Progress> bar;
  if (opt.progress) bar.emplace("inspecting", r.samples, "samples");
  for (size_t i = 0; i < samples.size(); ++i) {
    state.Reset();
    engine.Prefill(&state, samples[i], nullptr, false);
    if (bar) bar->Update((int64_t)i + 1);
  }
  if (bar) bar->Finish();

  // A NaN or Inf activation poisons the moments and never enters the percentile tail: bad
  // input (a non-finite weight, or weights that overflow float32), reported before any statistic.
  for (int l = 0; l < c.n_layer; ++l)
    for (int p = 0; p < kP; ++p) {
      const MomentAccumulator& m = obs.acc(l, static_cast<InspectPoint>(p)).moments;
      if (m.count() == 0 || (std::isfinite(m.mean()) && std::isfinite(m.min()) &&
                             std::isfinite(m.max())))
        continue;
      QM_RETURN_IF_ERROR(FindNonFiniteWeights(model));
      return Status::Error(StrFormat("%s: layer %d %s: expected finite activations on the "
                                     "calibration text, found NaN or Inf with finite weights: "
                                     "the activations overflow float32", model.dir().c_str(), l,
                                     InspectPointName(static_cast<InspectPoint>(p))));
    }

  r.layers.resize(c.n_layer);
  r.pct_ema.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    r.pct_ema[l] = obs.pct_ema(l);
    for (int p = 0; p < kP; ++p) {
      const InspectPoint ip = static_cast<InspectPoint>(p);
      PointAcc& a = obs.acc(l, ip);
      PointStats& s = r.layers[l][p];
      s.count = a.moments.count();
      if (s.count == 0) continue;  // no Hadamard point
      s.min = a.moments.min();
      s.max = a.moments.max();
      s.absmax = std::max(std::fabs(s.min), std::fabs(s.max));
      s.mean = a.moments.mean();
      s.std = std::sqrt(a.moments.variance());
      s.kurtosis = a.moments.kurtosis();
      s.pct_count = a.kept;
      const std::vector<float>& top = a.top.Sorted();
      for (size_t i = 0; i < kInspectPercentiles.size(); ++i)
        s.pct[i] = QuantileFromTop(top, a.kept, kInspectPercentiles[i]);
      s.scale_minmax = ScaleFromAbsMax((float)s.absmax);
      s.scale_quamba = s.scale_minmax;
      s.clipped_quamba = NAN;
      if (ip == InspectPoint::kXProjIn) {
        s.scale_quamba = ScaleFromAbsMax(r.pct_ema[l]);
        // Values beyond the percentile bound saturate at +-127; counted in the kept tail.
        const float bound = std::max(r.pct_ema[l], kernels::kMinAbsMax);
        const int64_t over =
            std::partition_point(top.begin(), top.end(), [&](float v) { return v > bound; }) -
            top.begin();
        if (over < (int64_t)top.size() || (int64_t)top.size() == a.kept)
          s.clipped_quamba = (double)over / (double)a.kept;
      }
    }
    PointStats& o = r.layers[l][(int)InspectPoint::kOutProjIn];
    const PointStats& h = r.layers[l][(int)InspectPoint::kOutProjInHad];
    // Quamba quantizes the rotated tensor: its scale is the post-rotation abs-max.
    o.scale_quamba = r.hadamard ? h.scale_minmax : NAN;
  }

  // The layers the plots show.
  double best_ratio = -1, best_kurt = -INFINITY;
  for (int l = 0; l < c.n_layer; ++l) {
    const PointStats& x = r.layers[l][(int)InspectPoint::kXProjIn];
    const double ratio = x.pct[2] > 0 ? x.absmax / x.pct[2] : 0;
    if (ratio > best_ratio) {
      best_ratio = ratio;
      r.ssm_layer = l;
    }
    const double k = r.layers[l][(int)InspectPoint::kOutProjIn].kurtosis;
    if (std::isfinite(k) && k > best_kurt) {
      best_kurt = k;
      r.kurt_layer = l;
    }
  }
  const int bins = std::max(opt.hist_bins, 3);
  {
    const PointStats& x = r.layers[r.ssm_layer][(int)InspectPoint::kXProjIn];
    // Asymmetric (SiLU output >= -0.28): the data's own range, padded by a bin.
    double lo = std::min(x.min, 0.0), hi = std::max(x.max, 0.0);
    const double pad = std::max(hi - lo, 1e-6) / bins;
    r.ssm_hist = MakeHistogram(obs.hist(r.ssm_layer, 0), r.ssm_layer, InspectPoint::kXProjIn,
                               lo - pad, hi + pad, bins, r.config.arch);
  }
  {
    // One axis for both: the union of their ranges (often lopsided: y * SiLU(z) has a long
    // positive tail), padded by a bin.
    const PointStats& o = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjIn];
    const PointStats& h = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjInHad];
    double lo = std::min(o.min, 0.0), hi = std::max(o.max, 0.0);
    if (r.hadamard) {
      lo = std::min(lo, h.min);
      hi = std::max(hi, h.max);
    }
    const double pad = std::max(hi - lo, 1e-6) / bins;
    r.out_hist = MakeHistogram(obs.hist(r.kurt_layer, 1), r.kurt_layer, InspectPoint::kOutProjIn,
                               lo - pad, hi + pad, bins, r.config.arch);
    if (r.hadamard)
      r.had_hist = MakeHistogram(obs.hist(r.kurt_layer, 2), r.kurt_layer,
                                 InspectPoint::kOutProjInHad, lo - pad, hi + pad, bins, r.config.arch);
  }
  return r;
}

}  // namespace quamba
