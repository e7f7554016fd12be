// `quamba quantize` end to end on tiny synthetic models: every recipe loads and runs, outputs
// are byte-deterministic, the int8 engine agrees with its float simulation and stays close to
// the float model, and bad input is refused with a one-line error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <cstring>
#include <fstream>

#include "model/runtime.h"
#include "model/synth.h"
#include "quant/quamba2_test_util.h"
#include "quant/quantizer.h"
#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

using testing::ReadAll;

class QuantizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MambaConfig c;
    c.n_layer = 2;
    c.d_model = 64;  // d_inner 128 = 2^7: Hadamard-able
    c.vocab_size = 50280;
    ASSERT_TRUE(WriteSynthCheckpoint(c, DType::kF32, 7, *dir_ / "fp").ok());
    std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                               *dir_ / "fp/tokenizer.json");
    model_ = std::move(Model::Load(*dir_ / "fp")).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static QuantizeOptions Options(const std::string& recipe) { return TestOptions(recipe, 6, 64); }
  // Last-position logits of a prompt.
  static std::vector<float> Logits(const Model& m, const std::vector<int32_t>& ids,
                                   bool simulate = false) {
    Runtime e(m, 2, kernels::DefaultKernels(), 256, 4, simulate);
    SequenceState s = m.NewState();
    std::vector<float> out(m.config().vocab_size);
    e.Prefill(&s, ids, out.data(), false);
    return out;
  }
  static TempDir* dir_;
  static Model* model_;
};
TempDir* QuantizerTest::dir_ = nullptr;
Model* QuantizerTest::model_ = nullptr;

