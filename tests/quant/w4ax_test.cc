// quamba2-w4ax (quamba2-spec §2.9) on both reference models: the extreme layouts are the W4A8
// and W4A16 recipes (bit for bit where the pipelines coincide), a mixed layout runs each layer
// in its precision with each layer's tensors those of the matching recipe, --a16-layers keeps
// the layers whose measured sensitivity is highest, and bad layouts are refused with one line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "io/safetensors.h"
#include "model/arch.h"
#include "quant/quamba2.h"
#include "quant/quamba2_test_util.h"
#include "quant/quantizer.h"

namespace quamba {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;

const char* const kRefModels[] = {"models/mamba-ref-d256-l6", "models/mamba2-ref-d256-l6"};

QuantizeOptions Options(const char* recipe) { return TestOptions(recipe, 8, 256); }

std::unique_ptr<Model> Load(const std::string& dir) {
  auto m = Model::Load(dir);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

// A layer config file in the official format: "W4A16" at the layers of a16, else "W4A8".
std::string WriteLayerConfig(const std::string& path, int n_layer, const std::vector<int>& a16) {
  std::ofstream f(path);
  f << "[";
  for (int l = 0; l < n_layer; ++l)
    f << (l ? ", " : "") << (std::count(a16.begin(), a16.end(), l) ? "\"W4A16\"" : "\"W4A8\"");
  f << "]\n";
  return path;
}

std::string TensorBytes(const TensorStore& st, const std::string& name) {
  const TensorView* t = st.Find(name);
  EXPECT_NE(t, nullptr) << name;
  return t ? std::string(reinterpret_cast<const char*>(t->data), t->nbytes) : "";
}

class W4AXTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    src_ = Load(testing::SourcePath(GetParam()));
    ASSERT_NE(src_, nullptr);
    mamba2_ = src_->config().arch == Arch::kMamba2;
    n_layer_ = static_cast<int>(src_->config().n_layer);
  }
  std::string Quantize(QuantizeOptions o, const std::string& out) {
    Status s = QuantizeModel(*src_, o, out);
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  std::unique_ptr<Model> src_;
  bool mamba2_ = false;
  int n_layer_ = 0;
};

// Every layer W4A8 is quamba2-w4a8 and every layer W4A16 is quamba2-w4a16: same working model,
// calibration, GPTQ codes and blocks, so the same logits bit for bit. On Mamba-2 the A16 layers
// of W4AX stay in sort-and-cluster order (one working model serves both precisions), so GPTQ
// sees out_proj's columns permuted: another rounding of the same function, as close to the
// float model as quamba2-w4a16 (KLD within a factor 1.5 of its, measured 0.98x).
TEST_P(W4AXTest, ExtremeLayoutsAreTheW4A8AndW4A16Recipes) {
  TempDir dir;
  const std::vector<int32_t> ids = HeldOutIds(*src_, 160);
  const std::string w4a8 = Quantize(Options("quamba2-w4a8"), dir / "w4a8");
  const std::string w4a16 = Quantize(Options("quamba2-w4a16"), dir / "w4a16");
  QuantizeOptions o = Options("quamba2-w4ax");
  o.a16_layers = 0;
  const std::string all8 = Quantize(o, dir / "all8");
  o.a16_layers = -1;
  std::vector<int> every(n_layer_);
  std::iota(every.begin(), every.end(), 0);
  o.layer_config = WriteLayerConfig(dir / "all16.json", n_layer_, every);
  const std::string all16 = Quantize(o, dir / "all16");

  auto m_all8 = Load(all8), m_all16 = Load(all16), m_w4a8 = Load(w4a8), m_w4a16 = Load(w4a16);
  for (int l = 0; l < n_layer_; ++l) {
    EXPECT_EQ(m_all8->layer_kind(l), m_w4a8->layer_kind(l));
    EXPECT_EQ(m_all16->layer_kind(l), m_w4a16->layer_kind(l));
  }
  EXPECT_EQ(AllLogits(*m_all8, ids), AllLogits(*m_w4a8, ids));
  const std::vector<float> ref = AllLogits(*src_, ids);
  const int64_t V = src_->config().vocab_size;
  if (!mamba2_) {
    EXPECT_EQ(AllLogits(*m_all16, ids), AllLogits(*m_w4a16, ids));
  } else {
    const double kld16 = MeanKld(ref, AllLogits(*m_w4a16, ids), V);
    const double kld_ax = MeanKld(ref, AllLogits(*m_all16, ids), V);
    EXPECT_LT(kld_ax, 1.5 * kld16);
    EXPECT_GT(kld_ax, kld16 / 1.5);
  }
}

// A mixed layout: the A16 layers run the float blocks, the others the int8 blocks; each layer's
// tensors are byte for byte those of the all-A16 or all-A8 model; --simulate agrees with the
// integer kernels bit for bit; the model sits between the two extremes in KL divergence.
TEST_P(W4AXTest, MixedLayoutRunsEachLayerInItsPrecision) {
  TempDir dir;
  const std::vector<int> a16 = {0, 3, 5};
  QuantizeOptions o = Options("quamba2-w4ax");
  o.layer_config = WriteLayerConfig(dir / "mixed.json", n_layer_, a16);
  const std::string mixed = Quantize(o, dir / "mixed");
  o.layer_config.clear();
  o.a16_layers = 0;
  const std::string all8 = Quantize(o, dir / "all8");
  o.a16_layers = n_layer_;
  const std::string all16 = Quantize(o, dir / "all16");

  auto m = Load(mixed);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->quant_config().a16_layers, a16);
  EXPECT_THAT(m->quant_config().layer_selection, HasSubstr("--layer-config"));
  EXPECT_THAT(m->weight_type(), HasSubstr("W4AX g128: 3 of 6 layers A16"));
  const BlockKind float_kind = mamba2_ ? BlockKind::kMamba2Float : BlockKind::kMamba1Float;
  for (int l = 0; l < n_layer_; ++l)
    EXPECT_EQ(m->layer_kind(l) == float_kind, std::count(a16.begin(), a16.end(), l) == 1) << l;

