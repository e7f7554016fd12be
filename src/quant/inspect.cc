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
#include "quant/svg_plot.h"

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

// Round to `digits` significant digits (JSON stays short; scales use 9: float round trip).
double Sig(double v, int digits = 6) {
  if (!std::isfinite(v)) return v;
  return std::strtod(StrFormat("%.*g", digits, v).c_str(), nullptr);
}

// 4 significant digits; 1e4..1e7 without an exponent (a kurtosis of 11595 stays 5 wide).
std::string Short(double v) {
  if (!std::isfinite(v)) return "-";
  if (std::fabs(v) >= 1e4 && std::fabs(v) < 1e7) return StrFormat("%.0f", v);
  return StrFormat("%.4g", v);
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

std::string OutliersJson(const InspectReport& r) {
  using Json = nlohmann::ordered_json;
  const MambaConfig& c = r.config;
  Json j;
  j["format"] = "quamba-outliers/1";
  j["model"] = r.model_dir;
  j["config"] = {{"n_layer", c.n_layer}, {"d_model", c.d_model}, {"d_inner", c.d_inner},
                 {"d_state", c.d_state}, {"dt_rank", c.dt_rank}, {"vocab_size", c.vocab_size}};
  j["calibration"] = {{"files", r.calib_files},
                      {"samples", r.samples},
                      {"calib_len", r.calib_len},
                      {"tokens", r.tokens}};
  j["method"] = {
      {"percentiles",
       "torch.quantile (linear interpolation) of |x| over all tokens of all samples"},
      {"percentile_values", r.subsample_stride == 1
                                ? std::string("exact: every value")
                                : StrFormat("subsampled: every %lld-th value (memory budget)",
                                            (long long)r.subsample_stride)},
      {"subsample_stride", r.subsample_stride},
      {"kurtosis", "Pearson m4 / m2^2 of the signed values (Gaussian: 3)"},
      {"scale_minmax", "max|x| / 127"},
      {"scale_quamba",
       "x_proj:input: EMA over samples of the per-sample percentile of |x| (alpha, sigma "
       "below) / 127; out_proj:input: max|H x| / 127 (after the Hadamard rotation); "
       "elsewhere max|x| / 127"},
      {"percentile_alpha", r.percentile_alpha},
      {"percentile_sigma", r.percentile_sigma}};
  j["hadamard"] = r.hadamard;
  Json layers = Json::array();
  for (size_t l = 0; l < r.layers.size(); ++l) {
    Json points = Json::object();
    for (int p = 0; p < kP; ++p) {
      const PointStats& s = r.layers[l][p];
      if (s.count == 0) continue;
      Json o;
      o["count"] = s.count;
      o["min"] = Sig(s.min);
      o["max"] = Sig(s.max);
      o["absmax"] = Sig(s.absmax);
      o["mean"] = Sig(s.mean);
      o["std"] = Sig(s.std);
      o["kurtosis"] = Sig(s.kurtosis);
      for (size_t i = 0; i < kInspectPercentiles.size(); ++i)
        o[kInspectPercentileNames[i]] = Sig(s.pct[i]);
      o["percentile_count"] = s.pct_count;
      o["scale_minmax"] = Sig(s.scale_minmax, 9);
      o["scale_quamba"] = Sig(s.scale_quamba, 9);
      if (p == (int)InspectPoint::kXProjIn) {
        o["quamba_percentile_ema"] = Sig(r.pct_ema[l], 9);
        o["clipped_quamba"] = Sig(s.clipped_quamba);
      }
      points[InspectPointName(static_cast<InspectPoint>(p), r.config.arch)] = o;
    }
    layers.push_back({{"layer", l}, {"points", points}});
  }
  j["layers"] = layers;
  const PointStats& x = r.layers[r.ssm_layer][(int)InspectPoint::kXProjIn];
  const PointStats& o = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjIn];
  const PointStats& h = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjInHad];
  j["summary"] = {{"ssm_input_layer", r.ssm_layer},
                  {"ssm_input_max_over_p99.99", Sig(x.pct[2] > 0 ? x.absmax / x.pct[2] : NAN)},
                  {"out_proj_kurtosis_layer", r.kurt_layer},
                  {"out_proj_kurtosis", Sig(o.kurtosis)},
                  {"out_proj_kurtosis_hadamard", Sig(r.hadamard ? h.kurtosis : NAN)}};
  j["plots"] = {{"ranges", "ranges.svg"}, {"ssm_input", "ssm_input.svg"},
                {"hadamard", "hadamard.svg"}};
  auto hist = [](const Histogram& hh) {
    Json e = Json::array(), cts = Json::array();
    for (double v : hh.edges) e.push_back(Sig(v));
    for (double v : hh.counts) cts.push_back((int64_t)v);
    return Json{{"layer", hh.layer}, {"point", hh.point}, {"edges", e}, {"counts", cts}};
  };
  j["histograms"] = {{"ssm_input", hist(r.ssm_hist)}, {"out_proj_input", hist(r.out_hist)}};
  if (r.hadamard) j["histograms"]["out_proj_input_hadamard"] = hist(r.had_hist);
  return j.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";  // paths are bytes
}