double KlDivergence(const std::vector<float>& p_logits, const std::vector<float>& q_logits) {
  auto logsoftmax = [](const std::vector<float>& l) {
    double mx = -1e300;
    for (float v : l) mx = std::max(mx, (double)v);
    double sum = 0;
    for (float v : l) sum += std::exp(v - mx);
    std::vector<double> o(l.size());
    for (size_t i = 0; i < l.size(); ++i) o[i] = l[i] - mx - std::log(sum);
    return o;
  };
  const auto lp = logsoftmax(p_logits), lq = logsoftmax(q_logits);
  double kl = 0;
  for (size_t i = 0; i < lp.size(); ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
  return kl;
}

TEST_F(QuantizerTest, EveryRecipeQuantizesLoadsAndRuns) {
  const std::vector<int32_t> ids = model_->tokenizer()->Encode("It is a truth universally");
  const std::vector<float> ref = Logits(*model_, ids);
  for (const char* recipe : {"quamba", "minmax", "smoothquant", "dynamic"}) {
    const std::string out = *dir_ / (std::string("q-") + recipe);
    Status s = QuantizeModel(*model_, Options(recipe), out);
    ASSERT_TRUE(s.ok()) << recipe << ": " << s.message();
    auto q = Model::Load(out);
    ASSERT_TRUE(q.ok()) << q.status().message();
    EXPECT_TRUE((*q)->quantized());
    EXPECT_EQ((*q)->recipe(), recipe);
    const std::vector<float> got = Logits(**q, ids);
    // Measured on this model: KL 4e-6 (dynamic) .. 4e-5 (minmax); a broken scale or a missed
    // rotation gives KL > 1e-2.
    const double kl = KlDivergence(ref, got);
    EXPECT_LT(kl, 1e-3) << recipe;
    EXPECT_TRUE(std::filesystem::exists(out + "/quantization_config.json"));
    EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  }
}

TEST_F(QuantizerTest, QuantizingTwiceGivesIdenticalBytes) {
  const std::string a = *dir_ / "det-a", b = *dir_ / "det-b";
  ASSERT_TRUE(QuantizeModel(*model_, Options("quamba"), a).ok());
  ASSERT_TRUE(QuantizeModel(*model_, Options("quamba"), b).ok());
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json"})
    EXPECT_EQ(ReadAll(a + "/" + f), ReadAll(b + "/" + f)) << f;
  // quantization_config.json differs only in nothing: same options, same provenance.
  EXPECT_EQ(ReadAll(a + "/quantization_config.json"), ReadAll(b + "/quantization_config.json"));
}

// Real vs simulated, prefill vs decode and batched vs single on every ISA: int8_engine_test.cc.

// The bar on the embedded reference model: real int8 and simulation agree on >= 99.9% of
// greedy (teacher-forced argmax) tokens over 512 tokens of WikiText-2; bit-identical in fact.
TEST(QuantizerRefModelTest, SimulationAgreesOnGreedyTokens) {
  TempDir dir;
  auto fp = Model::Load(testing::SourcePath("models/mamba-ref-d256-l6"));
  ASSERT_TRUE(fp.ok()) << fp.status().message();
  ASSERT_TRUE(QuantizeModel(**fp, TestOptions("quamba", 8, 256), dir / "q").ok());
  auto q = std::move(Model::Load(dir / "q")).value();
  std::ifstream f(testing::SharedData("wikitext-2-raw/wiki.test.raw"));
  std::string text(16384, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<int32_t> ids = q->tokenizer()->Encode(text);
  ASSERT_GE(ids.size(), 512u);
  ids.resize(512);
  const int64_t V = q->config().vocab_size;
  auto argmax_all = [&](bool simulate) {
    Runtime e(*q, 2, kernels::DefaultKernels(), 256, 1, simulate);
    SequenceState s = q->NewState();
    std::vector<float> logits(ids.size() * V);
    e.Prefill(&s, ids, logits.data(), true);
    std::vector<int64_t> top(ids.size());
    for (size_t t = 0; t < ids.size(); ++t)
      top[t] = std::max_element(logits.begin() + t * V, logits.begin() + (t + 1) * V) -
               (logits.begin() + t * V);
    return top;
  };
  const std::vector<int64_t> real = argmax_all(false), sim = argmax_all(true);
  int64_t same = 0;
  for (size_t t = 0; t < real.size(); ++t) same += real[t] == sim[t];
  EXPECT_GE(static_cast<double>(same) / real.size(), 0.999) << same << " of " << real.size();
}

// --lm-head: every precision loads and runs close to the float model; the stored dtypes are
// the ones asked for; prefill equals decode through the int8 head; the bytes a decode step
// reads drop with the head's precision.
TEST_F(QuantizerTest, LmHeadPrecisions) {
  const std::vector<int32_t> ids = model_->tokenizer()->Encode("It is a truth universally");
  const std::vector<float> ref = Logits(*model_, ids);
  const int64_t V = model_->config().vocab_size, dm = model_->config().d_model;
  EXPECT_EQ(model_->DecodeWeightBytes(), model_->file_bytes());  // tied fp32: lm_head = table
  uint64_t bytes_f16 = 0;
  for (const char* head : {"keep", "f16", "bf16", "int8"}) {
    for (const char* recipe : {"quamba", "dynamic"}) {
      SCOPED_TRACE(std::string(head) + " " + recipe);
      QuantizeOptions o = Options(recipe);
      o.lm_head = head;
      const std::string out = *dir_ / (std::string("head-") + head + "-" + recipe);
      Status st = QuantizeModel(*model_, o, out);
      ASSERT_TRUE(st.ok()) << st.message();
      auto q = std::move(Model::Load(out)).value();
      const TensorView* emb = q->store().Find("backbone.embeddings.weight");
      const TensorView* lm = q->store().Find("lm_head.weight");
      const std::string h = head;
      EXPECT_EQ(DTypeName(emb->dtype),
                std::string(h == "keep" ? "F32" : h == "bf16" ? "BF16" : "F16"));
      EXPECT_EQ(lm != nullptr, h == "int8");  // tied model: a float head is the table itself
      EXPECT_THAT(q->weight_type(),
                  HasSubstr(std::string("lm_head ") +
                            (h == "keep" ? "F32" : h == "bf16" ? "BF16" : h == "f16" ? "F16" : "I8")));
      // Measured KL here: 4e-6 .. 6e-5 for every head and recipe; a wrong head scale gives > 1e-2.
      const std::vector<float> got = Logits(*q, ids);
      EXPECT_LT(KlDivergence(ref, got), 1e-3);
      // Bytes a decode step streams: the head's bytes replace the float table's.
      const uint64_t head_bytes = static_cast<uint64_t>(V * dm) *
                                  (h == "keep" ? 4 : h == "int8" ? 1 : 2);
      const uint64_t emb_bytes = static_cast<uint64_t>(V * dm) * DTypeSize(emb->dtype);
      EXPECT_EQ(q->DecodeWeightBytes(), q->file_bytes() - (h == "int8" ? emb_bytes : 0));
      uint64_t span_bytes = 0;
      for (const auto& sp : q->DecodeWeightSpans()) span_bytes += sp.size();
      EXPECT_EQ(span_bytes, q->DecodeWeightBytes());
      ThreadPool pool(2);
      const double gbps = ReadDecodeBytesGBps(*q, pool, kernels::DefaultKernels(), 1);
      EXPECT_TRUE(gbps > 0 && std::isfinite(gbps)) << gbps;
      if (h == "f16" && std::string(recipe) == "quamba") bytes_f16 = q->DecodeWeightBytes();
      if (h == "int8" && std::string(recipe) == "quamba") {
        // f16: table (2 V dm) + layers; int8: layers + head (V dm) + its two fp32 scales.
        // (Prefill == decode steps through the int8 head: int8_engine_test.cc.)
        EXPECT_EQ(bytes_f16 - q->DecodeWeightBytes(), head_bytes - 8);
      }
    }
  }
  QuantizeOptions o = Options("quamba");
  o.lm_head = "int4";
  Status st = QuantizeModel(*model_, o, *dir_ / "head-bad");
  EXPECT_THAT(st.message(), HasSubstr("--lm-head: expected keep, f16, bf16 or int8 (w4: the 4-bit "
                                      "recipes quamba2-w4* only), found \"int4\""));
  // A version-1 checkpoint (before lm_head was a choice: no "lm_head" key) loads as "keep".
  const std::string old_dir = *dir_ / "head-keep-quamba";
  std::string cfg = ReadAll(old_dir + "/quantization_config.json");
  for (const std::string& from : {std::string("\"lm_head\": \"keep\","),
                                  std::string("\"format_version\": 2")}) {
    const size_t at = cfg.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    cfg.replace(at, from.size(), from[1] == 'l' ? "" : "\"format_version\": 1");
  }
  std::ofstream(old_dir + "/quantization_config.json") << cfg;
  auto old = Model::Load(old_dir);
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_THAT((*old)->weight_type(), HasSubstr("lm_head F32"));
}

// An untied checkpoint (its own lm_head.weight): every --lm-head writes and binds the head it
// asks for, and a decode step reads the head, not the embedding table.
TEST(QuantizerUntiedTest, EveryLmHeadMode) {
  TempDir dir;
  MambaConfig c;
  c.n_layer = 2;
  c.d_model = 64;
  c.vocab_size = 50280;
  c.tie_embeddings = false;
  ASSERT_TRUE(WriteSynthCheckpoint(c, DType::kF32, 11, dir / "fp").ok());
  std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                             dir / "fp/tokenizer.json");
  auto fp = std::move(Model::Load(dir / "fp")).value();
  ASSERT_FALSE(fp->config().tie_embeddings);
  const int64_t table = c.vocab_size * c.d_model;
  EXPECT_EQ(fp->DecodeWeightBytes(), fp->file_bytes() - 4 * table);  // table not streamed
  const std::vector<int32_t> ids = fp->tokenizer()->Encode("It is a truth universally");
  std::vector<float> ref(c.vocab_size);
  {
    Runtime e(*fp, 2, kernels::DefaultKernels());
    SequenceState s = fp->NewState();
    e.Prefill(&s, ids, ref.data(), false);
  }
  for (const char* head : {"keep", "f16", "bf16", "int8"}) {
    SCOPED_TRACE(head);
    const std::string out = dir / (std::string("q-") + head);
    Status st = QuantizeModel(*fp, TestOptions("quamba", 4, 64, head), out);
    ASSERT_TRUE(st.ok()) << st.message();
    auto q = std::move(Model::Load(out)).value();
    const TensorView* lm = q->store().Find("lm_head.weight");
    ASSERT_NE(lm, nullptr);
    const std::string h = head;
    EXPECT_STREQ(DTypeName(lm->dtype),
                 h == "keep" ? "F32" : h == "bf16" ? "BF16" : h == "int8" ? "I8" : "F16");
    const TensorView* emb = q->store().Find("backbone.embeddings.weight");
    EXPECT_EQ(q->DecodeWeightBytes(), q->file_bytes() - emb->nbytes);
    Runtime e(*q, 2, kernels::DefaultKernels());
    SequenceState s = q->NewState();
    std::vector<float> got(c.vocab_size);
    e.Prefill(&s, ids, got.data(), false);
    EXPECT_LT(KlDivergence(ref, got), 1e-3);
  }
}

// Calibration files are read until enough samples exist; a later one that does not exist was
// never opened, yet recorded in quantization_config.json as used (item 17).
TEST_F(QuantizerTest, EveryCalibFileMustExistAndOnlyUsedOnesAreRecorded) {
  QuantizeOptions o = Options("minmax");  // 6 samples of 64 tokens: the first file suffices
  const std::string first = o.calib_files[0];
  o.calib_files.push_back(*dir_ / "missing.txt");
  Status s = QuantizeModel(*model_, o, *dir_ / "calib2");
  EXPECT_THAT(s.message(), HasSubstr("missing.txt: cannot open"));
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "calib2"));
  std::ofstream(*dir_ / "unused.txt") << "never reached";
  o.calib_files.back() = *dir_ / "unused.txt";
  ASSERT_TRUE(QuantizeModel(*model_, o, *dir_ / "calib2").ok());
  auto qc = QuantConfig::FromJson(ReadAll(*dir_ / "calib2/quantization_config.json"), "q");
  ASSERT_TRUE(qc.ok()) << qc.status().message();
  EXPECT_EQ(qc->calib_files, std::vector<std::string>{first});
}

