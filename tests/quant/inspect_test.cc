// The outlier inspector: its statistics on known data (kurtosis, exact torch.quantile from the
// kept tail, the histogram), the SVG plotter, agreement with the quantizer's scales and with a
// brute-force recomputation on a tiny synthetic model, outliers.json, and `quamba inspect
// --calib` end to end.
#include "quant/inspect.h"

#include "model/mamba1/mamba1.h"
#include "model/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>
#include <random>

#include "model/synth.h"
#include "quant/calib_data.h"
#include "quant/hadamard.h"
#include "quant/observers.h"
#include "quant/quantizer.h"
#include "io/svg_plot.h"
#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

using testing::ReadAll;

// Minimal XML well-formedness: balanced tags, quoted attributes, only known entities, one root
// element named `root`. Returns "" or what is wrong.
std::string XmlProblem(const std::string& s, const std::string& root) {
  std::vector<std::string> stack;
  size_t i = 0;
  int roots = 0;
  auto entity_ok = [&](size_t at) {
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"})
      if (s.compare(at, std::strlen(e), e) == 0) return true;
    return false;
  };
  while (i < s.size()) {
    if (s[i] == '&' && !entity_ok(i)) return "bad entity at " + std::to_string(i);
    if (s[i] != '<') {
      if (stack.empty() && !std::isspace((unsigned char)s[i]))
        return "text outside the root at " + std::to_string(i);
      ++i;
      continue;
    }
    if (s.compare(i, 2, "<?") == 0) {
      const size_t e = s.find("?>", i);
      if (e == std::string::npos) return "unterminated <?";
      i = e + 2;
      continue;
    }
    if (s.compare(i, 2, "</") == 0) {
      const size_t e = s.find('>', i);
      if (e == std::string::npos) return "unterminated end tag";
      const std::string name = s.substr(i + 2, e - i - 2);
      if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
      stack.pop_back();
      i = e + 1;
      continue;
    }
    size_t j = i + 1;
    while (j < s.size() && (std::isalnum((unsigned char)s[j]) || s[j] == '-' || s[j] == ':')) ++j;
    const std::string name = s.substr(i + 1, j - i - 1);
    if (name.empty()) return "empty tag name at " + std::to_string(i);
    // Attributes: name="value" with no '<' in the value.
    for (;;) {
      while (j < s.size() && std::isspace((unsigned char)s[j])) ++j;
      if (j >= s.size()) return "unterminated tag " + name;
      if (s[j] == '>' || s.compare(j, 2, "/>") == 0) break;
      const size_t eq = s.find('=', j);
      if (eq == std::string::npos || s[eq + 1] != '"') return "unquoted attribute in " + name;
      const size_t close = s.find('"', eq + 2);
      if (close == std::string::npos) return "unterminated attribute in " + name;
      const std::string v = s.substr(eq + 2, close - eq - 2);
      if (v.find('<') != std::string::npos) return "'<' in an attribute of " + name;
      for (size_t a = v.find('&'); a != std::string::npos; a = v.find('&', a + 1))
        if (!entity_ok(eq + 2 + a)) return "bad entity in an attribute of " + name;
      j = close + 1;
    }
    if (stack.empty()) {
      ++roots;
      if (name != root) return "root is <" + name + ">";
    }
    if (s[j] == '>') {
      stack.push_back(name);
      i = j + 1;
    } else {
      i = j + 2;
    }
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "expected one root element";
  return "";
}

// ---------------------------------------------------------------------------------------------
// Statistics on known data.

TEST(MomentAccumulatorTest, KurtosisOfKnownData) {
  MomentAccumulator m;
  const float a[] = {1, 2, 3, 4, 5};
  m.Add(a, 1, 5, 5);
  EXPECT_DOUBLE_EQ(m.mean(), 3.0);
  EXPECT_DOUBLE_EQ(m.variance(), 2.0);
  EXPECT_NEAR(m.kurtosis(), 6.8 / 4.0, 1e-12);  // m4 = 34 / 5, m2 = 2
  MomentAccumulator pm;  // +-1 with equal weight: the minimum possible kurtosis, 1
  const float b[] = {-1, 1, 1, -1, 1, -1};
  pm.Add(b, 2, 3, 3);
  EXPECT_NEAR(pm.kurtosis(), 1.0, 1e-12);
  MomentAccumulator c;
  const float k[] = {2, 2, 2};
  c.Add(k, 1, 3, 3);
  EXPECT_TRUE(std::isnan(c.kurtosis()));  // constant: undefined
}

TEST(MomentAccumulatorTest, ChunksMergeExactlyAndGaussianIsThree) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(5.0f, 2.0f);  // an offset mean exercises the merge terms
  std::vector<float> v(20000);
  for (float& x : v) x = g(rng);
  MomentAccumulator whole, parts;
  whole.Add(v.data(), 1, (int64_t)v.size(), 0);
  // Unequal chunks, and a strided block: rows of 7 out of a row stride of 10.
  parts.Add(v.data(), 1, 13, 13);
  parts.Add(v.data() + 13, 1, 987, 987);
  parts.Add(v.data() + 1000, 1, 19000, 19000);
  EXPECT_NEAR(parts.mean(), whole.mean(), 1e-12);
  EXPECT_NEAR(parts.variance(), whole.variance(), 1e-9);
  EXPECT_NEAR(parts.kurtosis(), whole.kurtosis(), 1e-9);
  EXPECT_NEAR(whole.kurtosis(), 3.0, 0.1);  // sampling error ~ sqrt(24 / n) = 0.035
  MomentAccumulator strided;
  strided.Add(v.data(), 100, 7, 10);
  double s = 0, s2 = 0;
  for (int r = 0; r < 100; ++r)
    for (int c = 0; c < 7; ++c) s += v[r * 10 + c];
  const double mean = s / 700;
  for (int r = 0; r < 100; ++r)
    for (int c = 0; c < 7; ++c) s2 += (v[r * 10 + c] - mean) * (v[r * 10 + c] - mean);
  EXPECT_NEAR(strided.mean(), mean, 1e-12);
  EXPECT_NEAR(strided.variance(), s2 / 700, 1e-9);
}