std::string OutliersTable(const InspectReport& r) {
  std::string t = StrFormat(
      "activation outliers over %lld samples, %lld tokens (percentiles of |x|: %s)\n",
      (long long)r.samples, (long long)r.tokens,
      r.subsample_stride == 1
          ? "exact over all values"
          : StrFormat("every %lld-th value", (long long)r.subsample_stride).c_str());
  const std::string x_name =
      std::string("SSM input x (") + InspectPointName(InspectPoint::kXProjIn, r.config.arch) + ")";
  t += StrFormat("%5s | %-30s | %-37s | %s\n", "", x_name.c_str(),
                 "out_proj:input", "out_proj:input after Hadamard");
  t += StrFormat("%5s | %9s %9s %10s | %9s %9s %9s %7s | %9s %9s %9s %7s\n", "layer", "max",
                 "p99.99", "max/p99.99", "max", "p99.9", "max/p99.9", "kurt", "max", "p99.9",
                 "max/p99.9", "kurt");
  auto ratio = [](double a, double b) { return b > 0 ? a / b : NAN; };
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const PointStats& x = r.layers[l][(int)InspectPoint::kXProjIn];
    const PointStats& o = r.layers[l][(int)InspectPoint::kOutProjIn];
    const PointStats& h = r.layers[l][(int)InspectPoint::kOutProjInHad];
    const bool had = h.count > 0;
    t += StrFormat("%5zu | %9s %9s %10s | %9s %9s %9s %7s | %9s %9s %9s %7s\n", l,
                   Short(x.absmax).c_str(), Short(x.pct[2]).c_str(),
                   Short(ratio(x.absmax, x.pct[2])).c_str(), Short(o.absmax).c_str(),
                   Short(o.pct[1]).c_str(), Short(ratio(o.absmax, o.pct[1])).c_str(),
                   Short(o.kurtosis).c_str(), had ? Short(h.absmax).c_str() : "-",
                   had ? Short(h.pct[1]).c_str() : "-",
                   had ? Short(ratio(h.absmax, h.pct[1])).c_str() : "-",
                   had ? Short(h.kurtosis).c_str() : "-");
  }
  const PointStats& x = r.layers[r.ssm_layer][(int)InspectPoint::kXProjIn];
  const PointStats& o = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjIn];
  const PointStats& h = r.layers[r.kurt_layer][(int)InspectPoint::kOutProjInHad];
  t += StrFormat("largest SSM-input max/p99.99: layer %d (%s; quamba clips at %s, %s of "
                 "values)\n",
                 r.ssm_layer, Short(ratio(x.absmax, x.pct[2])).c_str(),
                 Short(r.pct_ema[r.ssm_layer]).c_str(),
                 std::isfinite(x.clipped_quamba)
                     ? StrFormat("%.3g%%", 100 * x.clipped_quamba).c_str()
                     : "an unknown share");
  t += StrFormat("largest out_proj:input kurtosis: layer %d (%s; after Hadamard %s)\n",
                 r.kurt_layer, Short(o.kurtosis).c_str(),
                 r.hadamard ? Short(h.kurtosis).c_str() : "n/a");
  return t;
}