// quantization_config.json fields of the wrong JSON type were an uncaught
// nlohmann::json::type_error (SIGABRT); format_version 4294967298 was read as 2 (items 1, 16).
TEST(QuantConfigTest, WrongTypesAndRangesAreOneLineErrors) {
  const std::string base = QuantConfig::ForRecipe("minmax")->ToJson();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = base;
    const size_t p = t.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    if (p != std::string::npos) t.replace(p, from.size(), to);
    auto q = QuantConfig::FromJson(t, "q.json");
    return q.ok() ? std::string("ok") : q.status().message();
  };
  EXPECT_EQ(with("", ""), "ok");
  EXPECT_EQ(with("\"format\": \"quamba.cpp\"", "\"format\": 5"),
            "q.json: format: expected a string, found 5");
  for (const char* v : {"5", "null", "[\"a\"]"})
    EXPECT_EQ(with("\"source_model\": \"\"", std::string("\"source_model\": ") + v),
              std::string("q.json: source_model: expected a string, found ") +
                  (v[0] == '[' ? "an array" : v));
  EXPECT_EQ(with("\"samples\": 0", "\"samples\": \"eight\""),
            "q.json: calibration.samples: expected an integer, found \"eight\"");
  EXPECT_EQ(with("\"files\": []", "\"files\": [1]"),
            "q.json: calibration.files: expected an array of strings, found 1");
  EXPECT_EQ(with("\"format_version\": 2", "\"format_version\": 4294967298"),
            "q.json: format_version: expected 1..3, found 4294967298");
  EXPECT_EQ(with("\"lm_head\": \"f16\"", "\"lm_head\": 8"),
            "q.json: lm_head: expected a string, found 8");
  EXPECT_EQ(with("\"percentile_alpha\": 0.99999", "\"percentile_alpha\": \"x\""),
            "q.json: percentile_alpha: expected a number, found \"x\"");
  const std::string deep = std::string(80000, '[') + std::string(80000, ']');
  EXPECT_EQ(with("\"recipe\": \"minmax\"", "\"recipe\": " + deep).rfind(
                "q.json: expected JSON nested at most 64 levels deep", 0),
            0u);
}

