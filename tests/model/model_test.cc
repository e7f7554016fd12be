// End-to-end tests of the float32 engine on small synthetic checkpoints: logits against an
// independent float64 forward, prefill == decode steps, batched == single decode, chunking,
// and both checkpoint dialects (mamba_ssm names, sharded index).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "kernels/kernels.h"
#include "model/mamba1/mamba1.h"
#include "model/runtime.h"
#include "model/synth.h"
#include "model/mamba_ref.h"
#include "test_util.h"

namespace quamba {
namespace {

using testing::MambaRef;
using testing::ReadAll;
using testing::TempDir;

enum class TinyArch { kMamba1, kFalcon, kMamba2 };

MambaConfig TinyConfig(TinyArch arch = TinyArch::kMamba1) {
  MambaConfig c;
  c.n_layer = 2;
  c.d_model = 64;  // d_inner 128, dt_rank 4
  c.vocab_size = 384;
  if (arch == TinyArch::kFalcon) c.mixer_rms = true;
  if (arch == TinyArch::kMamba2) {  // 4 heads of 32 in 2 SSD groups, d_state 16
    c.arch = Arch::kMamba2;
    c.d_inner = 128;
    c.headdim = 32;
    c.nheads = 4;
    c.ngroups = 2;
    c.d_state = 16;
  }
  return c;
}

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng() % vocab);
  return ids;
}

double RelL2(const float* a, const double* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}
double RelL2(const float* a, const float* b, int64_t n) {
  std::vector<double> bd(b, b + n);
  return RelL2(a, bd.data(), n);
}

struct Param {
  kernels::Isa isa;
  DType dtype;
  TinyArch arch;
};
std::string Name(const ::testing::TestParamInfo<Param>& p) {
  const char* arch = p.param.arch == TinyArch::kMamba2   ? "mamba2_"
                     : p.param.arch == TinyArch::kFalcon ? "falcon_"
                                                         : "";
  return arch + std::string(kernels::IsaName(p.param.isa)) + "_" + DTypeName(p.param.dtype);
}
std::vector<Param> AllParams() {
  std::vector<Param> v;
  for (TinyArch a : {TinyArch::kMamba1, TinyArch::kFalcon, TinyArch::kMamba2})
    for (kernels::Isa isa : {kernels::Isa::kGeneric, kernels::Isa::kAvx2, kernels::Isa::kAvx512})
      for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) v.push_back({isa, d, a});
  return v;
}

class EngineTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (!kernels::IsaSupported(GetParam().isa)) GTEST_SKIP() << "ISA not supported here";
    ASSERT_TRUE(WriteSynthCheckpoint(TinyConfig(GetParam().arch), GetParam().dtype, 99,
                                     dir_.path()).ok());
    auto m = Model::Load(dir_.path());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(m).value();
  }
  const kernels::KernelTable& K() { return kernels::KernelsFor(GetParam().isa); }
  TempDir dir_;
  std::unique_ptr<Model> model_;
};

// float32 engine vs float64 reference from the same (possibly f16/bf16-rounded) weights. The
// engine's error is float32 rounding through ~10 chained ops with sums of K <= 256 terms:
// rel-L2 ~ 1e-6 measured; 2e-5 leaves a margin and still fails on any real mistake (a wrong
// softplus threshold, a swapped B/C, an off-by-one conv tap all give rel-L2 > 1e-2).
constexpr double kRelTolVsRef = 2e-5;

