// The Runtime scorer on a tiny synthetic model: forked states + batched decode give the scores
// of scoring every request from scratch, and both equal a direct float64 log-softmax over the
// all-position logits of one prefill of context + continuation.
#include "eval/loglik.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kernels.h"
#include "model/synth.h"
#include "test_util.h"

namespace quamba {
namespace {

using testing::TempDir;

class ScorerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MambaConfig c;
    c.n_layer = 2;
    c.d_model = 64;
    c.vocab_size = 384;
    QM_CHECK(WriteSynthCheckpoint(c, DType::kF32, 7, dir_->path()).ok(), "synth");
    model_ = std::move(Model::Load(dir_->path())).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }

  static std::vector<int32_t> Ids(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> v(n);
    for (auto& t : v) t = static_cast<int32_t>(rng() % 384);
    return v;
  }
  static std::vector<int32_t> Cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  // sum_t log_softmax(logits[t])[seq[t+1]] over the continuation, in float64, from one prefill.
  LoglikResult Direct(const LoglikRequest& r) {
    Runtime e(*model_, 1, kernels::DefaultKernels());
    const std::vector<int32_t> seq = Cat(r.context, r.continuation);
    std::vector<float> logits(seq.size() * 384);
    SequenceState s = model_->NewState();
    e.Prefill(&s, seq, logits.data(), true);
    LoglikResult out;
    for (size_t t = r.context.size() - 1; t + 1 < seq.size(); ++t) {
      const float* x = logits.data() + t * 384;
      double mx = x[0];
      int arg = 0;
      for (int v = 1; v < 384; ++v)
        if (x[v] > mx) mx = x[v], arg = v;
      double sum = 0;
      for (int v = 0; v < 384; ++v) sum += std::exp(x[v] - mx);
      out.logprob += x[seq[t + 1]] - mx - std::log(sum);
      out.is_greedy = out.is_greedy && arg == seq[t + 1];
    }
    return out;
  }

  std::vector<std::vector<LoglikResult>> Run(const std::vector<std::vector<LoglikRequest>>& g,
                                             bool fork, int64_t batch, int64_t max_length = 2048) {
    Runtime e(*model_, 1, kernels::DefaultKernels(), 256, 16);
    EngineScorerOptions o;
    o.fork_state = fork;
    o.batch = batch;
    o.max_length = max_length;
    EngineScorer s(&e, *model_, 16, o);
    int64_t last_done = -1, calls = 0;
    auto res = s.Score(g, [&](int64_t done, int64_t total) {
      EXPECT_EQ(total, static_cast<int64_t>(g.size()));
      EXPECT_GE(done, last_done);
      last_done = done;
      ++calls;
    });
    EXPECT_EQ(last_done, static_cast<int64_t>(g.size()));
    return res;
  }

  // Multiple-choice groups with every shape the fork path handles: shared contexts with
  // continuations of unequal length (1 token included), contexts that differ after a shared
  // prefix (WinoGrande), contexts that differ at the first token (no shared prefix), single
  // requests (LAMBADA), and choices whose first continuation tokens coincide.
  std::vector<std::vector<LoglikRequest>> Groups() {
    std::vector<std::vector<LoglikRequest>> g;
    const auto ctx = Ids(23, 1);
    g.push_back({{ctx, Ids(5, 2)}, {ctx, Ids(1, 3)}, {ctx, Ids(9, 4)}, {ctx, Ids(3, 5)}});
    const auto stem = Ids(11, 6), rest = Ids(7, 7);
    g.push_back({{Cat(stem, Ids(2, 8)), rest}, {Cat(stem, Ids(3, 9)), rest}});
    g.push_back({{Ids(4, 10), Ids(6, 11)}, {Ids(5, 12), Ids(2, 13)}});
    g.push_back({{Ids(40, 14), Ids(2, 15)}});
    const auto head = Ids(3, 16);
    g.push_back({{ctx, Cat(head, Ids(4, 17))}, {ctx, Cat(head, Ids(1, 18))}, {ctx, head}});
    for (int i = 0; i < 4; ++i)  // more rows than a batch: rows wait for a slot
      g.push_back({{Ids(9 + i, 20 + i), Ids(3 + i, 30 + i)},
                   {Ids(9 + i, 20 + i), Ids(4, 40 + i)},
                   {Ids(9 + i, 20 + i), Ids(1, 50 + i)},
                   {Ids(9 + i, 20 + i), Ids(6, 60 + i)},
                   {Ids(9 + i, 20 + i), Ids(2, 70 + i)}});
    return g;
  }