// Paths are bytes, JSON is UTF-8: a model directory or calibration file whose name is not valid
// UTF-8 made the writer throw (type_error 316) after the whole calibration.
TEST(QuantConfigTest, NonUtf8PathsAreWrittenReplaced) {
  QuantConfig q = *QuantConfig::ForRecipe("minmax");
  q.source_model = "models/\xff";
  q.calib_files = {"calib\xfe.txt"};
  std::string text;
  ASSERT_NO_THROW(text = q.ToJson());
  auto back = QuantConfig::FromJson(text, "q.json");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->source_model, "models/\xEF\xBF\xBD");  // U+FFFD
}

// Rewrites one float element of a quantized checkpoint's tensor.
void SetElement(const std::string& dir, const std::string& tensor, int64_t i, float v) {
  auto st = TensorStore::Open(dir);
  ASSERT_TRUE(st.ok()) << st.status().message();
  std::vector<std::vector<uint8_t>> keep;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, t] : (*st)->tensors()) {
    keep.emplace_back(t.data, t.data + t.nbytes);
    if (name == tensor) std::memcpy(keep.back().data() + 4 * i, &v, 4);
    tensors.push_back({name, t.dtype, t.shape, keep.back().data(), nullptr});
  }
  const auto meta = (*st)->metadata();
  st->reset();
  ASSERT_TRUE(WriteSafeTensors(dir + "/model.safetensors", tensors, meta).ok());
}