// Lengths and runtime chunks: 29 tokens in chunks of 8 (short chunks: Mamba-2's recurrent
// path; the state carries over), 150 in one pass (Mamba-2: SSD chunks 64 + 64 + 22) and in
// chunks of 100 (SSD chunks 64 + 36, then 50: lengths that are no multiple of the SSD chunk).
TEST_P(EngineTest, LogitsMatchFloat64Reference) {
  const MambaConfig& c = model_->config();
  for (auto [L, chunk] : {std::pair<int64_t, int64_t>{29, 8}, {150, 256}, {150, 100}}) {
    SCOPED_TRACE(::testing::Message() << "L=" << L << " chunk=" << chunk);
    const std::vector<int32_t> ids = RandomIds(L, c.vocab_size, 5);
    MambaRef ref(c, *model_->weights().store);
    const std::vector<double> want = ref.Forward(ids);
    Runtime engine(*model_, 2, K(), chunk);
    SequenceState s = model_->NewState();
    std::vector<float> got(ids.size() * c.vocab_size);
    engine.Prefill(&s, ids, got.data(), /*all_logits=*/true);
    for (size_t t = 0; t < ids.size(); ++t)
      ASSERT_LE(RelL2(got.data() + t * c.vocab_size, want.data() + t * c.vocab_size,
                      c.vocab_size),
                kRelTolVsRef)
          << "token " << t;
    EXPECT_EQ(s.n_tokens, L);
  }
}

// Prefill over L tokens and L one-token decode steps are the same recurrence: logits at every
// position and the final conv/ssm states agree to float32 rounding (rel <= 1e-5, as the issue
// asks).
TEST_P(EngineTest, PrefillEqualsDecodeSteps) {
  const MambaConfig& c = model_->config();
  const std::vector<int32_t> ids = RandomIds(23, c.vocab_size, 6);
  Runtime engine(*model_, 2, K());
  SequenceState a = model_->NewState(), b = model_->NewState();
  std::vector<float> pre(ids.size() * c.vocab_size), step(c.vocab_size);
  engine.Prefill(&a, ids, pre.data(), true);
  for (size_t t = 0; t < ids.size(); ++t) {
    SequenceState* sp = &b;
    engine.DecodeStep({&sp, 1}, {&ids[t], 1}, step.data());
    ASSERT_LE(RelL2(step.data(), pre.data() + t * c.vocab_size, c.vocab_size), 1e-5) << t;
  }
  for (int l = 0; l < c.n_layer; ++l) {
    for (int buf = 0; buf < a.layout()->buffers(l); ++buf) {
      const int64_t n = a.layout()->spec(l, buf).elems;
      EXPECT_LE(RelL2(b.Get<float>(l, buf), a.Get<float>(l, buf), n), 1e-5) << l << " " << buf;
    }
  }
}