// The kept tail gives exactly torch.quantile (TorchQuantile, itself checked against torch).
TEST(QuantileTest, TopKTailEqualsTorchQuantile) {
  std::mt19937 rng(11);
  std::lognormal_distribution<float> d(0.0f, 1.5f);
  for (int64_t n : {1, 2, 3, 10, 99, 100, 101, 1000, 4097, 54321}) {
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    TopK top(TopNeeded(n, 0.99));
    for (float x : v) top.Add(x);
    const std::vector<float>& t = top.Sorted();
    EXPECT_TRUE(std::is_sorted(t.rbegin(), t.rend()));
    for (double alpha : {0.99, 0.999, 0.9999, 0.99999, 1.0}) {
      std::vector<float> copy = v;
      EXPECT_EQ(QuantileFromTop(t, n, alpha), TorchQuantile(&copy, alpha))
          << "n " << n << " alpha " << alpha;
    }
  }
  // Ties and an increasing stream (the worst case for the buffer).
  TopK top(TopNeeded(1000, 0.99));
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back((float)(i / 10));
  for (float x : v) top.Add(x);
  std::vector<float> copy = v;
  EXPECT_EQ(QuantileFromTop(top.Sorted(), 1000, 0.995), TorchQuantile(&copy, 0.995));
  TopK none(0);  // keeps nothing, and NaN never enters
  none.Add(1.0f);
  EXPECT_TRUE(none.Sorted().empty());
  TopK two(2);
  for (float x : {1.0f, NAN, 3.0f, 2.0f}) two.Add(x);
  EXPECT_THAT(two.Sorted(), ::testing::ElementsAre(3.0f, 2.0f));
}

