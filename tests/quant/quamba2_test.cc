// Quamba2 (quant/quamba2.h): W4A16 on the embedded Mamba-1 and Mamba-2 reference models, W8A8
// and W4A8 on the Mamba-1 one. W4A16: the
// residual rotation keeps the logits, the written model loads as 4-bit codes + group scales and
// computes what its dequantized weights compute, GPTQ stays within the issue's perplexity bar,
// outputs are deterministic, and bad input is refused with one line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/runtime.h"
#include "model/synth.h"
#include "quant/quamba2.h"
#include "quant/quantizer.h"
#include "test_util.h"
#include "quant/quamba2_test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

const char* const kRefModels[] = {"models/mamba-ref-d256-l6", "models/mamba2-ref-d256-l6"};

QuantizeOptions W4Options(int64_t samples, int64_t len) {
  return TestOptions("quamba2-w4a16", samples, len);
}

// A float model over the dequantized 4-bit matrices of a loaded W4A16 model (everything else
// shared with it): w = scale * (code - 8), computed in float32.
std::unique_ptr<Model> DequantizedCopy(const Model& q) {
  auto w = std::make_unique<ModelWeights>();
  const ModelWeights& qw = q.weights();
  w->embedding = qw.embedding;
  w->lm_head = qw.lm_head;
  w->norm_f = qw.norm_f;
  w->layers = qw.layers;
  auto deq = [&](MatrixRef* m) {
    if (!m->s4()) return;
    const uint8_t* p = static_cast<const uint8_t*>(m->data);
    std::vector<float> f(m->rows * m->cols);
    for (int64_t n = 0; n < m->rows; ++n)
      for (int64_t k = 0; k < m->cols; ++k) {
        const uint8_t b = p[n * (m->cols / 2) + k / 2];
        const int code = k % 2 == 0 ? (b & 15) : (b >> 4);
        f[n * m->cols + k] =
            m->scales[n * (m->cols / m->group) + k / m->group] * static_cast<float>(code - 8);
      }
    w->owned_floats.push_back(std::move(f));
    MatrixRef d;
    d.data = w->owned_floats.back().data();
    d.rows = m->rows;
    d.cols = m->cols;
    *m = d;
  };
  deq(&w->embedding);
  deq(&w->lm_head);
  for (LayerWeights& L : w->layers) {
    deq(&L.in_proj);
    deq(&L.out_proj);
    deq(&L.x_proj);
  }
  return Model::FromWeights(q.config(), std::move(w));
}

class Quamba2RefTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<Model> Source() {
    auto m = Model::Load(testing::SourcePath(GetParam()));
    EXPECT_TRUE(m.ok()) << m.status().message();
    return std::move(m).value();
  }
};

// The rotated model computes the same function: logits agree to float rounding. Without the
// rotation the working copy of an F32 model is the model itself, bit for bit.
// Bound: the rotation reorders every sum of the residual stream (d_model terms, H entries
// ±1/sqrt(n)) and adds one float32 rounding per transform to each weight; through 6 layers that
// stays below 1e-4 of the largest logit (~14 here; measured 1.5-1.9e-5 absolute, ~1e-6 of
// it); dropping the folded norm
// weights, or rotating one side of out_proj only, changes logits by O(1).
TEST_P(Quamba2RefTest, ResidualRotationKeepsTheLogits) {
  std::unique_ptr<Model> src = Source();
  const std::vector<int32_t> ids = HeldOutIds(*src, 96);
  const std::vector<float> ref = AllLogits(*src, ids);
  auto plain = MakeWorkingModel(*src, kernels::DefaultKernels(), false);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(AllLogits(*plain->model, ids), ref);
  auto rot = MakeWorkingModel(*src, kernels::DefaultKernels(), true);
  ASSERT_TRUE(rot.ok()) << rot.status().message();
  const std::vector<float> got = AllLogits(*rot->model, ids);
  EXPECT_LE(MaxAbsDiff(got, ref), 1e-4 * MaxAbs(ref)) << MaxAbs(ref);
  // The rotation did change the weights (the test is not comparing a model with itself).
  EXPECT_NE(rot->layers[0].in_proj[0], plain->layers[0].in_proj[0]);
}