  auto st_mixed = TensorStore::Open(mixed), st8 = TensorStore::Open(all8),
       st16 = TensorStore::Open(all16);
  ASSERT_TRUE(st_mixed.ok() && st8.ok() && st16.ok());
  int compared = 0;
  for (const auto& [name, t] : (*st_mixed)->tensors()) {
    const int l = TensorLayer(name);
    const TensorStore& from = l >= 0 && std::count(a16.begin(), a16.end(), l) ? **st16 : **st8;
    EXPECT_EQ(TensorBytes(**st_mixed, name), TensorBytes(from, name)) << name;
    ++compared;
  }
  EXPECT_GT(compared, 6 * 10);

  const std::vector<int32_t> ids = HeldOutIds(*src_, 128);
  const std::vector<float> real = AllLogits(*m, ids, 64);
  EXPECT_EQ(real, AllLogits(*m, ids, 64, /*simulate=*/true));
  const int64_t V = src_->config().vocab_size;
  const std::vector<float> ref = AllLogits(*src_, ids);
  const double k_mixed = MeanKld(ref, real, V);
  const double k8 = MeanKld(ref, AllLogits(*Load(all8), ids), V);
  const double k16 = MeanKld(ref, AllLogits(*Load(all16), ids), V);
  EXPECT_LT(k_mixed, k8 * 1.02);
  EXPECT_GT(k_mixed, k16 * 0.98);
}

// --a16-layers K measures every layer (KLD from the float model with that layer alone W4A8),
// records the figures, and keeps the K highest A16; the baseline (all A16) is the floor.
TEST_P(W4AXTest, A16LayersAreTheMostSensitive) {
  TempDir dir;
  QuantizeOptions o = Options("quamba2-w4ax");
  o.a16_layers = 2;
  o.sens_samples = 1;
  std::vector<std::string> notes;
  o.on_note = [&](const std::string& n) { notes.push_back(n); };
  auto m = Load(Quantize(o, dir / "k2"));
  ASSERT_NE(m, nullptr);
  const QuantConfig& qc = m->quant_config();
  ASSERT_EQ(qc.layer_sensitivity.size(), static_cast<size_t>(n_layer_));
  EXPECT_EQ(qc.a16_layers, MostSensitiveLayers(qc.layer_sensitivity, 2));
  EXPECT_EQ(qc.a16_layers.size(), 2u);
  for (double s : qc.layer_sensitivity) EXPECT_GT(s, 0);
  EXPECT_THAT(qc.layer_selection, HasSubstr("--a16-layers 2"));
  EXPECT_EQ(qc.calib_samples, 8);  // the held-out window is not calibration
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_THAT(notes[0], HasSubstr("w4ax layer sensitivity"));
  EXPECT_THAT(notes[1], HasSubstr(StrFormat("%d:W4A16", qc.a16_layers[0])));
  // The scratch candidates are gone.
  EXPECT_FALSE(std::filesystem::exists(dir / "k2/sensitivity"));
}

INSTANTIATE_TEST_SUITE_P(RefModels, W4AXTest, ::testing::ValuesIn(kRefModels),
                         [](const auto& info) {
                           return std::string(info.index == 0 ? "Mamba1" : "Mamba2");
                         });