// A SmoothQuant factor of 0, NaN, Inf or -1 is a corrupt file: its inverse scales an activation
// channel by Inf, NaN or a sign flip (item 16).
TEST_F(QuantizerTest, BadSmoothingFactorsAreRefused) {
  const std::string out = *dir_ / "sq_bad";
  ASSERT_TRUE(QuantizeModel(*model_, Options("smoothquant"), out).ok());
  const std::string t = "backbone.layers.1.mixer.x_proj.smooth";
  for (float bad : {0.0f, std::nanf(""), INFINITY, -1.0f}) {
    SetElement(out, t, 5, bad);
    auto m = Model::Load(out);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_THAT(m.status().message(),
                HasSubstr("tensor \"" + t + "\": expected positive finite smoothing factors, "
                          "found " + StrFormat("%g", bad) + " at element 5"));
  }
}

// A quantized folder whose recipe was edited, or whose config and weights come from different
// recipes, loaded and produced garbage (ppl 20479 instead of 210): the weights name the recipe
// they were made for (__metadata__.quamba_recipe), and it must be the config's (item 13).
TEST_F(QuantizerTest, ConfigAndWeightsMustBeOfOneRecipe) {
  const std::string qa = *dir_ / "r_quamba", mm = *dir_ / "r_minmax";
  ASSERT_TRUE(QuantizeModel(*model_, Options("quamba"), qa).ok());
  ASSERT_TRUE(QuantizeModel(*model_, Options("minmax"), mm).ok());
  auto error = [](const std::string& dir) {
    auto m = Model::Load(dir);
    return m.ok() ? std::string("loaded") : m.status().message();
  };
  // The recipe edited in quantization_config.json (same tensor names: only the metadata tells;
  // the quamba switches recorded beside it are refused for minmax, so they are edited too).
  const std::string cfg = ReadAll(qa + "/quantization_config.json");
  std::string edited = cfg;
  edited.replace(edited.find("\"recipe\": \"quamba\""), 18, "\"recipe\": \"minmax\"");
  for (const std::string key : {"\"hadamard_out_proj\": true", "\"percentile_u\": true"}) {
    const size_t at = edited.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    edited.replace(at, key.size(), key.substr(0, key.size() - 4) + "false");
  }
  std::ofstream(qa + "/quantization_config.json") << edited;
  EXPECT_THAT(error(qa), HasSubstr("model.safetensors: __metadata__.quamba_recipe: expected "
                                   "\"minmax\" (the recipe of quantization_config.json), found "
                                   "\"quamba\""));
  std::ofstream(qa + "/quantization_config.json") << cfg;
  EXPECT_EQ(error(qa), "loaded");
  // The weights of the other recipe.
  std::filesystem::copy_file(mm + "/model.safetensors", qa + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_THAT(error(qa), HasSubstr("expected \"quamba\" (the recipe of "
                                   "quantization_config.json), found \"minmax\""));
  // lm_head: the config says bf16, the table is float16.
  std::string head = ReadAll(mm + "/quantization_config.json");
  const std::string f16 = "\"lm_head\": \"f16\"";
  head.replace(head.find(f16), f16.size(), "\"lm_head\": \"bf16\"");
  std::ofstream(mm + "/quantization_config.json") << head;
  EXPECT_THAT(error(mm), HasSubstr("tensor \"backbone.embeddings.weight\": expected BF16 (the "
                                   "lm_head of quantization_config.json is \"bf16\"), found F16"));
}

// A dynamic-recipe config over static weights: their activation scales are tensors the dynamic
// recipe does not use (item 17).
TEST_F(QuantizerTest, TensorsOfAnotherRecipeAreRefused) {
  const std::string mm = *dir_ / "t_minmax", dy = *dir_ / "t_dynamic";
  ASSERT_TRUE(QuantizeModel(*model_, Options("minmax"), mm).ok());
  ASSERT_TRUE(QuantizeModel(*model_, Options("dynamic"), dy).ok());
  std::string cfg = ReadAll(dy + "/quantization_config.json");
  std::ofstream(mm + "/quantization_config.json") << cfg;
  auto m = Model::Load(mm);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(),
              HasSubstr("tensor \"backbone.layers.0.mixer.conv1d.output_scale\": expected only "
                        "tensors the model of config.json uses (recipe dynamic), found one it "
                        "does not"));
}