// Round-to-nearest (no calibration) and GPTQ outputs load as format version 3 with 4-bit codes
// and group scales, and compute what their dequantized weights compute; prefill and decode
// agree; the GPTQ model is within the issue's bar (Δppl <= +2%) on held-out text.
TEST_P(Quamba2RefTest, W4A16LoadsRunsAndStaysClose) {
  std::unique_ptr<Model> src = Source();
  const MambaConfig& c = src->config();
  TempDir dir;
  const std::vector<int32_t> ids = HeldOutIds(*src, 512);
  const int64_t V = c.vocab_size;
  const double ppl_fp = Perplexity(AllLogits(*src, ids), ids, V);
  struct Variant {
    bool rtn;
    const char* head;
  };
  for (const Variant v : {Variant{true, "f16"}, Variant{false, "f16"}, Variant{false, "w4"}}) {
    const bool rtn = v.rtn, w4_head = std::string(v.head) == "w4";
    const std::string name = std::string(rtn ? "rtn" : "gptq") + "-" + v.head;
    SCOPED_TRACE(name);
    QuantizeOptions o = W4Options(16, 512);
    o.rtn = rtn;
    o.lm_head = v.head;
    const std::string out = dir / name;
    Status st = QuantizeModel(*src, o, out);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_THAT(testing::ReadAll(out + "/quantization_config.json"),
                HasSubstr("\"format_version\": 3"));
    auto q = std::move(Model::Load(out)).value();
    const TensorView* in = q->store().Find("backbone.layers.0.mixer.in_proj.weight");
    ASSERT_NE(in, nullptr);
    EXPECT_EQ(in->dtype, DType::kU8);
    const int64_t n_in = c.arch == Arch::kMamba2 ? c.d_in_proj() : 2 * c.d_inner;
    EXPECT_EQ(in->shape, (std::vector<int64_t>{n_in, c.d_model / 2}));
    const TensorView* sc = q->store().Find("backbone.layers.0.mixer.out_proj.weight_scale");
    ASSERT_NE(sc, nullptr);
    EXPECT_EQ(sc->shape, (std::vector<int64_t>{c.d_model, c.d_inner / 128}));
    EXPECT_TRUE(q->weights().layers[0].in_proj.s4());
    EXPECT_EQ(q->weights().layers[0].x_proj.s4(), c.arch == Arch::kMamba1);
    EXPECT_TRUE(q->weights().layers[0].out_proj_hadamard);
    EXPECT_EQ(q->weights().embedding.s4(), w4_head);
    EXPECT_EQ(q->weights().lm_head.s4(), w4_head);
    if (w4_head) {  // a decode step streams 4-bit lm_head codes, not the table
      EXPECT_EQ(q->store().Find("lm_head.weight")->shape,
                (std::vector<int64_t>{c.vocab_size, c.d_model / 2}));
      EXPECT_LT(q->DecodeWeightBytes(), q->file_bytes());
    }
    // 4-bit kernels vs a float GEMM over the same dequantized values: the W4A16 contract
    // ((G + K/G + 8) u Σ|terms| per output, docs/numerics.md §3.9) against float32's
    // K u Σ|terms|, through 6 layers: within 1e-4 of the largest logit (measured 1.0-1.4e-5 absolute,
    // ~1e-6 of it).
    const std::vector<int32_t> head(ids.begin(), ids.begin() + 96);
    const std::vector<float> lq = AllLogits(*q, head);
    const std::vector<float> ld = AllLogits(*DequantizedCopy(*q), head);
    EXPECT_LE(MaxAbsDiff(lq, ld), 1e-4 * MaxAbs(ld));
    // Prefill in one chunk vs decode steps (chunk 1): the same function.
    const std::vector<float> step = AllLogits(*q, head, 1);
    EXPECT_LE(MaxAbsDiff(lq, step), 1e-4 * MaxAbs(lq));
    const double ppl = Perplexity(AllLogits(*q, ids), ids, V);
    // The issue's bar (W4A16 <= +2%) with 16-bit head; a 4-bit head and table cost more.
    if (!rtn) {
      EXPECT_LE(ppl, (w4_head ? 1.04 : 1.02) * ppl_fp) << "fp " << ppl_fp;
    }
    EXPECT_GT(ppl, ppl_fp * 1.0001) << "4-bit weights cannot be free";
    std::printf("%s %s: ppl fp32 %.4f, w4a16 %.4f (%+.2f%%)\n", GetParam(), name.c_str(),
                ppl_fp, ppl, 100 * (ppl / ppl_fp - 1));
  }
}