namespace {

const char* kRed = "#d62728";
const char* kBlue = "#1f77b4";
const char* kGreen = "#2ca02c";
const char* kOrange = "#ff7f0e";
const char* kPurple = "#9467bd";

// "p99.999" for the percentile observer's alpha.
std::string PctName(const InspectReport& r) {
  return StrFormat("p%.10g", 100 * r.percentile_alpha);
}

std::string BaseName(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return std::filesystem::path(d).filename().string();
}

}  // namespace

std::string RangesSvg(const InspectReport& r) {
  svg::Figure f;
  f.title = StrFormat("Activation ranges per layer: %s, %lld samples, %lld tokens",
                      BaseName(r.model_dir).c_str(), (long long)r.samples, (long long)r.tokens);
  f.columns = 4;
  f.panel_width = 400;
  f.panel_height = 290;
  std::vector<double> layers;
  for (size_t l = 0; l < r.layers.size(); ++l) layers.push_back((double)l);
  auto series = [&](const std::string& label, const std::string& color, bool dashed,
                    auto value) {
    svg::Series s;
    s.label = label;
    s.color = color;
    s.dashed = dashed;
    s.markers = true;
    s.x = layers;
    for (size_t l = 0; l < r.layers.size(); ++l) s.y.push_back(value(l));
    return s;
  };
  for (int p = 0; p < kP; ++p) {
    if (p == (int)InspectPoint::kOutProjInHad && !r.hadamard) continue;
    svg::Panel pn;
    pn.title = p == (int)InspectPoint::kOutProjInHad ? "out_proj:input after Hadamard"
                                                     : InspectPointName((InspectPoint)p, r.config.arch);
    if (p == (int)InspectPoint::kXProjIn) pn.title += " (SSM input x)";
    pn.x.title = "layer";
    pn.x.integer_ticks = true;
    pn.y.title = "|x|";
    pn.y.log = true;
    pn.series.push_back(series("max |x|", kRed, false,
                               [&](size_t l) { return r.layers[l][p].absmax; }));
    pn.series.push_back(series("p99.99", kBlue, true,
                               [&](size_t l) { return r.layers[l][p].pct[2]; }));
    pn.series.push_back(series("p99", kGreen, true,
                               [&](size_t l) { return r.layers[l][p].pct[0]; }));
    if (p == (int)InspectPoint::kXProjIn)
      pn.series.push_back(series(StrFormat("quamba clip (%s EMA)", PctName(r).c_str()), kOrange,
                                 false,
                                 [&](size_t l) { return (double)r.pct_ema[l]; }));
    pn.legend = svg::LegendPos::kTopRight;
    f.panels.push_back(std::move(pn));
  }
  svg::Panel k;
  k.title = "kurtosis (Gaussian = 3)";
  k.x.title = "layer";
  k.x.integer_ticks = true;
  k.y.title = "kurtosis";
  k.y.log = true;
  k.series.push_back(series("out_proj:input", kRed, false, [&](size_t l) {
    return r.layers[l][(int)InspectPoint::kOutProjIn].kurtosis;
  }));
  if (r.hadamard)
    k.series.push_back(series("after Hadamard", kBlue, false, [&](size_t l) {
      return r.layers[l][(int)InspectPoint::kOutProjInHad].kurtosis;
    }));
  k.series.push_back(series(InspectPointName(InspectPoint::kXProjIn, r.config.arch), kPurple, true, [&](size_t l) {
    return r.layers[l][(int)InspectPoint::kXProjIn].kurtosis;
  }));
  f.panels.push_back(std::move(k));
  return svg::RenderSvg(f);
}

