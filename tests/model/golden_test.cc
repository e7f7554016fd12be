// Golden end-to-end test: the C++ engine on the project's reference model against logits and
// greedy continuations computed in float64 by the independent PyTorch implementation
// (scripts/mamba_model.py via scripts/make_golden.py), on every ISA.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "model/runtime.h"
#include "model/sampler.h"
#include "test_util.h"

namespace quamba {
namespace {

// max |Δlogit| allowed (the bar). float32 through 6 layers gives ~1e-5 measured.
constexpr double kMaxLogitDiff = 1e-3;
// A greedy step whose top-1/top-2 gap in float64 is below this may legitimately flip in float32.
constexpr double kMinTrustedMargin = 1e-4;

const nlohmann::json& Golden() {
  static const nlohmann::json* j = [] {
    std::ifstream f(testing::SourcePath("tests/data/golden_ref.json"));
    QM_CHECK(f.good(), "tests/data/golden_ref.json missing");
    return new nlohmann::json(nlohmann::json::parse(f));
  }();
  return *j;
}

class GoldenTest : public ::testing::TestWithParam<kernels::Isa> {
 protected:
  void SetUp() override {
    if (!kernels::IsaSupported(GetParam())) GTEST_SKIP() << "ISA not supported here";
    auto m = Model::Load(testing::SourcePath(Golden()["model_dir"].get<std::string>()));
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(m).value();
  }
  std::unique_ptr<Model> model_;
};

TEST_P(GoldenTest, LogitsAndGreedyMatchPyTorch) {
  const kernels::KernelTable& k = kernels::KernelsFor(GetParam());
  Runtime engine(*model_, 2, k);
  const int64_t V = model_->config().vocab_size;
  for (const auto& c : Golden()["cases"]) {
    const std::string name = c["name"];
    const std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    // The C++ tokenizer gives the Python encoder's ids.
    EXPECT_EQ(model_->tokenizer()->Encode(c["prompt"].get<std::string>()), ids) << name;
    SequenceState s = model_->NewState();
    std::vector<float> all(ids.size() * V);
    engine.Prefill(&s, ids, all.data(), /*all_logits=*/true);
    const auto first = c["logits_first"].get<std::vector<double>>();
    const auto last = c["logits_last"].get<std::vector<double>>();
    ASSERT_EQ((int64_t)first.size(), V);
    double max_diff = 0;
    for (int64_t i = 0; i < V; ++i) {
      max_diff = std::max(max_diff, std::fabs(all[i] - first[i]));
      max_diff = std::max(max_diff, std::fabs(all[(ids.size() - 1) * V + i] - last[i]));
    }
    EXPECT_LE(max_diff, kMaxLogitDiff) << name;
    // Greedy continuation by decode steps from the prefilled state.
    const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
    const auto margins = c["greedy_margins"].get<std::vector<double>>();
    std::vector<float> logits(all.end() - V, all.end());
    for (size_t t = 0; t < want.size(); ++t) {
      const int32_t next = ArgMax(logits.data(), V);
      if (margins[t] < kMinTrustedMargin) break;  // a float64 near-tie: stop comparing here
      ASSERT_EQ(next, want[t]) << name << " step " << t << " margin " << margins[t];
      SequenceState* sp = &s;
      engine.DecodeStep({&sp, 1}, {&next, 1}, logits.data());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, GoldenTest,
                         ::testing::Values(kernels::Isa::kGeneric, kernels::Isa::kAvx2,
                                           kernels::Isa::kAvx512),
                         [](const auto& p) { return std::string(kernels::IsaName(p.param)); });

}  // namespace
}  // namespace quamba