INSTANTIATE_TEST_SUITE_P(RefModels, Quamba2RefTest, ::testing::ValuesIn(kRefModels),
                         [](const auto& info) {
                           return std::string(info.index == 0 ? "Mamba1" : "Mamba2");
                         });

TEST(Quamba2Test, QuantizingTwiceGivesIdenticalBytes) {
  auto src = std::move(Model::Load(testing::SourcePath(kRefModels[1]))).value();
  TempDir dir;
  for (const char* d : {"a", "b"}) ASSERT_TRUE(QuantizeModel(*src, W4Options(4, 128), dir / d).ok());
  for (const char* f : {"model.safetensors", "config.json", "quantization_config.json"})
    EXPECT_EQ(testing::ReadAll(dir / ("a/" + std::string(f))),
              testing::ReadAll(dir / ("b/" + std::string(f))))
        << f;
}

TEST(Quamba2Test, PackS4PutsEvenColumnsInTheLowNibble) {
  const std::vector<uint8_t> codes = {1, 2, 15, 0, 7, 8, 9, 14};
  EXPECT_EQ(PackS4(codes, 2, 4), (std::vector<uint8_t>{0x21, 0x0F, 0x87, 0xE9}));
}

TEST(Quamba2Test, BadInputIsRefused) {
  TempDir dir;
  auto src = std::move(Model::Load(testing::SourcePath(kRefModels[0]))).value();
  // --lm-head int8 has no meaning with float activations.
  QuantizeOptions o = W4Options(2, 64);
  o.lm_head = "int8";
  Status s = QuantizeModel(*src, o, dir / "x");
  EXPECT_THAT(s.message(), HasSubstr("--lm-head: expected keep, f16, bf16 or w4 (float "
                                     "activations: no int8 lm_head), found \"int8\""));
  // w4 belongs to the 4-bit recipes.
  o = W4Options(2, 64);
  o.recipe = "quamba";
  o.lm_head = "w4";
  EXPECT_THAT(QuantizeModel(*src, o, dir / "x").message(),
              HasSubstr("--lm-head: expected keep, f16, bf16 or int8 (w4: the 4-bit recipes "
                        "quamba2-w4* only), found \"w4\""));
  // --rtn belongs to the 4-bit recipes.
  o = W4Options(2, 64);
  o.recipe = "quamba";
  o.rtn = true;
  EXPECT_THAT(QuantizeModel(*src, o, dir / "x").message(),
              HasSubstr("--rtn: expected a 4-bit recipe"));
  // K must be whole groups of 128: a d_model 64 model is refused naming the key.
  MambaConfig c;
  c.n_layer = 1;
  c.d_model = 64;
  c.vocab_size = 4096;
  ASSERT_TRUE(WriteSynthCheckpoint(c, DType::kF32, 3, dir / "small").ok());
  std::filesystem::copy_file(testing::SourcePath(std::string(kRefModels[0]) + "/tokenizer.json"),
                             dir / "small/tokenizer.json");
  auto small = std::move(Model::Load(dir / "small")).value();
  EXPECT_THAT(QuantizeModel(*small, W4Options(2, 64), dir / "y").message(),
              HasSubstr("config.json: hidden_size: expected a multiple of 128 for 4-bit "
                        "weights (one scale per 128 columns), found 64"));
  EXPECT_FALSE(std::filesystem::exists(dir / "y"));
  // A version-2 file cannot hold 4-bit weights.
  auto v2 = QuantConfig::FromJson(
      R"({"format": "quamba.cpp", "format_version": 2, "recipe": "quamba2-w4a16"})", "q.json");
  ASSERT_FALSE(v2.ok());
  EXPECT_EQ(v2.status().message(),
            "q.json: format_version: expected 3 for recipe quamba2-w4a16, found 2");
  // A non-positive group scale is a corrupt file.
  o = W4Options(2, 64);
  o.rtn = true;
  ASSERT_TRUE(QuantizeModel(*src, o, dir / "q").ok());
  CorruptFirstFloat(dir / "q/model.safetensors", "backbone.layers.0.mixer.in_proj.weight_scale");
  auto bad = Model::Load(dir / "q");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("tensor \"backbone.layers.0.mixer.in_proj.weight_scale\": expected "
                        "positive finite group scales, found -1 at element 0"));
}