// Decoding B sequences together equals decoding each alone (same kernels, rows independent).
TEST_P(EngineTest, BatchedDecodeEqualsSingle) {
  const MambaConfig& c = model_->config();
  Runtime engine(*model_, 2, K());
  constexpr int kB = 3;
  std::vector<SequenceState> batched(kB, model_->NewState()), single(kB, model_->NewState());
  std::vector<float> logits(kB * c.vocab_size), one(c.vocab_size);
  for (int b = 0; b < kB; ++b) {  // different histories per sequence
    const std::vector<int32_t> p = RandomIds(5 + 3 * b, c.vocab_size, 10 + b);
    engine.Prefill(&batched[b], p, nullptr, false);
    engine.Prefill(&single[b], p, nullptr, false);
  }
  std::vector<SequenceState*> ptrs;
  for (auto& s : batched) ptrs.push_back(&s);
  for (int step = 0; step < 4; ++step) {
    const std::vector<int32_t> next = RandomIds(kB, c.vocab_size, 100 + step);
    engine.DecodeStep(ptrs, next, logits.data());
    for (int b = 0; b < kB; ++b) {
      SequenceState* sp = &single[b];
      engine.DecodeStep({&sp, 1}, {&next[b], 1}, one.data());
      ASSERT_LE(RelL2(logits.data() + b * c.vocab_size, one.data(), c.vocab_size), 1e-6)
          << "step " << step << " seq " << b;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, EngineTest, ::testing::ValuesIn(AllParams()), Name);

// Writes the tiny model's tensors again with edits: rename/drop/replace.
struct Rewriter {
  std::unique_ptr<TensorStore> st;
  std::vector<TensorToWrite> tensors;
  explicit Rewriter(const std::string& dir) {
    st = std::move(TensorStore::Open(dir)).value();
    for (const auto& [name, t] : st->tensors())
      tensors.push_back({name, t.dtype, t.shape, t.data, nullptr});
  }
  TensorToWrite* Get(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSynthCheckpoint(TinyConfig(), DType::kF32, 3, src_.path()).ok());
  }
  // Copies config.json to dst and writes model.safetensors from `tensors`.
  void WriteModel(const TempDir& dst, std::vector<TensorToWrite> tensors) {
    std::filesystem::copy_file(src_ / "config.json", dst / "config.json",
                               std::filesystem::copy_options::overwrite_existing);
    ASSERT_TRUE(WriteSafeTensors(dst / "model.safetensors", std::move(tensors), {}).ok());
  }
  std::string LoadError(const std::string& dir) {
    auto m = Model::Load(dir);
    return m.ok() ? "loaded" : m.status().message();
  }
  std::vector<float> Logits(const std::string& dir, const std::vector<int32_t>& ids) {
    auto m = Model::Load(dir);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return {};
    Runtime e(**m, 1, kernels::KernelsFor(kernels::Isa::kGeneric));
    SequenceState s = (*m)->NewState();
    std::vector<float> out((*m)->config().vocab_size);
    e.Prefill(&s, ids, out.data(), false);
    return out;
  }
  TempDir src_;
};

TEST_F(LoaderTest, MissingDirectoryAndConfig) {
  EXPECT_THAT(LoadError(src_ / "nope"), ::testing::HasSubstr("expected a model directory"));
  TempDir d;
  EXPECT_THAT(LoadError(d.path()), ::testing::HasSubstr("config.json: cannot open"));
}

TEST_F(LoaderTest, MissingTensorIsNamed) {
  TempDir d;
  Rewriter r(src_.path());
  std::erase_if(r.tensors, [](const TensorToWrite& t) {
    return t.name == "backbone.layers.1.mixer.x_proj.weight";
  });
  WriteModel(d, r.tensors);
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("tensor \"backbone.layers.1.mixer.x_proj.weight\": expected "
                                   "shape (36, 128), found no such tensor"));
}

TEST_F(LoaderTest, WrongShapeIsNamed) {
  TempDir d;
  Rewriter r(src_.path());
  r.Get("backbone.layers.0.mixer.out_proj.weight")->shape = {128, 64};  // transposed
  WriteModel(d, r.tensors);
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("tensor \"backbone.layers.0.mixer.out_proj.weight\": shape: "
                                   "expected (64, 128), found (128, 64)"));
}

TEST_F(LoaderTest, UnsupportedDtypeIsNamed) {
  TempDir d;
  Rewriter r(src_.path());
  r.Get("backbone.norm_f.weight")->dtype = DType::kI32;  // same byte size as F32
  WriteModel(d, r.tensors);
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("tensor \"backbone.norm_f.weight\": dtype: expected F32, F16 "
                                   "or BF16, found I32"));
}

// Raw header surgery: the header is untrusted input.
void WriteAll(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

TEST_F(LoaderTest, TruncatedFile) {
  TempDir d;
  std::filesystem::copy_file(src_ / "config.json", d / "config.json");
  std::string bytes = ReadAll(src_ / "model.safetensors");
  WriteAll(d / "model.safetensors", bytes.substr(0, bytes.size() - 100));
  EXPECT_THAT(LoadError(d.path()), ::testing::HasSubstr("(file truncated?)"));
  WriteAll(d / "model.safetensors", bytes.substr(0, 5));
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("header length: expected 8 bytes, found a 5-byte file"));
}

