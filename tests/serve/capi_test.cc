// The C API (include/quamba.h): log-probs equal `quamba eval`'s scorer, generation equals the
// Runtime's greedy tokens, states round-trip through get/set, bad input returns an error; and the
// Python ctypes example runs against libquamba.so.
#include "quamba.h"

#include <gtest/gtest.h>

#include <cmath>

#include "eval/loglik.h"
#include "serve_test_util.h"

namespace quamba {
namespace {

struct Collected {
  std::vector<int32_t> ids;
  std::string text;
  int stop_after = -1;
};

int Collect(int32_t id, const char* piece, size_t len, void* user) {
  auto* c = static_cast<Collected*>(user);
  c->ids.push_back(id);
  c->text.append(piece, len);
  return c->stop_after >= 0 && static_cast<int>(c->ids.size()) >= c->stop_after;
}

TEST(CapiTest, MatchesTheEngine) {
  qm_model* m = qm_load(testing::RefModelDir().c_str(), 1);
  ASSERT_NE(m, nullptr) << qm_last_error();
  const std::string text = "It is a truth universally acknowledged, that a single man";
  const int64_t n = qm_tokenize(m, text.data(), text.size(), nullptr, 0);
  ASSERT_GT(n, 4);
  std::vector<int32_t> ids(n);
  ASSERT_EQ(qm_tokenize(m, text.data(), text.size(), ids.data(), n), n);
  std::string back(qm_detokenize(m, ids.data(), n, nullptr, 0), '\0');
  ASSERT_EQ(qm_detokenize(m, ids.data(), n, back.data(), back.size()), (int64_t)text.size());
  EXPECT_EQ(back, text);

  // Log-probs: the scorer's for (ids[0..k), ids[k..n)) is the sum of out[k-1..n-1).
  std::vector<double> lp(n - 1);
  ASSERT_EQ(qm_logprobs(m, ids.data(), n, lp.data()), 0) << qm_last_error();
  auto model = testing::LoadModel(testing::RefModelDir());
  Runtime rt(*model, 1, kernels::DefaultKernels(), 256, 16);
  EngineScorer scorer(&rt, *model, 16, EngineScorerOptions());
  const int64_t k = 4;
  std::vector<std::vector<LoglikRequest>> g = {
      {{std::vector<int32_t>(ids.begin(), ids.begin() + k), std::vector<int32_t>(ids.begin() + k, ids.end())}}};
  double sum = 0;
  for (int64_t i = k - 1; i < n - 1; ++i) sum += lp[i];
  EXPECT_NEAR(sum, scorer.Score(g, nullptr)[0][0].logprob, 1e-4);

  // Greedy generation equals the Runtime's argmax chain.
  qm_state* s = qm_state_new(m);
  Collected got;
  const qm_sampling greedy = {0.0f, 1.0f, 0, 0};
  ASSERT_EQ(qm_generate(m, s, ids.data(), n, 10, &greedy, Collect, &got), 10) << qm_last_error();
  std::vector<int32_t> want;
  {
    SequenceState st = model->NewState();
    std::vector<float> logits(model->config().vocab_size);
    rt.Prefill(&st, ids, logits.data(), false);
    for (int i = 0; i < 10; ++i) {
      const int32_t t = ArgMax(logits.data(), logits.size());
      want.push_back(t);
      SequenceState* sp = &st;
      rt.DecodeStep({&sp, 1}, {&t, 1}, logits.data());
    }
  }
  EXPECT_EQ(got.ids, want);
  EXPECT_EQ(qm_state_tokens(s), n + 10);

  // A state saved and set into a new one continues identically (here: 5 more greedy tokens).
  std::vector<uint8_t> buf(qm_state_size(m));
  ASSERT_EQ(qm_state_get(m, s, buf.data(), buf.size()), 0);
  qm_state* t = qm_state_new(m);
  ASSERT_EQ(qm_state_set(m, t, buf.data(), buf.size()), 0);
  Collected a, b;
  b.stop_after = 5;
  ASSERT_EQ(qm_generate(m, s, nullptr, 0, 5, &greedy, Collect, &a), 5);
  ASSERT_EQ(qm_generate(m, t, nullptr, 0, 100, &greedy, Collect, &b), 5);  // the callback stops it
  EXPECT_EQ(a.ids, b.ids);

  // Bad input: an error, no crash.
  const int32_t bad[2] = {1, 1 << 30};
  EXPECT_EQ(qm_logprobs(m, bad, 2, lp.data()), -1);
  EXPECT_NE(std::string(qm_last_error()).find("token id"), std::string::npos);
  EXPECT_EQ(qm_detokenize(m, bad, 2, nullptr, 0), -1);
  EXPECT_EQ(qm_state_set(m, t, buf.data(), buf.size() - 1), -1);
  qm_state* empty = qm_state_new(m);
  EXPECT_EQ(qm_generate(m, empty, nullptr, 0, 3, &greedy, nullptr, nullptr), -1);
  EXPECT_EQ(qm_load("/nonexistent", 1), nullptr);
  EXPECT_NE(std::string(qm_last_error()).find("/nonexistent"), std::string::npos);
  qm_state_free(empty);
  qm_state_free(t);
  qm_state_free(s);
  qm_free(m);
}

// examples/quamba_ctypes.py (standard library only) against the shared library.
TEST(CapiTest, PythonCtypesExampleRuns) {
#ifdef QM_SANITIZED
  GTEST_SKIP() << "an ASan-built libquamba.so cannot be loaded into an uninstrumented python3";
#else
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  testing::TempDir d;
  const std::string cmd = "python3 " + testing::SourcePath("examples/quamba_ctypes.py") + " " +
                          QM_CAPI_LIB_PATH + " " + testing::RefModelDir() + " >" + (d / "out") +
                          " 2>" + (d / "err") + " </dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::ReadAll(d / "err");
  const std::string out = testing::ReadAll(d / "out");
  EXPECT_NE(out.find("log p(continuation | context) ="), std::string::npos) << out;
  EXPECT_NE(out.find("generated:"), std::string::npos) << out;
#endif
}

}  // namespace
}  // namespace quamba