std::string SsmInputSvg(const InspectReport& r) {
  const int l = r.ssm_layer;
  const PointStats& x = r.layers[l][(int)InspectPoint::kXProjIn];
  svg::Figure f;
  f.panel_width = 800;
  f.panel_height = 440;
  svg::Panel p;
  p.title = StrFormat("SSM input x (%s), layer %d of %s: %lld values, max/p99.99 = %.3g",
                      InspectPointName(InspectPoint::kXProjIn, r.config.arch), l, BaseName(r.model_dir).c_str(), (long long)x.count,
                      x.pct[2] > 0 ? x.absmax / x.pct[2] : 0.0);
  p.x.title = "x";
  p.y.title = "count (log)";
  p.y.log = true;
  p.y.min = 0.5;  // a count of 1 stands clear of the axis
  p.legend_headroom = false;  // the legend sits over the sparse right tail
  svg::Series h;
  h.kind = svg::SeriesKind::kStep;
  h.label = "histogram of x";
  h.color = kBlue;
  h.fill_opacity = 0.3;
  h.x = r.ssm_hist.edges;
  h.y = r.ssm_hist.counts;
  p.series.push_back(h);
  auto mark = [&](double v, const std::string& label, const char* color) {
    p.markers.push_back({v, label, color, true});
    p.markers.push_back({-v, "", color, true});
  };
  mark(x.pct[2], StrFormat("p99.99 of |x| = %.4g", x.pct[2]), kGreen);
  mark(r.pct_ema[l], StrFormat("quamba clip (%s EMA) = %.4g", PctName(r).c_str(), r.pct_ema[l]),
       kOrange);
  mark(x.absmax, StrFormat("minmax clip (max |x|) = %.4g", x.absmax), kRed);
  f.panels.push_back(std::move(p));
  return svg::RenderSvg(f);
}

std::string HadamardSvg(const InspectReport& r) {
  const int l = r.kurt_layer;
  const PointStats& o = r.layers[l][(int)InspectPoint::kOutProjIn];
  const PointStats& h = r.layers[l][(int)InspectPoint::kOutProjInHad];
  svg::Figure f;
  f.panel_width = 800;
  f.panel_height = 440;
  svg::Panel p;
  p.title = StrFormat("out_proj:input before vs after the Hadamard rotation, layer %d of %s",
                      l, BaseName(r.model_dir).c_str());
  p.x.title = "value";
  p.y.title = "count (log)";
  p.y.log = true;
  p.y.min = 0.5;  // a count of 1 stands clear of the axis
  p.legend_headroom = false;  // the legend sits over the sparse right tail
  svg::Series a;
  a.kind = svg::SeriesKind::kStep;
  a.label = StrFormat("before: max |x| %.4g, kurtosis %.4g", o.absmax, o.kurtosis);
  a.color = kRed;
  a.fill_opacity = 0.22;
  a.x = r.out_hist.edges;
  a.y = r.out_hist.counts;
  p.series.push_back(a);
  if (r.hadamard) {
    svg::Series b;
    b.kind = svg::SeriesKind::kStep;
    b.label = StrFormat("after: max |x| %.4g, kurtosis %.4g", h.absmax, h.kurtosis);
    b.color = kBlue;
    b.fill_opacity = 0.3;
    b.x = r.had_hist.edges;
    b.y = r.had_hist.counts;
    p.series.push_back(b);
  } else {
    p.title += " (d_inner admits no Hadamard transform)";
  }
  f.panels.push_back(std::move(p));
  return svg::RenderSvg(f);
}

Status WriteInspectReport(const InspectReport& r, const std::string& out_dir,
                          std::vector<std::string>* written) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec || !std::filesystem::is_directory(out_dir))
    return Status::Error(StrFormat("%s: expected an output directory, cannot create it: %s",
                                   out_dir.c_str(), ec ? ec.message().c_str() : "not a directory"));
  const std::pair<const char*, std::string> files[] = {{"outliers.json", OutliersJson(r)},
                                                       {"ranges.svg", RangesSvg(r)},
                                                       {"ssm_input.svg", SsmInputSvg(r)},
                                                       {"hadamard.svg", HadamardSvg(r)}};
  for (const auto& [name, text] : files) {
    const std::string path = out_dir + "/" + name;
    QM_RETURN_IF_ERROR(WriteFileAtomic(path, text.data(), text.size()));
    if (written) written->push_back(path);
  }
  return Status::Ok();
}

}  // namespace quamba