TEST_F(LoaderTest, HeaderThatLies) {
  TempDir d;
  std::filesystem::copy_file(src_ / "config.json", d / "config.json");
  std::string bytes = ReadAll(src_ / "model.safetensors");
  std::string big = bytes;
  big[6] = 0x7f;  // header length ~ 2^55
  WriteAll(d / "model.safetensors", big);
  EXPECT_THAT(LoadError(d.path()), ::testing::HasSubstr("header length: expected at most"));
  // Offsets that disagree with dtype x shape.
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
  std::string header = bytes.substr(8, hlen);
  // Keys are written sorted: {"data_offsets":[b,e],"dtype":"F32","shape":[64]}.
  const std::string key = "\"dtype\":\"F32\",\"shape\":[64]}";
  const size_t pos = header.find(key, header.find("\"backbone.norm_f.weight\""));
  ASSERT_NE(pos, std::string::npos) << header.substr(0, 300);
  std::string lying = header;
  lying.replace(pos, key.size(), "\"dtype\":\"F32\",\"shape\":[65]}");
  WriteAll(d / "model.safetensors", bytes.substr(0, 8) + lying + bytes.substr(8 + hlen));
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("tensor \"backbone.norm_f.weight\": expected 260 bytes for "
                                   "F32 (65,), found 256"));
  std::string f8 = header;
  f8.replace(pos, key.size(), "\"dtype\":\"F8\" ,\"shape\":[64]}");
  WriteAll(d / "model.safetensors", bytes.substr(0, 8) + f8 + bytes.substr(8 + hlen));
  EXPECT_THAT(LoadError(d.path()), ::testing::HasSubstr("dtype: expected one of F32"));
  std::string broken = header;
  broken[0] = '[';
  WriteAll(d / "model.safetensors", bytes.substr(0, 8) + broken + bytes.substr(8 + hlen));
  EXPECT_THAT(LoadError(d.path()), ::testing::HasSubstr("header: expected valid JSON, found"));
}

// The file's header as text, and a file made of another header and the same data section.
std::string HeaderOf(const std::string& bytes) {
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
  return bytes.substr(8, hlen);
}
std::string WithHeader(const std::string& bytes, const std::string& header) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = (char)((uint64_t)header.size() >> (8 * i));
  return out + header + bytes.substr(8 + HeaderOf(bytes).size());
}

// A value nested 80,000 levels deep where an error message would print it: a one-line error,
// not a stack overflow in the JSON serializer.
TEST_F(LoaderTest, DeeplyNestedValuesAreRefused) {
  const std::string deep = std::string(80000, '[') + std::string(80000, ']');
  TempDir d;
  std::filesystem::copy_file(src_ / "model.safetensors", d / "model.safetensors");
  std::string cfg = ReadAll(src_ / "config.json");
  cfg.replace(cfg.find("\"hidden_size\": 64"), 17, "\"hidden_size\": " + deep);
  WriteAll(d / "config.json", cfg);
  std::string err = LoadError(d.path());
  EXPECT_THAT(err, ::testing::HasSubstr("config.json: expected JSON nested at most 64 levels"));
  EXPECT_LT(err.size(), 300u);

  std::filesystem::copy_file(src_ / "config.json", d / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string bytes = ReadAll(src_ / "model.safetensors");
  std::string header = HeaderOf(bytes);
  const size_t at = header.find("\"dtype\":\"F32\"", header.find("backbone.norm_f.weight"));
  ASSERT_NE(at, std::string::npos);
  header.replace(at, 13, "\"dtype\":" + deep);
  WriteAll(d / "model.safetensors", WithHeader(bytes, header));
  err = LoadError(d.path());
  EXPECT_THAT(err, ::testing::HasSubstr("model.safetensors: header: expected JSON nested at most"));
  EXPECT_LT(err.size(), 300u);
}

// A header length one byte short still parses when the header ends in padding, and then every
// tensor is read one byte off; the tensors must tile the data section exactly (item 14).
TEST_F(LoaderTest, TensorsMustTileTheDataSection) {
  TempDir d;
  std::filesystem::copy_file(src_ / "config.json", d / "config.json");
  const std::string bytes = ReadAll(src_ / "model.safetensors");
  const std::string header = HeaderOf(bytes) + " ";  // one more byte of padding
  std::string f = WithHeader(bytes, header);
  ASSERT_EQ(f[0], (char)header.size());
  --f[0];  // the length says the header is one byte shorter: it still parses
  WriteAll(d / "model.safetensors", f);
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("model.safetensors: data_offsets: expected tensors that tile "
                                   "the 360193-byte data section, found 1 spare byte(s) after "
                                   "the last tensor"));
  WriteAll(d / "model.safetensors", bytes + std::string(4, '\0'));  // spare bytes at the end
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("found 4 spare byte(s) after the last tensor"));
}

