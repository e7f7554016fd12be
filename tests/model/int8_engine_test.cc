// The int8 engine on every ISA this machine has, with an explicit kernel table per ISA (never
// only the process default): for every recipe and lm_head precision of a tiny synthetic model
// (Mamba-1, and Mamba-2 for its int8 recipes),
//   - the integer kernels agree bit for bit with --simulate (float GEMMs over the same grid);
//   - decode steps after a prefill give the logits of a longer prefill;
//   - B sequences decoded together give the logits of each decoded alone.
// Each test counts the ISA cases it ran and fails when that is not every available ISA: a test
// that silently runs zero ISA cases cannot pass.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "model/mamba1/mamba1.h"
#include "model/runtime.h"
#include "model/synth.h"
#include "quant/quantizer.h"
#include "test_util.h"

namespace quamba {
namespace {

using testing::TempDir;

struct Variant {
  const char* recipe;
  const char* head;
  bool mamba2 = false;  // of the synthetic Mamba-2 model (int8 conv and SSM state)
  int a16_layers = -1;  // quamba2-w4ax: --a16-layers (one A16 and one A8 layer here)
  const char* embedding = "";
  const char* ssm_state = "";  // --ssm-state ("": the recipe's default)
};
constexpr Variant kVariants[] = {
    {"quamba", "f16"},      {"quamba", "int8"},  {"minmax", "f16"},  {"minmax", "int8"},
    {"smoothquant", "f16"}, {"smoothquant", "int8"}, {"dynamic", "f16"}, {"dynamic", "int8"},
    {"quamba2-w8a8", "f16"}, {"quamba2-w4a8", "f16"}, {"quamba2-w4a8", "int8"},
    {"quamba2-w8a8", "f16", true}, {"quamba2-w4a8", "int8", true}, {"quamba", "f16", true},
    // The 4-bit W4A8 head, the int8 / 4-bit tables, and W4AX's float and int8 blocks in one
    // model.
    {"quamba2-w4ax", "w4", false, 1}, {"quamba2-w4ax", "int8", true, 1, "int8"},
    {"quamba2-w4a8", "w4", true, -1, "int8"}, {"quamba2-w8a8", "int8", false, -1, "w4"},
    // Mamba-1's SSM state: int8 on Quamba v1, float32 on Quamba2 (each the other's default).
    {"quamba", "f16", false, -1, "", "int8"}, {"quamba2-w4a8", "f16", false, -1, "", "f32"},
};

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng() % vocab);
  return ids;
}

