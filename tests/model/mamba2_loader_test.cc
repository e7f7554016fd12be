// Loading Mamba-2 checkpoints as users have them: the HF Mamba2Config dialect and mamba_ssm's
// (ssm_cfg.layer "Mamba2", mixer defaults, vocab padding, backbone.embedding names) give the
// same model; Infinity in time_step_limit; every unsupported setting refused by name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "model/runtime.h"
#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

const std::string kRef = "models/mamba2-ref-d256-l6";

void WriteText(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

// A copy of the reference model in mamba_ssm's layout: its config dialect and its embedding name.
void WriteMambaSsmCopy(const std::string& dir, const std::string& config) {
  auto st = TensorStore::Open(testing::SourcePath(kRef));
  ASSERT_TRUE(st.ok());
  std::vector<TensorToWrite> out;
  for (const auto& [name, t] : (*st)->tensors()) {
    const std::string n =
        name == "backbone.embeddings.weight" ? "backbone.embedding.weight" : name;
    out.push_back({n, t.dtype, t.shape, t.data, nullptr});
  }
  ASSERT_TRUE(WriteSafeTensors(dir + "/model.safetensors", std::move(out), {{"format", "pt"}}).ok());
  WriteText(dir + "/config.json", config);
}

std::vector<float> Logits(const std::string& dir, const std::vector<int32_t>& ids) {
  auto m = Model::Load(dir);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return {};
  Runtime e(**m, 2, kernels::DefaultKernels());
  SequenceState s = (*m)->NewState();
  std::vector<float> out(ids.size() * (*m)->config().vocab_size);
  e.Prefill(&s, ids, out.data(), true);
  return out;
}

const std::vector<int32_t> kIds = {5, 90, 17, 4000, 3, 3, 250, 1024, 77, 31, 64, 2, 9, 400,
                                   12, 13, 14, 15, 16, 17, 18, 19, 20, 21};

// mamba_ssm's config.json of the reference model: mixer keys it does not set take the
// Mamba2.__init__ defaults (d_conv 4, expand 2, ...); vocab 4090 pads to 4096 with multiple 16.
constexpr const char* kSsmConfig = R"({"d_model": 256, "d_intermediate": 0, "n_layer": 6,
  "vocab_size": 4090, "ssm_cfg": {"layer": "Mamba2", "d_state": 64, "headdim": 32,
  "ngroups": 2, "chunk_size": 64}, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true,
  "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 16,
  "tie_embeddings": true})";

TEST(Mamba2LoaderTest, MambaSsmLayoutGivesIdenticalLogits) {
  TempDir d;
  WriteMambaSsmCopy(d.path(), kSsmConfig);
  auto m = Model::Load(d.path());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ((*m)->config().arch, Arch::kMamba2);
  EXPECT_EQ((*m)->config().dialect, "mamba_ssm");
  EXPECT_EQ((*m)->config().vocab_size, 4096);
  EXPECT_EQ((*m)->config().nheads, 16);
  const std::vector<float> a = Logits(testing::SourcePath(kRef), kIds), b = Logits(d.path(), kIds);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

std::string HfConfigWith(const std::string& from, const std::string& to) {
  std::string cfg = testing::ReadAll(testing::SourcePath(kRef + "/config.json"));
  if (from.empty()) return cfg;
  const size_t at = cfg.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) cfg.replace(at, from.size(), to);
  return cfg;
}

std::string LoadError(const std::string& config, bool ssm_layout = false) {
  TempDir d;
  if (ssm_layout) {
    WriteMambaSsmCopy(d.path(), config);
  } else {
    std::filesystem::copy_file(testing::SourcePath(kRef + "/model.safetensors"),
                               d / "model.safetensors");
    WriteText(d / "config.json", config);
  }
  auto m = Model::Load(d.path());
  return m.ok() ? "" : m.status().message();
}