// A tensor named twice in one header: JSON parsers keep one of the two silently (item 17).
TEST_F(LoaderTest, DuplicateTensorNameIsAnError) {
  TempDir d;
  std::filesystem::copy_file(src_ / "config.json", d / "config.json");
  const std::string bytes = ReadAll(src_ / "model.safetensors");
  std::string header = HeaderOf(bytes);
  const size_t b = header.find("\"backbone.norm_f.weight\"");
  const size_t e = header.find('}', b) + 1;
  header.insert(e, "," + header.substr(b, e - b));  // the same entry again
  WriteAll(d / "model.safetensors", WithHeader(bytes, header));
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("model.safetensors: header: key \"backbone.norm_f.weight\": "
                                   "expected once per object, found it twice"));
}

// Random corruption of the header never crashes or reads out of bounds (run under ASan in CI):
// every mutation either loads or returns an error.
TEST_F(LoaderTest, CorruptHeadersNeverCrash) {
  TempDir d;
  std::filesystem::copy_file(src_ / "config.json", d / "config.json");
  const std::string bytes = ReadAll(src_ / "model.safetensors");
  std::mt19937 rng(1);
  int errors = 0;
  for (int i = 0; i < 150; ++i) {
    std::string b = bytes;
    const int n_flips = 1 + rng() % 4;
    for (int k = 0; k < n_flips; ++k) b[rng() % std::min<size_t>(b.size(), 2200)] = (char)rng();
    WriteAll(d / "model.safetensors", b);
    errors += LoadError(d.path()) != "loaded";
  }
  EXPECT_GT(errors, 50);  // most mutations of the header must be caught
}

TEST_F(LoaderTest, BadConfigValues) {
  TempDir d;
  std::filesystem::copy_file(src_ / "model.safetensors", d / "model.safetensors");
  std::string cfg = ReadAll(src_ / "config.json");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    const size_t p = c.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    c.replace(p, from.size(), to);
    WriteAll(d / "config.json", c);
    return LoadError(d.path());
  };
  EXPECT_THAT(with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": -2"),
              ::testing::HasSubstr("num_hidden_layers: expected an integer in [1, 16777216], "
                                   "found -2"));
  EXPECT_THAT(with("\"hidden_size\": 64", "\"hidden_size\": \"64\""),
              ::testing::HasSubstr("hidden_size: expected an integer, found \"64\""));
  EXPECT_THAT(with("\"model_type\": \"mamba\"", "\"model_type\": \"jamba\""),
              ::testing::HasSubstr("model_type: expected \"mamba\", \"falcon_mamba\" or "
                                   "\"mamba2\", found \"jamba\""));
  EXPECT_THAT(with("\"hidden_size\": 64", "\"hidden_size\": 96"),
              ::testing::HasSubstr("shape: expected"));
  WriteAll(d / "config.json", "{ not json");
  EXPECT_THAT(LoadError(d.path()), ::testing::HasSubstr("config.json: expected valid JSON, found"));
}