// Quamba2 W8A8 and W4A8 on the Mamba-1 reference model (spec §3): format-3 files with the
// residual rotation folded (block norm weights and norm_f ones, lm_head untied), W4A8's in_proj,
// out_proj and x_proj as 4-bit codes + group scales beside an int8 dt_proj, bound to the static
// int8 block with an int8 SSM state; the issue's bars on held-out text (W8A8 <= +1%,
// W4A8 <= +3%); neither is free, and 4-bit weights cost more than 8-bit (KL divergence).
TEST(Quamba2Test, A8RecipesOnMamba1LoadRunAndStayClose) {
  auto src = std::move(Model::Load(testing::SourcePath(kRefModels[0]))).value();
  const MambaConfig& c = src->config();
  TempDir dir;
  const std::vector<int32_t> ids = HeldOutIds(*src, 512);
  const int64_t V = c.vocab_size;
  const std::vector<float> logits_fp = AllLogits(*src, ids);
  const double ppl_fp = Perplexity(logits_fp, ids, V);
  double kld_w8 = 0;
  for (const char* recipe : {"quamba2-w8a8", "quamba2-w4a8"}) {
    SCOPED_TRACE(recipe);
    const bool w4 = std::string(recipe) == "quamba2-w4a8";
    QuantizeOptions o = W4Options(16, 512);
    o.recipe = recipe;
    const std::string out = dir / recipe;
    Status st = QuantizeModel(*src, o, out);
    ASSERT_TRUE(st.ok()) << st.message();
    const std::string qcfg = testing::ReadAll(out + "/quantization_config.json");
    EXPECT_THAT(qcfg, HasSubstr("\"format_version\": 3"));
    EXPECT_THAT(qcfg, HasSubstr("\"percentile_alpha\": 0.99999"));  // d_model 256 <= 768
    auto q = std::move(Model::Load(out)).value();
    const std::string m = "backbone.layers.0.mixer.";
    const DType w_dtype = w4 ? DType::kU8 : DType::kI8;
    EXPECT_EQ(q->store().Find(m + "in_proj.weight")->dtype, w_dtype);
    EXPECT_EQ(q->store().Find(m + "x_proj.weight")->dtype, w_dtype);
    EXPECT_EQ(q->store().Find(m + "out_proj.weight")->dtype, w_dtype);
    EXPECT_EQ(q->store().Find(m + "dt_proj.weight")->dtype, DType::kI8);
    EXPECT_EQ(q->store().Find(m + "in_proj.weight_scale")->shape,
              w4 ? (std::vector<int64_t>{2 * c.d_inner, c.d_model / 128})
                 : std::vector<int64_t>{});
    ASSERT_NE(q->store().Find("lm_head.weight"), nullptr);
    const QLayerWeights& L = q->weights().qlayers[0];
    EXPECT_EQ(L.in_proj.s4(), w4);
    EXPECT_EQ(L.x_proj.s4(), w4);
    EXPECT_EQ(L.out_proj.s4(), w4);
    EXPECT_FALSE(L.dt_proj.s4());
    for (int64_t i = 0; i < c.d_model; ++i) {
      ASSERT_EQ(L.norm[i], 1.0f) << i;  // folded into in_proj
      ASSERT_EQ(q->weights().norm_f[i], 1.0f) << i;  // folded into lm_head
    }
    EXPECT_THAT(q->weight_type(), HasSubstr(w4 ? "S4 (W4A8 g128" : "I8 (W8A8 static"));
    // The recipe's int8 SSM state (spec §3 item 3): requantised after every call, so prefill
    // and decode steps differ by design (tests/quant/ssm_state_test.cc; prefill == decode steps
    // in chunks of one: Int8EngineTest).
    EXPECT_GT(L.s_ssm_state, 0.0f);
    EXPECT_EQ(q->NewState().layout()->spec(0, 1).dtype, DType::kI8);
    const std::vector<float> logits = AllLogits(*q, ids);
    const double ppl = Perplexity(logits, ids, V);
    EXPECT_LE(ppl, (w4 ? 1.03 : 1.01) * ppl_fp) << "fp " << ppl_fp;
    // Quantization is not free, and 4-bit weights cost more than 8-bit: mean KL divergence
    // from the FP32 logits (perplexity alone can move either way by noise on 512 tokens).
    const double kld = MeanKld(logits_fp, logits, V);
    EXPECT_GT(kld, 1e-4);
    if (w4) {
      EXPECT_GT(kld, kld_w8);
    } else {
      kld_w8 = kld;
    }
    std::printf("%s: ppl fp32 %.4f, %s %.4f (%+.2f%%), KLD %.5f\n", kRefModels[0], ppl_fp,
                recipe, ppl, 100 * (ppl / ppl_fp - 1), kld);
  }
}