TEST_F(QuantizerTest, BadInputIsRefused) {
  Status s = QuantizeModel(*model_, Options("gptq"), *dir_ / "x");
  EXPECT_THAT(s.message(), HasSubstr("--recipe: expected quamba, minmax, smoothquant, dynamic, quamba2-w8a8, quamba2-w4a8, quamba2-w4a16 or quamba2-w4ax, found \"gptq\""));
  ASSERT_TRUE(QuantizeModel(*model_, Options("minmax"), *dir_ / "exists").ok());
  s = QuantizeModel(*model_, Options("minmax"), *dir_ / "exists");
  EXPECT_THAT(s.message(), HasSubstr("expected a new output directory"));
  QuantizeOptions o = Options("quamba");
  o.calib_files = {*dir_ / "nope.txt"};
  s = QuantizeModel(*model_, o, *dir_ / "y");
  EXPECT_THAT(s.message(), HasSubstr("nope.txt: cannot open"));
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "y"));
  // A corrupt scale in a quantized checkpoint is bad input, found at load.
  const std::string out = *dir_ / "exists";
  std::string cfg = ReadAll(out + "/quantization_config.json");
  std::ofstream(out + "/quantization_config.json") << "{\"format\": \"quamba.cpp\"}";
  auto m = Model::Load(out);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("format_version: expected 1..3, found nothing"));
}

}  // namespace
}  // namespace quamba