TEST(W4AXUnitTest, MostSensitiveLayersAndTensorLayer) {
  EXPECT_THAT(MostSensitiveLayers({0.1, 0.3, 0.2, 0.3}, 2), ElementsAre(1, 3));
  EXPECT_THAT(MostSensitiveLayers({0.1, 0.3, 0.2, 0.3}, 3), ElementsAre(1, 2, 3));
  EXPECT_THAT(MostSensitiveLayers({0.5, 0.5, 0.5}, 1), ElementsAre(0));  // ties: lower layer
  EXPECT_TRUE(MostSensitiveLayers({0.5, 0.1}, 0).empty());
  EXPECT_EQ(TensorLayer("backbone.layers.12.mixer.in_proj.weight"), 12);
  EXPECT_EQ(TensorLayer("backbone.layers.0.norm.weight"), 0);
  EXPECT_EQ(TensorLayer("backbone.norm_f.weight"), -1);
  EXPECT_EQ(TensorLayer("backbone.layers.x.norm"), -1);
  EXPECT_EQ(TensorLayer("backbone.layers.3"), -1);
  EXPECT_EQ(TensorLayer("lm_head.weight"), -1);
}

TEST(W4AXUnitTest, BadInputIsRefused) {
  TempDir dir;
  auto src = Load(testing::SourcePath(kRefModels[0]));
  ASSERT_NE(src, nullptr);
  QuantizeOptions o = Options("quamba2-w4ax");
  auto fails = [&](const std::string& what) {
    Status s = QuantizeModel(*src, o, dir / "x");
    EXPECT_THAT(s.message(), HasSubstr(what));
    EXPECT_FALSE(std::filesystem::exists(dir / "x"));
  };
  fails("--recipe quamba2-w4ax: expected one of --layer-config FILE or --a16-layers K, found "
        "neither");
  o.a16_layers = 1;
  o.layer_config = "x.json";
  fails("found both");
  o.layer_config.clear();
  o.a16_layers = 7;
  fails("--a16-layers: expected 0..6");
  o.a16_layers = 2;
  o.sens_samples = 100000;
  fails("(the last 100000 held out to measure layer sensitivity for --a16-layers)");
  o.sens_samples = 2;
  o.a16_layers = -1;
  const std::string cfg = dir / "c.json";
  std::ofstream(cfg) << "[\"W4A8\", \"W4A16\"]";
  o.layer_config = cfg;
  fails(cfg + ": expected a JSON list of 6 entries \"W4A8\" or \"W4A16\" (one per layer, "
        "num_hidden_layers = 6), found 2 entries");
  std::ofstream(cfg) << "[\"W4A8\", \"W4A16\", \"W8A8\", \"W4A8\", \"W4A8\", \"W4A8\"]";
  fails(cfg + ": entry 2: expected \"W4A8\" or \"W4A16\", found \"W8A8\"");
  o.layer_config = dir / "missing.json";
  fails("missing.json");
  o.recipe = "quamba2-w4a8";
  o.layer_config = cfg;
  fails("--layer-config: expected recipe quamba2-w4ax");
  o.layer_config.clear();
  o.a16_layers = 2;
  fails("--a16-layers: expected recipe quamba2-w4ax");

  // A file whose a16_layers names a layer the model lacks, or is not increasing.
  o = Options("quamba2-w4ax");
  o.a16_layers = 0;
  ASSERT_TRUE(QuantizeModel(*src, o, dir / "q").ok());
  const std::string qpath = dir / "q/quantization_config.json";
  const std::string good = testing::ReadAll(qpath);
  auto with = [&](const std::string& a16) {
    std::string t = good;
    const size_t at = t.find("\"a16_layers\": []");
    EXPECT_NE(at, std::string::npos);
    t.replace(at, std::string("\"a16_layers\": []").size(), "\"a16_layers\": " + a16);
    std::ofstream(qpath) << t;
    auto m = Model::Load(dir / "q");
    return m.ok() ? std::string("ok") : m.status().message();
  };
  EXPECT_THAT(with("[6]"), HasSubstr("a16_layers: expected layer indices below "
                                     "num_hidden_layers = 6, found 6"));
  EXPECT_THAT(with("[2, 1]"), HasSubstr("a16_layers: expected increasing layer indices >= 0, "
                                        "found 1"));
  EXPECT_THAT(with("\"all\""), HasSubstr("a16_layers: expected an array of layer indices"));
  EXPECT_EQ(with("[]"), "ok");
}

}  // namespace
}  // namespace quamba