class Int8EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MambaConfig c;
    c.n_layer = 2;
    // d_model 128, d_inner 256: Hadamard sizes, whole 4-bit groups of 128 (quamba2-w4a8), and
    // K <= 256: the simulation's int8 float sums stay exact (K 128^2 < 2^24).
    c.d_model = 128;
    c.vocab_size = 50280;
    ASSERT_TRUE(WriteSynthCheckpoint(c, DType::kF32, 7, *dir_ / "fp").ok());
    std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                               *dir_ / "fp/tokenizer.json");
    // Mamba-2: 8 heads of 32 in 2 SSD groups (4 heads per group: sort-and-cluster's 4 head
    // clusters), d_state 16; in_proj K 128, out_proj K 256 as above.
    MambaConfig c2 = c;
    c2.arch = Arch::kMamba2;
    c2.d_inner = 256;
    c2.headdim = 32;
    c2.nheads = 8;
    c2.ngroups = 2;
    c2.d_state = 16;
    ASSERT_TRUE(WriteSynthCheckpoint(c2, DType::kF32, 8, *dir_ / "fp2").ok());
    std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                               *dir_ / "fp2/tokenizer.json");
    auto fp1 = std::move(Model::Load(*dir_ / "fp")).value();
    auto fp2 = std::move(Model::Load(*dir_ / "fp2")).value();
    models_ = new std::vector<std::unique_ptr<Model>>();
    for (const Variant& v : kVariants) {
      const Model* fp = v.mamba2 ? fp2.get() : fp1.get();
      QuantizeOptions o;
      o.recipe = v.recipe;
      o.lm_head = v.head;
      o.a16_layers = v.a16_layers;
      o.embedding = v.embedding;
      o.ssm_state = v.ssm_state;
      o.calib_files = {testing::SharedData("calibration/pg1342-0.txt")};
      o.calib_samples = 6;
      o.calib_len = 64;
      o.threads = 2;
      o.progress = false;
      o.kernels = &kernels::KernelsFor(kernels::Isa::kGeneric);
      const std::string out = *dir_ / (std::string(v.recipe) + "-" + v.head +
                                       (v.mamba2 ? "-mamba2" : "") + "-" + v.embedding + "-" +
                                       v.ssm_state);
      const Status s = QuantizeModel(*fp, o, out);
      ASSERT_TRUE(s.ok()) << s.message();
      models_->push_back(std::move(Model::Load(out)).value());
    }
  }
  static void TearDownTestSuite() {
    delete models_;
    delete dir_;
  }
  // Runs f(model, variant name, kernel table) for every variant on every available ISA and
  // checks that every ISA ran.
  template <typename F>
  static void ForEachCase(F&& f) {
    int isas = 0;
    for (kernels::Isa isa : kernels::AvailableIsas()) {
      ++isas;
      for (size_t i = 0; i < models_->size(); ++i) {
        const std::string name = std::string(kVariants[i].mamba2 ? "mamba2/" : "") +
                                 kVariants[i].recipe + "/" + kVariants[i].head + "/" +
                                 kVariants[i].embedding + "/" + kVariants[i].ssm_state +
                                 "/" + kernels::IsaName(isa);
        SCOPED_TRACE(name);
        f(*(*models_)[i], kernels::KernelsFor(isa));
      }
    }
    ASSERT_GE(isas, 1);
    EXPECT_EQ(isas, static_cast<int>(kernels::AvailableIsas().size()));
  }
  static TempDir* dir_;
  static std::vector<std::unique_ptr<Model>>* models_;
};
TempDir* Int8EngineTest::dir_ = nullptr;
std::vector<std::unique_ptr<Model>>* Int8EngineTest::models_ = nullptr;

// Simulation does every int8 GEMM as a float GEMM over the same integer grid with the same
// epilogue; with K * 128^2 < 2^24 (K <= 256 here) the float sums are exact (W4A8: each group's
// sum, |acc_g| <= 1024 * 128, then the contract's sequence of roundings), so the logits are
// bit-identical: any difference is a bug in an integer kernel (offset trick, wrap-around,
// epilogue) or in how the block calls it. Prefill (all logits) and batched decode steps.
TEST_F(Int8EngineTest, RealEqualsSimulationBitForBit) {
  ForEachCase([](const Model& q, const kernels::KernelTable& k) {
    const int64_t V = q.config().vocab_size;
    const std::vector<int32_t> ids = q.tokenizer()->Encode("Mr. Darcy walked in, and said");
    auto run = [&](bool simulate) {
      Runtime e(q, 2, k, 8, 2, simulate);  // chunks of 8: states carried across chunks
      SequenceState a = q.NewState(), b = q.NewState();
      std::vector<float> out(ids.size() * V);
      e.Prefill(&a, ids, out.data(), true);
      std::vector<float> step(2 * V);
      SequenceState* s[2] = {&a, &b};
      for (int t = 0; t < 3; ++t) {
        const int32_t next[2] = {ids[t], ids[t + 3]};
        e.DecodeStep({s, 2}, {next, 2}, step.data());
        out.insert(out.end(), step.begin(), step.end());
      }
      return out;
    };
    const std::vector<float> real = run(false), sim = run(true);
    ASSERT_EQ(real.size(), sim.size());
    int64_t differ = 0;
    for (size_t i = 0; i < real.size(); ++i) differ += real[i] != sim[i];
    EXPECT_EQ(differ, 0);
  });
}

