// Golden end-to-end test: the C++ engine on the project's reference models against logits and
// greedy continuations computed in float64 by independent implementations: Mamba-1 by the
// PyTorch model in float64 (scripts/make_golden.py), Mamba-2 by the token recurrence of
// quamba2-spec §1.5 in numpy (scripts/make_golden_mamba2.py), on every ISA. A case with
// "prefill_split" is prefilled in two pieces (the second starting from the carried state) and
// must give the logits of one piece.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <span>
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

const nlohmann::json& Golden(const std::string& file) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(file);
  if (it == cache.end()) {
    std::ifstream f(testing::SourcePath("tests/data/" + file));
    QM_CHECK(f.good(), "tests/data/%s missing", file.c_str());
    it = cache.emplace(file, nlohmann::json::parse(f)).first;
  }
  return it->second;
}

struct Param {
  const char* file;
  kernels::Isa isa;
};

class GoldenTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (!kernels::IsaSupported(GetParam().isa)) GTEST_SKIP() << "ISA not supported here";
    auto m = Model::Load(testing::SourcePath(Golden()["model_dir"].get<std::string>()));
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(m).value();
  }
  const nlohmann::json& Golden() const { return quamba::Golden(GetParam().file); }
  std::unique_ptr<Model> model_;
};

TEST_P(GoldenTest, LogitsAndGreedyMatchReference) {
  const kernels::KernelTable& k = kernels::KernelsFor(GetParam().isa);
  Runtime engine(*model_, 2, k);
  const int64_t V = model_->config().vocab_size;
  for (const auto& c : Golden()["cases"]) {
    const std::string name = c["name"];
    const std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    // The C++ tokenizer gives the Python encoder's ids.
    EXPECT_EQ(model_->tokenizer()->Encode(c["prompt"].get<std::string>()), ids) << name;
    SequenceState s = model_->NewState();
    std::vector<float> all(ids.size() * V);
    const size_t split = c.contains("prefill_split") ? c["prefill_split"].get<size_t>() : 0;
    if (split > 0) {
      ASSERT_LT(split, ids.size());
      engine.Prefill(&s, std::span<const int32_t>(ids).first(split), all.data(), true);
      engine.Prefill(&s, std::span<const int32_t>(ids).subspan(split), all.data() + split * V,
                     true);
      const auto at_split = c["logits_split"].get<std::vector<double>>();
      double d = 0;
      for (int64_t i = 0; i < V; ++i)
        d = std::max(d, std::fabs(all[(split - 1) * V + i] - at_split[i]));
      EXPECT_LE(d, kMaxLogitDiff) << name << " at the split";
    } else {
      engine.Prefill(&s, ids, all.data(), /*all_logits=*/true);
    }
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

std::vector<Param> AllParams() {
  std::vector<Param> v;
  for (const char* f : {"golden_ref.json", "golden_ref_mamba2.json"})
    for (kernels::Isa isa : {kernels::Isa::kGeneric, kernels::Isa::kAvx2, kernels::Isa::kAvx512})
      v.push_back({f, isa});
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, GoldenTest, ::testing::ValuesIn(AllParams()), [](const auto& p) {
  return std::string(std::string(p.param.file).find("mamba2") != std::string::npos ? "mamba2_"
                                                                                  : "mamba1_") +
         kernels::IsaName(p.param.isa);
});

}  // namespace
}  // namespace quamba
