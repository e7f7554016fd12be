// Perplexity windowing (counts, fresh state per window, the dropped partial window), ppl and KL
// divergence against direct float64 computations from all-position logits, and the WikiText
// row joining that reproduces "\n\n".join(load_dataset("wikitext", ...)["text"]).
#include "eval/perplexity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "io/mapped_file.h"
#include "kernels/kernels.h"
#include "model/synth.h"
#include "test_util.h"

namespace quamba {
namespace {

using testing::TempDir;

constexpr int64_t kVocab = 256;

std::unique_ptr<Model> Synth(const TempDir& d, uint64_t seed) {
  MambaConfig c;
  c.n_layer = 2;
  c.d_model = 32;
  c.vocab_size = kVocab;
  QM_CHECK(WriteSynthCheckpoint(c, DType::kF32, seed, d.path()).ok(), "synth");
  return std::move(Model::Load(d.path())).value();
}

std::vector<int32_t> Ids(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(n);
  for (auto& t : v) t = static_cast<int32_t>(rng() % kVocab);
  return v;
}

std::vector<double> LogSoftmax(const float* x) {
  double mx = x[0];
  for (int v = 1; v < kVocab; ++v) mx = std::max<double>(mx, x[v]);
  double sum = 0;
  for (int v = 0; v < kVocab; ++v) sum += std::exp(x[v] - mx);
  std::vector<double> out(kVocab);
  for (int v = 0; v < kVocab; ++v) out[v] = x[v] - mx - std::log(sum);
  return out;
}

// All-position logits of one window from a fresh state.
std::vector<float> WindowLogits(const Model& m, std::span<const int32_t> win) {
  Runtime e(m, 1, kernels::DefaultKernels());
  SequenceState s = m.NewState();
  std::vector<float> logits(win.size() * kVocab);
  e.Prefill(&s, win, logits.data(), true);
  return logits;
}

TEST(Perplexity, WindowsTokensAndValueMatchDirectComputation) {
  TempDir d;
  auto m = Synth(d, 3);
  Runtime e(*m, 2, kernels::DefaultKernels());
  const int64_t ctx = 300;  // > the 256-token logits chunk: a window spans two chunks
  const std::vector<int32_t> ids = Ids(3 * ctx + 57, 1);  // 3 windows; 57 tokens dropped
  int64_t last = -1;
  auto r = EvaluatePerplexity({m.get(), &e}, {}, ids, {ctx, 0}, [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 3);
    last = done;
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(last, 3);
  EXPECT_EQ(r->windows, 3);
  EXPECT_EQ(r->tokens, 3 * (ctx - 1));  // position 0 of each window is not predicted
  EXPECT_FALSE(r->has_ref);

  double nll = 0;
  for (int64_t w = 0; w < 3; ++w) {
    const std::span<const int32_t> win(ids.data() + w * ctx, ctx);
    const std::vector<float> logits = WindowLogits(*m, win);
    for (int64_t t = 0; t + 1 < ctx; ++t) nll -= LogSoftmax(logits.data() + t * kVocab)[win[t + 1]];
  }
  nll /= 3 * (ctx - 1);
  EXPECT_NEAR(r->nll, nll, 1e-5 * nll);
  EXPECT_NEAR(r->ppl, std::exp(nll), 1e-5 * std::exp(nll));
  EXPECT_GT(r->ppl_stderr, 0);

  auto two = EvaluatePerplexity({m.get(), &e}, {}, ids, {.ctx = ctx, .max_windows = 2},
                                nullptr);  // --limit 2
  EXPECT_EQ(two->windows, 2);
  EXPECT_EQ(two->tokens, 2 * (ctx - 1));

  // --ppl-stride ctx-1: windows overlap by one token, every token after the first is scored
  // once; the first window is the same, so with --limit 1 the NLLs agree.
  auto strided = EvaluatePerplexity({m.get(), &e}, {}, ids, {.ctx = ctx, .stride = ctx - 1},
                                    nullptr);
  ASSERT_TRUE(strided.ok());
  EXPECT_EQ(strided->windows, (static_cast<int64_t>(ids.size()) - ctx) / (ctx - 1) + 1);
  EXPECT_EQ(strided->tokens, strided->windows * (ctx - 1));
  {
    const std::span<const int32_t> win(ids.data() + (ctx - 1), ctx);  // the second window
    const std::vector<float> logits = WindowLogits(*m, win);
    double nll2 = 0;
    for (int64_t t = 0; t + 1 < ctx; ++t)
      nll2 -= LogSoftmax(logits.data() + t * kVocab)[win[t + 1]];
    auto first2 = EvaluatePerplexity({m.get(), &e}, {},
                                     std::span<const int32_t>(ids).subspan(0, 2 * ctx - 1),
                                     {.ctx = ctx, .stride = ctx - 1}, nullptr);
    ASSERT_TRUE(first2.ok());
    EXPECT_EQ(first2->windows, 2);
    const std::span<const int32_t> w0(ids.data(), ctx);
    const std::vector<float> l0 = WindowLogits(*m, w0);
    double nll1 = 0;
    for (int64_t t = 0; t + 1 < ctx; ++t) nll1 -= LogSoftmax(l0.data() + t * kVocab)[w0[t + 1]];
    EXPECT_NEAR(first2->nll, (nll1 + nll2) / (2 * (ctx - 1)), 1e-5 * nll1 / (ctx - 1));
  }

  auto few = EvaluatePerplexity({m.get(), &e}, {}, Ids(10, 2), {ctx, 0}, nullptr);
  ASSERT_FALSE(few.ok());
  EXPECT_THAT(few.status().message(),
              ::testing::HasSubstr("expected at least 300 tokens (one window of --ctx), found 10"));
}

TEST(Perplexity, KlDivergenceAgainstAReference) {
  TempDir d1, d2;
  auto m = Synth(d1, 3);
  auto ref = Synth(d2, 4);
  Runtime e(*m, 2, kernels::DefaultKernels()), er(*ref, 2, kernels::DefaultKernels());
  const int64_t ctx = 64;
  const std::vector<int32_t> ids = Ids(2 * ctx, 5);

  // Against itself: KL 0, the same top token everywhere, ref_ppl == ppl.
  Runtime e2(*m, 1, kernels::DefaultKernels());
  auto self = EvaluatePerplexity({m.get(), &e}, {m.get(), &e2}, ids, {ctx, 0}, nullptr);
  ASSERT_TRUE(self.ok()) << self.status().message();
  EXPECT_NEAR(self->kld_mean, 0, 1e-9);
  EXPECT_NEAR(self->kld_max, 0, 1e-8);
  EXPECT_DOUBLE_EQ(self->same_top, 1.0);
  EXPECT_NEAR(self->ref_ppl, self->ppl, 1e-9 * self->ppl);

  auto r = EvaluatePerplexity({m.get(), &e}, {ref.get(), &er}, ids, {ctx, 0}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<double> klds;
  int same = 0;
  for (int64_t w = 0; w < 2; ++w) {
    const std::span<const int32_t> win(ids.data() + w * ctx, ctx);
    const auto lm = WindowLogits(*m, win), lr = WindowLogits(*ref, win);
    for (int64_t t = 0; t + 1 < ctx; ++t) {
      const auto pm = LogSoftmax(lm.data() + t * kVocab), pr = LogSoftmax(lr.data() + t * kVocab);
      double kl = 0;
      for (int v = 0; v < kVocab; ++v) kl += std::exp(pr[v]) * (pr[v] - pm[v]);
      klds.push_back(kl);
      same += std::max_element(pm.begin(), pm.end()) - pm.begin() ==
              std::max_element(pr.begin(), pr.end()) - pr.begin();
    }
  }
  double mean = 0;
  for (double k : klds) mean += k;
  mean /= klds.size();
  std::sort(klds.begin(), klds.end());
  EXPECT_EQ(r->tokens, static_cast<int64_t>(klds.size()));
  EXPECT_GT(r->kld_mean, 1e-4);
  EXPECT_NEAR(r->kld_mean, mean, 1e-4 * mean);
  EXPECT_NEAR(r->kld_max, klds.back(), 1e-4 * klds.back());
  EXPECT_GE(r->kld_p99, r->kld_median);
  EXPECT_LE(r->kld_p99, r->kld_max);
  EXPECT_NEAR(r->same_top, static_cast<double>(same) / klds.size(), 1.5 / klds.size());
}

TEST(WikiText, RowsJoinedAsHfDatasets) {
  // Whitespace-only lines become "", other lines keep their "\n"; rows joined with "\n\n"
  // (expected strings from CPython reading the same bytes in text mode).
  EXPECT_EQ(WikiTextJoinRows(" \n = T = \n \n a b \n"), "\n\n = T = \n\n\n\n\n a b \n");
  EXPECT_EQ(WikiTextJoinRows("a\r\nb\rc"), "a\n\n\nb\n\n\nc");  // universal newlines
  EXPECT_EQ(WikiTextJoinRows(""), "");
}

TEST(WikiText, SharedTestSplitMatchesPython) {
  auto raw = ReadFileToString(testing::SharedData("wikitext-2-raw/wiki.test.raw"));
  ASSERT_TRUE(raw.ok()) << raw.status().message();
  const std::string s = WikiTextJoinRows(*raw);
  // Length and FNV-1a 64 of "\n\n".join(rows) computed in CPython with the wikitext loading
  // script's rule (4358 rows).
  EXPECT_EQ(s.size(), 1296370u);
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  EXPECT_EQ(h, 0x8521b84b68568ffbull);
  EXPECT_EQ(s.substr(0, 30), "\n\n = Robert Boulter = \n\n\n\n\n Ro");
}

}  // namespace
}  // namespace quamba