  static TempDir* dir_;
  static Model* model_;
};
TempDir* ScorerTest::dir_ = nullptr;
Model* ScorerTest::model_ = nullptr;

// Relative tolerance between two float32 forward paths (chunked prefill vs batched decode):
// logits differ by float32 rounding (rel ~1e-6), log-probs summed over <= 10 tokens.
constexpr double kTol = 2e-5;

TEST_F(ScorerTest, LogSoftmaxAtMatchesDefinition) {
  const std::vector<float> x = {1.0f, 3.0f, -2.0f, 3.0f};
  bool greedy = false;
  const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-2.0));
  EXPECT_NEAR(LogSoftmaxAt(x.data(), 4, 2, &greedy), -2.0 - lse, 1e-12);
  EXPECT_FALSE(greedy);
  EXPECT_NEAR(LogSoftmaxAt(x.data(), 4, 1, &greedy), 3.0 - lse, 1e-12);
  EXPECT_TRUE(greedy);
  LogSoftmaxAt(x.data(), 4, 3, &greedy);
  EXPECT_FALSE(greedy);  // ties: the first index is the argmax
}

TEST_F(ScorerTest, ForkedEqualsFromScratchEqualsDirect) {
  const auto groups = Groups();
  const auto forked = Run(groups, true, 4);
  const auto scratch = Run(groups, false, 4);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].size(); ++i) {
      const LoglikResult d = Direct(groups[g][i]);
      const double tol = kTol * std::max(1.0, std::abs(d.logprob));
      EXPECT_NEAR(forked[g][i].logprob, d.logprob, tol) << g << "," << i;
      EXPECT_NEAR(scratch[g][i].logprob, d.logprob, tol) << g << "," << i;
      EXPECT_EQ(forked[g][i].is_greedy, d.is_greedy) << g << "," << i;
      EXPECT_EQ(scratch[g][i].is_greedy, d.is_greedy) << g << "," << i;
    }
  }
}

TEST_F(ScorerTest, BatchSizeDoesNotChangeScores) {
  const auto groups = Groups();
  const auto b1 = Run(groups, true, 1);
  const auto b16 = Run(groups, true, 16);
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].size(); ++i)
      EXPECT_NEAR(b1[g][i].logprob, b16[g][i].logprob,
                  kTol * std::max(1.0, std::abs(b1[g][i].logprob)));
}

TEST_F(ScorerTest, GreedyContinuationIsRecognised) {
  // Build a continuation out of the model's own argmax tokens: is_greedy must be true.
  Runtime e(*model_, 1, kernels::DefaultKernels());
  std::vector<int32_t> seq = Ids(10, 99);
  const size_t n_ctx = seq.size();
  std::vector<float> logits(384);
  for (int k = 0; k < 4; ++k) {
    SequenceState s = model_->NewState();
    e.Prefill(&s, seq, logits.data(), false);
    seq.push_back(
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  const LoglikRequest r{std::vector<int32_t>(seq.begin(), seq.begin() + n_ctx),
                        std::vector<int32_t>(seq.begin() + n_ctx, seq.end())};
  for (bool fork : {true, false}) EXPECT_TRUE(Run({{r}}, fork, 4)[0][0].is_greedy) << fork;
}

TEST_F(ScorerTest, LeftTruncationKeepsTheLastMaxLengthPlusOneTokens) {
  const LoglikRequest r{Ids(30, 5), Ids(4, 6)};
  int64_t n = 0;
  const std::vector<int32_t> seq = TruncatedSequence(r, 10, &n);
  ASSERT_EQ(seq.size(), 11u);
  EXPECT_EQ(n, 7);
  EXPECT_EQ(std::vector<int32_t>(seq.end() - 4, seq.end()), r.continuation);
  // Scoring with max_length 10 == scoring the truncated request without a limit.
  const LoglikRequest cut{std::vector<int32_t>(seq.begin(), seq.begin() + n), r.continuation};
  for (bool fork : {true, false})
    EXPECT_NEAR(Run({{r}}, fork, 4, 10)[0][0].logprob, Direct(cut).logprob, 1e-4);
  EXPECT_EQ(TruncatedSequence(r, 0, &n).size(), 34u);                         // 0 = no limit
  EXPECT_EQ(TruncatedSequence({Ids(2, 1), Ids(20, 2)}, 10, &n).size(), 21u);  // keeps 1 context
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace quamba