// Every head precision and ablation combination writes a model that loads and runs: the
// unrotated (--no-hadamard) model keeps a tied 16-bit head but writes an int8 one; the model
// says what it is.
TEST(Quamba2Test, A8AblationsAndHeadsLoadAndRun) {
  TempDir dir;
  auto src = std::move(Model::Load(testing::SourcePath(kRefModels[0]))).value();
  struct Case {
    const char* recipe;
    bool no_hadamard, rtn;
    const char* head;
    const char* type;  // expected in weight_type()
  };
  for (const Case& k : {Case{"quamba2-w8a8", true, false, "int8", "no Hadamard, lm_head I8"},
                        Case{"quamba2-w4a8", true, true, "int8", "no Hadamard, RTN, lm_head I8"},
                        Case{"quamba2-w4a8", true, false, "f16", "no Hadamard, lm_head F16"},
                        Case{"quamba2-w4a8", false, false, "keep", "static, lm_head F32"},
                        Case{"quamba2-w4a8", false, false, "w4", "static, lm_head S4"},
                        Case{"quamba2-w4a8", true, true, "w4", "no Hadamard, RTN, lm_head S4"}}) {
    const std::string name = StrFormat("%s-%d%d-%s", k.recipe, k.no_hadamard, k.rtn, k.head);
    SCOPED_TRACE(name);
    QuantizeOptions o = W4Options(2, 128);
    o.recipe = k.recipe;
    o.no_hadamard = k.no_hadamard;
    o.rtn = k.rtn;
    o.lm_head = k.head;
    Status st = QuantizeModel(*src, o, dir / name);
    ASSERT_TRUE(st.ok()) << st.message();
    auto q = Model::Load(dir / name);
    ASSERT_TRUE(q.ok()) << q.status().message();
    EXPECT_THAT((*q)->weight_type(), HasSubstr(k.type));
    const std::string head = k.head;
    EXPECT_EQ((*q)->store().Find("lm_head.weight") != nullptr,
              !k.no_hadamard || head == "int8" || head == "w4");
    const std::vector<float> l = AllLogits(**q, HeldOutIds(**q, 16));
    EXPECT_TRUE(std::all_of(l.begin(), l.end(), [](float v) { return std::isfinite(v); }));
  }
}