// Decode steps after a prefill give the logits of a longer prefill, row for row. The int8
// paths are exact up to the float scan and norms (different summation shapes between prefill
// and decode): 1e-4 absolute on logits of magnitude ~1 is far below what one flipped int8 code
// in a GEMM output moves a logit (> 1e-3 here). The int8 conv windows must agree exactly.
// An int8 SSM state (Mamba-2's A8 recipes, Mamba-1's quamba2-* or --ssm-state int8) is
// requantised at the end of every call, so its prefill runs in chunks of one token (a longer
// chunk requantises less often: by design not the same values).
TEST_F(Int8EngineTest, PrefillEqualsDecodeSteps) {
  ForEachCase([](const Model& q, const kernels::KernelTable& k) {
    const std::vector<int32_t> ids = q.tokenizer()->Encode("one two three four five six seven");
    bool int8_state = false;
    const SequenceState probe = q.NewState();
    for (int l = 0; l < q.config().n_layer; ++l)
      int8_state |= probe.layout()->spec(l, mamba1::kSsmState).dtype == DType::kI8;
    Runtime e(q, 2, k, int8_state ? 1 : 256, 16);
    SequenceState a = q.NewState(), b = q.NewState();
    const int64_t V = q.config().vocab_size;
    std::vector<float> all(ids.size() * V), one(V);
    e.Prefill(&a, ids, all.data(), true);
    for (size_t t = 0; t < ids.size(); ++t) {
      SequenceState* sp = &b;
      e.DecodeStep({&sp, 1}, {&ids[t], 1}, one.data());
      for (int64_t i = 0; i < V; ++i) ASSERT_NEAR(one[i], all[t * V + i], 1e-4) << t << " " << i;
    }
    for (int l = 0; l < q.config().n_layer; ++l) {
      // Mamba-1 and Mamba-2 both number the conv window 0 and the SSM state 1.
      for (int buf : {mamba1::kConvState, mamba1::kSsmState}) {
        const StateBufferSpec& spec = a.layout()->spec(l, buf);
        if (spec.dtype != DType::kI8) continue;  // float conv inputs (dynamic), float states
        EXPECT_EQ(0, std::memcmp(a.Get<int8_t>(l, buf), b.Get<int8_t>(l, buf), spec.elems))
            << "layer " << l << " buffer " << spec.name;
      }
    }
  });
}

// Decoding B sequences together equals decoding each alone: rows are independent and the int8
// GEMMs are exact, so only the float lm_head's GEMM-vs-GEMV summation order may differ.
TEST_F(Int8EngineTest, BatchedDecodeEqualsSingle) {
  ForEachCase([](const Model& q, const kernels::KernelTable& k) {
    const int64_t V = q.config().vocab_size;
    Runtime e(q, 2, k);
    constexpr int kB = 3;
    std::vector<SequenceState> batched(kB, q.NewState()), single(kB, q.NewState());
    for (int b = 0; b < kB; ++b) {  // different histories per sequence
      const std::vector<int32_t> p = RandomIds(5 + 3 * b, V, 10 + b);
      e.Prefill(&batched[b], p, nullptr, false);
      e.Prefill(&single[b], p, nullptr, false);
    }
    std::vector<SequenceState*> ptrs;
    for (auto& s : batched) ptrs.push_back(&s);
    std::vector<float> logits(kB * V), one(V);
    for (int step = 0; step < 3; ++step) {
      const std::vector<int32_t> next = RandomIds(kB, V, 100 + step);
      e.DecodeStep(ptrs, next, logits.data());
      for (int b = 0; b < kB; ++b) {
        SequenceState* sp = &single[b];
        e.DecodeStep({&sp, 1}, {&next[b], 1}, one.data());
        double num = 0, den = 0;
        for (int64_t i = 0; i < V; ++i) {
          const double d = logits[b * V + i] - one[i];
          num += d * d;
          den += static_cast<double>(one[i]) * one[i];
        }
        ASSERT_LE(std::sqrt(num / den), 1e-6) << "step " << step << " seq " << b;
      }
    }
  });
}

}  // namespace
}  // namespace quamba