TEST(QuantileTest, NeededTailAndHugeCounts) {
  EXPECT_EQ(TopNeeded(1, 0.99), 1);
  EXPECT_EQ(TopNeeded(100, 0.99), 100 - 98);  // rank 98.01: values 98 and 99 (0-based)
  EXPECT_EQ(TopNeeded(1000000, 0.99), 1000000 - 989999);
  // Beyond 2^24 values (torch refuses; here float64 ranks): values 0..n-1 as offsets from the
  // smallest value kept, so they stay exact in float32.
  const int64_t n = (int64_t{1} << 26) + 3;
  const int64_t k = TopNeeded(n, 0.9999);
  std::vector<float> top(k);
  for (int64_t i = 0; i < k; ++i) top[i] = (float)(k - 1 - i);  // ascending index n-k+j -> j
  const double rank = (double)(float)0.9999 * (double)(n - 1);
  EXPECT_NEAR(QuantileFromTop(top, n, 0.9999), rank - (double)(n - k), 1e-3);
}

TEST(FloatHistogramTest, RebinsCountsIntoTheRightBins) {
  FloatHistogram h;
  for (float v : {0.3f, 0.3f, -0.7f, 0.0f, 1e-20f, 5.0f, -0.2f}) h.Add(v);
  h.Add(NAN);  // ignored
  EXPECT_EQ(h.total(), 7);
  const std::vector<double> b = h.Rebin(-1, 1, 4);  // [-1,-.5) [-.5,0) [0,.5) [.5,1]
  EXPECT_THAT(b, ::testing::ElementsAre(1, 1, 4, 1));  // 5 clamps into the last bin
  // Resolution: values 0.4% apart in separate bins of a fine rebinning.
  FloatHistogram f;
  f.Add(1.0f);
  f.Add(1.01f);
  const std::vector<double> fb = f.Rebin(0.99, 1.02, 30);
  EXPECT_EQ(std::count(fb.begin(), fb.end(), 1.0), 2);
}

// ---------------------------------------------------------------------------------------------
// SVG plotter.