// --lm-head w4 with int8 activations (Quamba2's W4A8 lm_head, spec §3.5): lm_head 4-bit by
// GPTQ on the norm_f output with a static int8 input, the table 4-bit by round-to-nearest, on
// both architectures; the integer kernels agree with --simulate bit for bit, the logits stay
// near those of the same recipe with an int8 head (the 4-bit head and table add error: KLD
// from FP32 measured 2.0x (Mamba-1) and 2.2x (Mamba-2) the int8 head's here, bound 4x), and
// GPTQ beats round-to-nearest on the head.
TEST(Quamba2Test, W4HeadWithInt8InputOnBothArchitectures) {
  TempDir dir;
  for (const char* path : kRefModels) {
    SCOPED_TRACE(path);
    auto src = std::move(Model::Load(testing::SourcePath(path))).value();
    const std::vector<int32_t> ids = HeldOutIds(*src, 192);
    const std::vector<float> ref = AllLogits(*src, ids);
    const int64_t V = src->config().vocab_size;
    auto kld = [&](const char* head, const std::string& name, bool check_sim) {
      QuantizeOptions o = W4Options(8, 256);
      o.recipe = "quamba2-w4a8";
      o.lm_head = head;
      Status st = QuantizeModel(*src, o, dir / name);
      EXPECT_TRUE(st.ok()) << st.message();
      auto q = std::move(Model::Load(dir / name)).value();
      const std::vector<float> l = AllLogits(*q, ids, 64);
      if (check_sim) {
        EXPECT_TRUE(q->weights().lm_head_q.s4());
        EXPECT_TRUE(q->weights().embedding.s4());
        EXPECT_GT(q->weights().s_lm_head_in, 0.0f);
        EXPECT_EQ(l, AllLogits(*q, ids, 64, /*simulate=*/true));
      }
      return MeanKld(ref, l, V);
    };
    const std::string b = std::filesystem::path(path).filename();
    const double k_w4 = kld("w4", b + "-w4", true), k_i8 = kld("int8", b + "-i8", false);
    EXPECT_LT(k_w4, 4 * k_i8);
    EXPECT_GT(k_w4, k_i8);
  }
}

TEST(Quamba2Test, A8BadInputIsRefused) {
  TempDir dir;
  auto m2 = std::move(Model::Load(testing::SourcePath(kRefModels[1]))).value();
  QuantizeOptions o = W4Options(2, 64);
  o.recipe = "quamba2-w4a8";
  o.recipe = "smoothquant";  // quamba2-w8a8 / -w4a8 run on Mamba-2 (quamba2_mamba2_test.cc)
  EXPECT_THAT(QuantizeModel(*m2, o, dir / "x").message(),
              HasSubstr("config.json: model_type: expected a Mamba-1 model for recipe "
                        "smoothquant, found mamba2"));
  auto m1 = std::move(Model::Load(testing::SourcePath(kRefModels[0]))).value();
  o.recipe = "quamba2-w8a8";
  o.rtn = true;  // no 4-bit weights to round
  EXPECT_THAT(QuantizeModel(*m1, o, dir / "x").message(),
              HasSubstr("--rtn: expected a 4-bit recipe"));
  o.rtn = false;
  o.lm_head = "w4";  // 8-bit weights: the head is int8 or 16-bit
  EXPECT_THAT(QuantizeModel(*m1, o, dir / "x").message(),
              HasSubstr("--lm-head: expected keep, f16, bf16 or int8 (w4: the 4-bit recipes "
                        "quamba2-w4* only), found \"w4\""));
  o.recipe = "quamba2-w4a8";
  // A non-positive group scale of a W4A8 matrix is a corrupt file.
  o.lm_head = "f16";
  ASSERT_TRUE(QuantizeModel(*m1, o, dir / "q").ok());
  CorruptFirstFloat(dir / "q/model.safetensors", "backbone.layers.1.mixer.out_proj.weight_scale");
  auto bad = Model::Load(dir / "q");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("tensor \"backbone.layers.1.mixer.out_proj.weight_scale\": expected "
                        "positive finite group scales, found -1 at element 0"));
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

}  // namespace
}  // namespace quamba