// "hidden_size": null is not a size. It was read as absent, so a checkpoint of zero-width
// tensors loaded as d_model 0 and every command ran on nothing: generate printed no tokens and
// exited 0, quantize aborted in the writer and left its temporary folder (item 4).
TEST_F(LoaderTest, NullSizeIsAnError) {
  TempDir d;
  MambaConfig c = TinyConfig();
  c.d_model = 0;  // every tensor that has a d_model, d_inner or dt_rank side is empty
  c.vocab_size = 50280;
  ASSERT_TRUE(WriteSynthCheckpoint(c, DType::kF32, 3, d / "m").ok());
  std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                             d / "m/tokenizer.json");
  std::string cfg = ReadAll(d / "m/config.json");
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"\"hidden_size\": 0",
                                                                     "\"hidden_size\": null"},
                                 {"\"intermediate_size\": 0", "\"intermediate_size\": null"},
                                 {"\"time_step_rank\": 0", "\"time_step_rank\": \"auto\""}}) {
    ASSERT_NE(cfg.find(from), std::string::npos) << from;
    cfg.replace(cfg.find(from), from.size(), to);
  }
  WriteAll(d / "m/config.json", cfg);
  EXPECT_THAT(LoadError(d / "m"),
              ::testing::HasSubstr("config.json: hidden_size: expected an integer, found null"));
  testing::CliResult r = testing::RunQuamba("generate -m " + (d / "m") + " -p hi -n 4");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(testing::Lines(r.err), 1) << r.err;
  std::filesystem::create_directory(d / "out");
  r = testing::RunQuamba("quantize -m " + (d / "m") + " -o " + (d / "out/q") +
                         " --recipe minmax --calib-samples 2 --calib-len 16 -q --calib " +
                         testing::SharedData("calibration/pg1342-0.txt"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(testing::Lines(r.err), 1) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(d / "out"));  // no output, no temporary folder

  cfg = "{\"d_model\": null, \"n_layer\": 2, \"vocab_size\": 50280}";  // mamba_ssm dialect
  WriteAll(d / "m/config.json", cfg);
  EXPECT_THAT(LoadError(d / "m"),
              ::testing::HasSubstr("config.json: d_model: expected an integer, found null"));
}