TEST(SvgPlotTest, TicksAndLabels) {
  EXPECT_THAT(svg::Ticks(0, 1, false, false), ::testing::ElementsAre(0, 0.2, 0.4, 0.6, 0.8, 1));
  EXPECT_THAT(svg::Ticks(-0.5, 3.5, false, true), ::testing::ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(svg::Ticks(1e-3, 1e3, true, false),
              ::testing::ElementsAre(1e-3, 1e-2, 1e-1, 1, 10, 100, 1000));
  EXPECT_THAT(svg::Ticks(1, 50, true, false), ::testing::ElementsAre(1, 2, 5, 10, 20, 50));
  EXPECT_THAT(svg::Ticks(1e-10, 1e10, true, false),
              ::testing::ElementsAre(1e-10, 1e-5, 1, 1e5, 1e10));
  EXPECT_THAT(svg::Ticks(0.03, 3e9, true, false),
              ::testing::ElementsAre(1, 100, 1e4, 1e6, 1e8));
  EXPECT_EQ(svg::TickLabel(0), "0");
  EXPECT_EQ(svg::TickLabel(0.25), "0.25");
  EXPECT_EQ(svg::TickLabel(1e6), "1e6");
  EXPECT_EQ(svg::TickLabel(2.5e-5), "2.5e-5");
  EXPECT_EQ(svg::Escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

TEST(SvgPlotTest, DocumentIsWellFormedAndHasItsParts) {
  svg::Figure f;
  f.title = "ranges & <tails>";
  f.columns = 2;
  svg::Panel a;
  a.title = "lines";
  a.x = {.title = "layer", .integer_ticks = true};
  a.y = {.title = "|x| (log)", .log = true};
  svg::Series l1, l2;
  l1.label = "max |x|";
  l1.x = {0, 1, 2};
  l1.y = {3, 40, 500};
  l2.label = "p99 <dashed>";
  l2.x = {0, 1, 2};
  l2.y = {1, 0, 2};  // 0 breaks a log line
  l2.dashed = l2.markers = true;
  a.series = {l1, l2};
  svg::Panel b;
  b.title = "histogram";
  b.x.title = "value";
  b.y = {.title = "count", .log = true, .min = 0.5};
  svg::Series h;
  h.label = "counts";
  h.x = {-1, 0, 1, 2};
  h.y = {10, 0, 1000};
  h.kind = svg::SeriesKind::kStep;
  h.color = "#123456";
  h.fill_opacity = 0.3;
  b.series = {h};
  b.markers.push_back({.x = 0.5, .label = "clip = 0.5"});
  b.markers.push_back({.x = 7, .label = "outside: skipped"});
  f.panels = {a, b};
  const std::string s = svg::RenderSvg(f);
  EXPECT_EQ(XmlProblem(s, "svg"), "") << s;
  EXPECT_THAT(s, HasSubstr("ranges &amp; &lt;tails&gt;"));
  EXPECT_THAT(s, HasSubstr(">layer</text>"));                   // axis titles
  EXPECT_THAT(s, HasSubstr(">|x| (log)</text>"));
  EXPECT_THAT(s, HasSubstr(">max |x|</text>"));                 // legend
  EXPECT_THAT(s, HasSubstr(">p99 &lt;dashed&gt;</text>"));
  EXPECT_THAT(s, HasSubstr(">clip = 0.5</text>"));
  EXPECT_THAT(s, HasSubstr(">100</text>"));                     // a log tick label
  EXPECT_THAT(s, HasSubstr("stroke-dasharray"));
  EXPECT_THAT(s, HasSubstr("fill=\"#123456\" fill-opacity=\"0.30\""));
  EXPECT_EQ(s.find("nan"), std::string::npos);
  EXPECT_EQ(s.find("inf"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The inspector on a tiny synthetic model.

// Everything every Observe call saw, for a brute-force recomputation.
class RecordingObserver : public ActivationObserver {
 public:
  explicit RecordingObserver(int n_layer) : v_(n_layer * kNumInspectPoints) {}
  void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
               int64_t ld) override {
    const mamba1::Tap p = static_cast<mamba1::Tap>(tap);
    if (p == mamba1::Tap::kOutProjOut) return;
    std::vector<float> block(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(block.data() + r * cols, x + r * ld, cols * sizeof(float));
    Put(layer, (int)p, block);
    if (p == mamba1::Tap::kOutProjIn && HadamardTransformRows(kernels::DefaultKernels(), block.data(), rows, cols, cols).ok())
      Put(layer, (int)InspectPoint::kOutProjInHad, block);
  }
  const std::vector<float>& values(int layer, InspectPoint p) const {
    return v_[layer * kNumInspectPoints + (int)p];
  }

 private:
  void Put(int layer, int p, const std::vector<float>& b) {
    auto& d = v_[layer * kNumInspectPoints + p];
    d.insert(d.end(), b.begin(), b.end());
  }
  std::vector<std::vector<float>> v_;
};

class InspectTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(MakeModel(64, *dir_ / "fp").ok());    // d_inner 128: Hadamard-able
    ASSERT_TRUE(MakeModel(36, *dir_ / "odd").ok());   // d_inner 72: not
    model_ = std::move(Model::Load(*dir_ / "fp")).value().release();
    auto s = LoadCalibrationSamples({CalibFile()}, *model_->tokenizer(), 5, 48);
    ASSERT_TRUE(s.ok()) << s.status().message();
    samples_ = new std::vector<std::vector<int32_t>>(std::move(s).value());
  }
  static void TearDownTestSuite() {
    delete samples_;
    delete model_;
    delete dir_;
  }
  static Status MakeModel(int64_t d_model, const std::string& dir) {
    MambaConfig c;
    c.n_layer = 3;
    c.d_model = d_model;
    c.vocab_size = 50280;
    QM_RETURN_IF_ERROR(WriteSynthCheckpoint(c, DType::kF32, 7, dir));
    std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                               dir + "/tokenizer.json");
    return Status::Ok();
  }
  static std::string CalibFile() { return testing::SharedData("calibration/pg1342-0.txt"); }
  static InspectOptions Options() {
    InspectOptions o;
    o.threads = 1;
    return o;
  }
  static TempDir* dir_;
  static Model* model_;
  static std::vector<std::vector<int32_t>>* samples_;
};
TempDir* InspectTest::dir_ = nullptr;
Model* InspectTest::model_ = nullptr;
std::vector<std::vector<int32_t>>* InspectTest::samples_ = nullptr;

TEST_F(InspectTest, StatisticsEqualABruteForceRecomputation) {
  auto r = InspectActivations(*model_, *samples_, Options());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->subsample_stride, 1);
  EXPECT_TRUE(r->hadamard);
  EXPECT_EQ(r->tokens, 5 * 48);
  RecordingObserver rec((int)model_->config().n_layer);
  Runtime e(*model_, 1, kernels::DefaultKernels(), 48, 1);
  e.set_observer(&rec);
  for (const auto& s : *samples_) {
    SequenceState st = model_->NewState();
    e.Prefill(&st, s, nullptr, false);
  }
  for (int l = 0; l < model_->config().n_layer; ++l) {
    for (int p = 0; p < kNumInspectPoints; ++p) {
      const InspectPoint ip = (InspectPoint)p;
      const std::vector<float>& v = rec.values(l, ip);
      const PointStats& s = r->layers[l][p];
      SCOPED_TRACE(StrFormat("layer %d %s", l, InspectPointName(ip)));
      ASSERT_EQ(s.count, (int64_t)v.size());
      EXPECT_EQ(s.pct_count, s.count);
      std::vector<float> a(v.size());
      for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
      EXPECT_EQ((float)s.absmax, *std::max_element(a.begin(), a.end()));
      for (size_t i = 0; i < kInspectPercentiles.size(); ++i) {
        std::vector<float> copy = a;
        EXPECT_EQ((float)s.pct[i], TorchQuantile(&copy, kInspectPercentiles[i])) << i;
      }
      MomentAccumulator m;
      m.Add(v.data(), 1, (int64_t)v.size(), 0);
      EXPECT_NEAR(s.kurtosis, m.kurtosis(), 1e-9 * m.kurtosis());
      EXPECT_LE(s.pct[0], s.pct[1]);
      EXPECT_LE(s.pct[3], s.absmax);
      EXPECT_EQ(s.scale_minmax, ScaleFromAbsMax((float)s.absmax));
    }
  }
  // The plotted layers are the argmax of their criteria.
  for (int l = 0; l < model_->config().n_layer; ++l) {
    const auto& x = r->layers[l][(int)InspectPoint::kXProjIn];
    const auto& best = r->layers[r->ssm_layer][(int)InspectPoint::kXProjIn];
    EXPECT_LE(x.absmax / x.pct[2], best.absmax / best.pct[2]);
    EXPECT_LE(r->layers[l][(int)InspectPoint::kOutProjIn].kurtosis,
              r->layers[r->kurt_layer][(int)InspectPoint::kOutProjIn].kurtosis);
  }
  // Histograms hold every value of their tensor.
  auto total = [](const Histogram& h) {
    double t = 0;
    for (double c : h.counts) t += c;
    return (int64_t)t;
  };
  EXPECT_EQ(total(r->ssm_hist), r->layers[r->ssm_layer][(int)InspectPoint::kXProjIn].count);
  EXPECT_EQ(total(r->had_hist), r->layers[r->kurt_layer][(int)InspectPoint::kOutProjInHad].count);
}

// The scales the report attributes to the recipes are the ones `quantize` writes.
TEST_F(InspectTest, ScalesMatchTheQuantizer) {
  auto r = InspectActivations(*model_, *samples_, Options());
  ASSERT_TRUE(r.ok());
  for (const char* recipe : {"quamba", "minmax"}) {
    QuantizeOptions o;
    o.recipe = recipe;
    o.calib_files = {CalibFile()};
    o.calib_samples = 5;
    o.calib_len = 48;
    o.threads = 1;
    o.progress = false;
    const std::string out = *dir_ / (std::string("q-") + recipe);
    ASSERT_TRUE(QuantizeModel(*model_, o, out).ok());
    auto q = std::move(Model::Load(out)).value();
    const bool quamba = std::string(recipe) == "quamba";
    for (int l = 0; l < model_->config().n_layer; ++l) {
      auto scale = [&](const std::string& name) {
        const TensorView* t =
            q->store().Find("backbone.layers." + std::to_string(l) + ".mixer." + name);
        EXPECT_NE(t, nullptr) << name;
        float v = 0;
        if (t) std::memcpy(&v, t->data, 4);
        return v;
      };
      auto ours = [&](InspectPoint p) {
        const PointStats& s = r->layers[l][(int)p];
        return quamba ? s.scale_quamba : s.scale_minmax;
      };
      SCOPED_TRACE(StrFormat("%s layer %d", recipe, l));
      EXPECT_EQ(scale("in_proj.input_scale"), ours(InspectPoint::kInProjIn));
      EXPECT_EQ(scale("in_proj.output_scale"), ours(InspectPoint::kInProjOut));
      EXPECT_EQ(scale("conv1d.output_scale"), ours(InspectPoint::kXProjIn));
      EXPECT_EQ(scale("x_proj.output_scale"), ours(InspectPoint::kXProjOut));
      EXPECT_EQ(scale("dt_proj.output_scale"), ours(InspectPoint::kDtProjOut));
      EXPECT_EQ(scale("out_proj.input_scale"), ours(InspectPoint::kOutProjIn));
    }
  }
}

TEST_F(InspectTest, SubsamplingUnderAMemoryBudget) {
  InspectOptions o = Options();
  o.max_memory_bytes = 4096;
  auto r = InspectActivations(*model_, *samples_, o);
  ASSERT_TRUE(r.ok());
  auto exact = InspectActivations(*model_, *samples_, Options());
  ASSERT_TRUE(exact.ok());
  const int64_t s = r->subsample_stride;
  EXPECT_GT(s, 1);
  const MambaConfig& c = model_->config();
  for (int64_t w : {c.d_model, 2 * c.d_inner, c.d_inner, c.dt_rank + 2 * c.d_state})
    EXPECT_EQ(std::gcd(s, w), 1) << w;
  for (int l = 0; l < c.n_layer; ++l)
    for (int p = 0; p < kNumInspectPoints; ++p) {
      const PointStats& a = r->layers[l][p];
      const PointStats& b = exact->layers[l][p];
      EXPECT_EQ(a.pct_count, (a.count + s - 1) / s);
      EXPECT_EQ(a.absmax, b.absmax);      // always exact
      EXPECT_EQ(a.kurtosis, b.kurtosis);
      EXPECT_NEAR(a.pct[0], b.pct[0], 0.2 * b.pct[0]);  // p99 of a ~1/s sample
    }
  const nlohmann::json j = nlohmann::json::parse(OutliersJson(*r));
  EXPECT_EQ(j["method"]["subsample_stride"], s);
  EXPECT_THAT(OutliersTable(*r), HasSubstr(StrFormat("every %lld-th value", (long long)s)));
}

TEST_F(InspectTest, JsonHasEveryField) {
  auto r = InspectActivations(*model_, *samples_, Options());
  ASSERT_TRUE(r.ok());
  r->calib_files = {CalibFile()};
  const std::string text = OutliersJson(*r);
  auto again = InspectActivations(*model_, *samples_, Options());
  ASSERT_TRUE(again.ok());
  again->calib_files = r->calib_files;
  EXPECT_EQ(OutliersJson(*again), text);  // deterministic
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["format"], "quamba-outliers/1");
  EXPECT_EQ(j["config"]["n_layer"], 3);
  EXPECT_EQ(j["calibration"]["samples"], 5);
  EXPECT_EQ(j["calibration"]["tokens"], 240);
  EXPECT_EQ(j["calibration"]["files"][0], CalibFile());
  ASSERT_EQ(j["layers"].size(), 3u);
  for (const auto& layer : j["layers"]) {
    ASSERT_EQ(layer["points"].size(), 7u);
    for (int p = 0; p < kNumInspectPoints; ++p) {
      const auto& o = layer["points"][InspectPointName((InspectPoint)p)];
      for (const char* k : {"count", "min", "max", "absmax", "mean", "std", "kurtosis", "p99",
                            "p99.9", "p99.99", "p99.999", "percentile_count", "scale_minmax",
                            "scale_quamba"})
        EXPECT_TRUE(o.contains(k) && o[k].is_number()) << k;
    }
    const auto& x = layer["points"]["x_proj:input"];
    EXPECT_TRUE(x["quamba_percentile_ema"].is_number());
    EXPECT_TRUE(x["clipped_quamba"].is_number());
    // The float scales survive the text round trip exactly.
    EXPECT_EQ(x["scale_quamba"].get<float>(),
              r->layers[layer["layer"].get<int>()][(int)InspectPoint::kXProjIn].scale_quamba);
  }
  for (const char* k : {"ssm_input_layer", "out_proj_kurtosis_layer", "out_proj_kurtosis",
                        "out_proj_kurtosis_hadamard"})
    EXPECT_TRUE(j["summary"][k].is_number()) << k;
  for (const char* k : {"ssm_input", "out_proj_input", "out_proj_input_hadamard"}) {
    const auto& h = j["histograms"][k];
    EXPECT_EQ(h["edges"].size(), h["counts"].size() + 1) << k;
  }
  for (const std::string& s : {RangesSvg(*r), SsmInputSvg(*r), HadamardSvg(*r)})
    EXPECT_EQ(XmlProblem(s, "svg"), "");
}

TEST_F(InspectTest, NoHadamardSizeStillReports) {
  auto m = std::move(Model::Load(*dir_ / "odd")).value();
  auto r = InspectActivations(*m, *samples_, Options());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->hadamard);
  EXPECT_EQ(r->layers[0][(int)InspectPoint::kOutProjInHad].count, 0);
  const nlohmann::json j = nlohmann::json::parse(OutliersJson(*r));
  EXPECT_EQ(j["layers"][0]["points"].size(), 6u);
  EXPECT_TRUE(j["layers"][0]["points"]["out_proj:input"]["scale_quamba"].is_null());
  EXPECT_THAT(OutliersTable(*r), HasSubstr(" - "));
  for (const std::string& s : {RangesSvg(*r), SsmInputSvg(*r), HadamardSvg(*r)})
    EXPECT_EQ(XmlProblem(s, "svg"), "");
}