TEST(Mamba2LoaderTest, TimeStepLimitWithInfinity) {
  // Python's json.dumps(float("inf")): a bare Infinity token.
  EXPECT_EQ(LoadError(HfConfigWith("\"chunk_size\"", "\"time_step_limit\": [0.0, Infinity], "
                                                     "\"chunk_size\"")),
            "");
  TempDir d;
  std::filesystem::copy_file(testing::SourcePath(kRef + "/model.safetensors"),
                             d / "model.safetensors");
  WriteText(d / "config.json",
            HfConfigWith("\"chunk_size\"", "\"time_step_limit\": [0.001, 0.1], \"chunk_size\""));
  auto m = Model::Load(d.path());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_DOUBLE_EQ((*m)->config().dt_limit_min, 0.001);
  EXPECT_DOUBLE_EQ((*m)->config().dt_limit_max, 0.1);
  // A limit changes the function: the logits differ from the unlimited model's.
  EXPECT_NE(Logits(d.path(), kIds), Logits(testing::SourcePath(kRef), kIds));
  EXPECT_THAT(LoadError(HfConfigWith("\"chunk_size\"",
                                     "\"time_step_limit\": [0.1, 0.001], \"chunk_size\"")),
              HasSubstr("time_step_limit: expected [lo, hi] with 0 <= lo < hi"));
  EXPECT_THAT(LoadError(HfConfigWith("\"chunk_size\"", "\"time_step_limit\": [0, NaN], "
                                                       "\"chunk_size\"")),
              HasSubstr("time_step_limit: expected"));
}

TEST(Mamba2LoaderTest, UnsupportedSettingsAreRefusedByName) {
  auto ssm = [](const std::string& from, const std::string& to) {
    std::string c = kSsmConfig;
    c.replace(c.find(from), from.size(), to);
    return LoadError(c, true);
  };
  EXPECT_THAT(ssm("\"ngroups\": 2", "\"ngroups\": 2, \"D_has_hdim\": true"),
              HasSubstr("ssm_cfg.D_has_hdim: expected false, found true (not supported)"));
  EXPECT_THAT(ssm("\"ngroups\": 2", "\"ngroups\": 2, \"norm_before_gate\": true"),
              HasSubstr("ssm_cfg.norm_before_gate: expected false"));
  EXPECT_THAT(ssm("\"ngroups\": 2", "\"ngroups\": 2, \"rmsnorm\": false"),
              HasSubstr("ssm_cfg.rmsnorm: expected true"));
  EXPECT_THAT(ssm("\"ngroups\": 2", "\"ngroups\": 2, \"d_ssm\": 256"),
              HasSubstr("ssm_cfg.d_ssm: expected d_inner (512)"));
  EXPECT_THAT(ssm("\"d_intermediate\": 0", "\"d_intermediate\": 1024"),
              HasSubstr("d_intermediate: expected 0 (MLP blocks are not supported), found 1024"));
  EXPECT_THAT(ssm("\"attn_layer_idx\": []", "\"attn_layer_idx\": [3]"),
              HasSubstr("attn_layer_idx: expected [] (attention layers are not supported)"));
  EXPECT_THAT(ssm("\"layer\": \"Mamba2\"", "\"layer\": \"Mamba3\""),
              HasSubstr("ssm_cfg.layer: expected \"Mamba1\" or \"Mamba2\", found \"Mamba3\""));
  EXPECT_THAT(ssm("\"ngroups\": 2", "\"ngroups\": 3"),
              HasSubstr("expected a divisor of the 16 heads, found 3"));
  EXPECT_THAT(LoadError(HfConfigWith("\"num_heads\": 16", "\"num_heads\": 12")),
              HasSubstr("num_heads: expected num_heads * head_dim = d_inner (512), found 12 * 32"));
  EXPECT_THAT(LoadError(HfConfigWith("\"head_dim\": 32", "\"head_dim\": 48")),
              HasSubstr("num_heads: expected head_dim (48) to divide d_inner (512)"));
  EXPECT_THAT(LoadError(HfConfigWith("\"state_size\": 64", "\"state_size\": 32")),
              HasSubstr("in_proj.weight\": shape: expected (1168, 256), found (1296, 256)"));
  EXPECT_THAT(LoadError(HfConfigWith("\"hidden_size\": 256", "\"hidden_size\": null")),
              HasSubstr("hidden_size"));
}

// Mamba-2 quantizes with quamba and the quamba2 recipes; the other W8A8 baselines (minmax,
// smoothquant, dynamic) are refused by name, in one line, before any calibration.
TEST(Mamba2LoaderTest, QuantizeRefusesOtherRecipesOnMamba2ByName) {
  TempDir d;
  const testing::CliResult r = testing::RunQuamba(
      "quantize -m " + testing::SourcePath(kRef) + " -o " + (d / "q") + " --recipe minmax --calib " +
      testing::SharedData("calibration/pg1342-0.txt"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("model_type: expected a Mamba-1 model for recipe minmax, found "
                               "mamba2"));
  EXPECT_EQ(testing::Lines(r.err), 1) << r.err;
}

}  // namespace
}  // namespace quamba