// An empty tensor is written as no bytes, whether or not it has a data pointer (an empty
// std::vector's data() may be null).
TEST(SafeTensorsTest, EmptyTensorsWriteAndReadBack) {
  TempDir d;
  const float one = 1.0f;
  ASSERT_TRUE(WriteSafeTensors(d / "t.safetensors",
                               {{"empty", DType::kF32, {0, 64}, nullptr, nullptr},
                                {"one", DType::kF32, {1}, &one, nullptr}},
                               {})
                  .ok());
  auto st = TensorStore::Open(d / "t.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ((*st)->Find("empty")->nbytes, 0u);
  EXPECT_EQ((*st)->Find("one")->nbytes, 4u);
}

// `fill` tensors are produced a chunk at a time, in order, and land where they belong.
TEST(SafeTensorsTest, FillTensorsAreWrittenInChunks) {
  TempDir d;
  std::vector<int64_t> firsts;
  TensorToWrite t{"x", DType::kF32, {1000}, nullptr,
                  [&](void* dst, int64_t first, int64_t count) {
                    firsts.push_back(first);
                    for (int64_t i = 0; i < count; ++i) static_cast<float*>(dst)[i] = first + i;
                  }};
  ASSERT_TRUE(WriteSafeTensors(d / "t.safetensors", {t}, {}, /*fill_chunk_bytes=*/256).ok());
  EXPECT_EQ(firsts.size(), 16u);  // 64 floats a chunk
  EXPECT_EQ(firsts.back(), 960);
  auto st = TensorStore::Open(d / "t.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().message();
  const float* v = reinterpret_cast<const float*>((*st)->Find("x")->data);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[i], i);
}

// num_hidden_layers against the layers the file holds, before anything is allocated: 16777216
// layers on a 2-layer checkpoint took 14 s and 2.9 GB to say "missing tensor" (item 7); fewer
// than the file holds silently dropped layers (item 17).
TEST_F(LoaderTest, LayerCountMustMatchTheFile) {
  TempDir d;
  std::filesystem::copy_file(src_ / "model.safetensors", d / "model.safetensors");
  const std::string cfg = ReadAll(src_ / "config.json");
  auto with_layers = [&](const std::string& n) {
    std::string c = cfg;
    c.replace(c.find("\"num_hidden_layers\": 2"), 22, "\"num_hidden_layers\": " + n);
    WriteAll(d / "config.json", c);
    return LoadError(d.path());
  };
  const double t0 = testing::NowSecondsForTest();
  EXPECT_THAT(with_layers("16777216"),
              ::testing::HasSubstr("config.json: num_hidden_layers: expected 2 (the layers 0..1 "
                                   "of the checkpoint), found 16777216"));
  EXPECT_LT(testing::NowSecondsForTest() - t0, 1.0);
  EXPECT_THAT(with_layers("1"), ::testing::HasSubstr("config.json: num_hidden_layers: expected 2 "
                                                     "(the layers 0..1 of the checkpoint), found 1"));
  EXPECT_EQ(with_layers("2"), "loaded");
}

// A tensor the model does not use means the config and the weights disagree (item 17).
TEST_F(LoaderTest, UnknownTensorIsAnError) {
  TempDir d;
  Rewriter r(src_.path());
  TensorToWrite extra = *r.Get("backbone.layers.0.mixer.D");
  extra.name = "backbone.layers.0.mixer.D2";
  r.tensors.push_back(extra);
  WriteModel(d, r.tensors);
  EXPECT_THAT(LoadError(d.path()),
              ::testing::HasSubstr("model.safetensors: tensor \"backbone.layers.0.mixer.D2\": "
                                   "expected only tensors the model of config.json uses, found one "
                                   "it does not"));
}

// mamba_ssm dialect: d_model/n_layer/ssm_cfg config, backbone.embedding (singular), an explicit
// lm_head.weight, and a sharded index: all load and give the HF layout's logits exactly.
TEST_F(LoaderTest, MambaSsmDialectAndShardsGiveSameLogits) {
  const std::vector<int32_t> ids = RandomIds(9, 384, 2);
  const std::vector<float> want = Logits(src_.path(), ids);
  TempDir d;
  Rewriter r(src_.path());
  r.Get("backbone.embeddings.weight")->name = "backbone.embedding.weight";
  TensorToWrite head = *r.Get("backbone.embedding.weight");
  head.name = "lm_head.weight";
  r.tensors.push_back(head);
  std::vector<TensorToWrite> a, b;
  for (auto& t : r.tensors) (t.name < "backbone.layers.1" ? a : b).push_back(t);
  ASSERT_TRUE(WriteSafeTensors(d / "model-00001-of-00002.safetensors", a, {}).ok());
  ASSERT_TRUE(WriteSafeTensors(d / "model-00002-of-00002.safetensors", b, {}).ok());
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const bool first = r.tensors[i].name < "backbone.layers.1";
    index += (i ? ", \"" : "\"") + r.tensors[i].name + "\": \"model-0000" +
             (first ? "1" : "2") + "-of-00002.safetensors\"";
  }
  WriteAll(d / "model.safetensors.index.json", index + "}}");
  WriteAll(d / "config.json",
           "{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 380, \"pad_vocab_size_multiple\": "
           "8, \"ssm_cfg\": {}, \"rms_norm\": true, \"residual_in_fp32\": true, "
           "\"fused_add_norm\": true, \"tie_embeddings\": true}");
  const std::vector<float> got = Logits(d.path(), ids);  // vocab 380 padded to 384
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
}

}  // namespace
}  // namespace quamba