// ---------------------------------------------------------------------------------------------
// The CLI.

using testing::CliResult;
using testing::RunQuamba;

TEST_F(InspectTest, CliEndToEnd) {
  const std::string out = *dir_ / "report/nested";
  const std::string base = "inspect -m " + (*dir_ / "fp") + " --calib " + CalibFile() +
                           " --calib-samples 4 --calib-len 32 -t 1 -q";
  CliResult r = RunQuamba(base + " -o " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("n_layer 3, d_model 64"));  // the config part is kept
  EXPECT_THAT(r.out, HasSubstr("activation outliers over 4 samples, 128 tokens"));
  EXPECT_THAT(r.out, HasSubstr("max/p99.99"));
  EXPECT_THAT(r.out, HasSubstr("largest out_proj:input kurtosis: layer"));
  EXPECT_THAT(r.err, HasSubstr("outliers.json"));
  for (const char* f : {"outliers.json", "ranges.svg", "ssm_input.svg", "hadamard.svg"})
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
    ++files;
  }
  EXPECT_EQ(files, 4);
  const nlohmann::json j = nlohmann::json::parse(ReadAll(out + "/outliers.json"));
  EXPECT_EQ(j["calibration"]["tokens"], 128);
  EXPECT_EQ(XmlProblem(ReadAll(out + "/ranges.svg"), "svg"), "");
  // Without -o: the table only.
  r = RunQuamba(base);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("max/p99.99"));
  EXPECT_THAT(r.err, HasSubstr("no -o"));
}

TEST_F(InspectTest, CliRefusesBadInput) {
  const std::string m = " -m " + (*dir_ / "fp");
  CliResult r = RunQuamba("inspect" + m + " -o " + (*dir_ / "x"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("expected --calib"));
  r = RunQuamba("inspect" + m + " --calib " + (*dir_ / "missing.txt") + " -q");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("missing.txt"));
  r = RunQuamba("inspect" + m + " --calib " + CalibFile() + " --calib-len 1");
  EXPECT_EQ(r.code, 2);
  // The report's files never land in the model directory (they would replace its own).
  r = RunQuamba("inspect" + m + " --calib " + CalibFile() + " -q -o " + (*dir_ / "fp/report"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("expected an output apart from every input, found it inside the "
                               "input"));
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "fp/report"));
}

// One NaN in a layer's in_proj.weight: the activations are NaN, the percentile tail keeps none
// of them, and inspect aborted on "Bug: src/quant/inspect.cc:280 ... needs the top 63, have 0".
// Non-finite activations are bad input: the tensor behind them is named (item 5).
TEST_F(InspectTest, NonFiniteActivationsNameTheTensor) {
  TempDir d;
  std::filesystem::copy(*dir_ / "fp", d / "m");
  {
    auto st = TensorStore::Open(*dir_ / "fp");
    ASSERT_TRUE(st.ok());
    std::vector<std::vector<uint8_t>> keep;
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, t] : (*st)->tensors()) {
      keep.emplace_back(t.data, t.data + t.nbytes);
      if (name == "backbone.layers.1.mixer.in_proj.weight") {
        const float nan = std::nanf("");
        std::memcpy(keep.back().data() + 4 * 3, &nan, 4);
      }
      tensors.push_back({name, t.dtype, t.shape, keep.back().data(), nullptr});
    }
    ASSERT_TRUE(WriteSafeTensors(d / "m/model.safetensors", tensors, (*st)->metadata()).ok());
  }
  const CliResult r = RunQuamba("inspect -m " + (d / "m") + " --calib " + CalibFile() +
                                " --calib-samples 2 --calib-len 32 -t 1 -q");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("tensor \"backbone.layers.1.mixer.in_proj.weight\": expected "
                               "finite values, found nan at element 3"));
}

// outliers.json of a model folder whose name is not valid UTF-8: U+FFFD, not nlohmann's
// type_error 316 after the whole pass.
TEST_F(InspectTest, NonUtf8ModelPathIsWrittenReplaced) {
  TempDir d;
  std::filesystem::copy(*dir_ / "fp", d / "m\xff");
  const CliResult r = RunQuamba("inspect -m '" + (d / "m\xff") + "' --calib " + CalibFile() +
                                " --calib-samples 2 --calib-len 32 -t 1 -q -o " + (d / "out"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(ReadAll(d / "out/outliers.json"), HasSubstr("m\xEF\xBF\xBD\""));
}

TEST_F(InspectTest, QuantizedModelsAreRefused) {
  QuantizeOptions o;
  o.recipe = "dynamic";
  o.threads = 1;
  o.progress = false;
  ASSERT_TRUE(QuantizeModel(*model_, o, *dir_ / "q-dyn").ok());
  auto q = std::move(Model::Load(*dir_ / "q-dyn")).value();
  auto r = InspectActivations(*q, *samples_, Options());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("expected a float model"));
}

}  // namespace
}  // namespace quamba
