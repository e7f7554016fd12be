// The lm-evaluation-harness contract (../shared/docs/serving-api.md §1), end to end over HTTP:
// the exact payloads `local-completions` and the `gguf` backend send, parsed as they parse them,
// must give `quamba eval`'s log-likelihoods (EngineScorer, forked states) to 1e-4, for the float
// reference model and a W8A8 copy of it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "eval/loglik.h"
#include "serve/api.h"
#include "serve_test_util.h"

namespace quamba {
namespace {

using testing::Http;
using testing::Post;

constexpr double kTol = 1e-4;  // the bound; float32 logits -> float64 sums

class ContractTest : public ::testing::TestWithParam<bool> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    fp_ = testing::LoadModel(testing::RefModelDir()).release();
    q_ = testing::QuantizedRefModel(*fp_, *dir_ / "w8a8").release();
  }
  static void TearDownTestSuite() {
    delete q_;
    delete fp_;
    delete dir_;
  }
  const Model& M() const { return GetParam() ? *q_ : *fp_; }

  // `quamba eval`'s scores: EngineScorer with forked states and its default batch.
  static std::vector<LoglikResult> EvalScores(const Model& m, const std::vector<LoglikRequest>& reqs) {
    Runtime rt(m, 1, kernels::DefaultKernels(), 256, 16);
    EngineScorerOptions o;
    EngineScorer scorer(&rt, m, 16, o);
    std::vector<std::vector<LoglikRequest>> groups;
    for (const auto& r : reqs) groups.push_back({r});
    std::vector<LoglikResult> out;
    for (const auto& g : scorer.Score(groups, nullptr)) out.push_back(g[0]);
    return out;
  }

  // (context, continuation) pairs cut from a book: contexts of 3..300 tokens cross the
  // server's prefill chunks (64) and its snapshots; continuations of 1..20 tokens.
  static std::vector<LoglikRequest> Pairs(const Model& m) {
    const std::string text = testing::ReadAll(testing::SharedData("calibration/pg1342-0.txt"));
    const std::vector<int32_t> ids = m.tokenizer()->Encode(text.substr(20000, 20000));
    std::vector<LoglikRequest> out;
    const int ctx[] = {3, 17, 64, 65, 130, 300, 31, 8};
    const int cont[] = {1, 5, 20, 2, 7, 3, 1, 12};
    size_t at = 0;
    for (int i = 0; i < 8; ++i) {
      LoglikRequest r;
      r.context.assign(ids.begin() + at, ids.begin() + at + ctx[i]);
      r.continuation.assign(ids.begin() + at + ctx[i], ids.begin() + at + ctx[i] + cont[i]);
      out.push_back(r);
      at += 400;
    }
    return out;
  }

  static testing::TempDir* dir_;
  static Model* fp_;
  static Model* q_;
};

testing::TempDir* ContractTest::dir_ = nullptr;
Model* ContractTest::fp_ = nullptr;
Model* ContractTest::q_ = nullptr;

// lm-eval `local-completions`, tokenized_requests=True: a batch of token lists, echo,
// max_tokens 1, logprobs 1; score = sum(token_logprobs[ctxlen:-1]); is_greedy compares each
// with max(top_logprobs[i].values()).
TEST_P(ContractTest, LocalCompletionsLoglikelihoodEqualsEval) {
  auto server = testing::StartServer(M(), testing::TestServerOptions());
  const std::vector<LoglikRequest> pairs = Pairs(M());
  Json prompts = Json::array();
  std::vector<size_t> ctxlens;
  for (const auto& r : pairs) {
    std::vector<int32_t> inp = r.context;
    inp.insert(inp.end(), r.continuation.begin(), r.continuation.end());
    prompts.push_back(inp);
    ctxlens.push_back(r.context.size());
  }
  const Json payload = {{"model", "quamba"}, {"prompt", prompts}, {"temperature", 0},
                        {"max_tokens", 1},   {"logprobs", 1},     {"seed", 1234},
                        {"echo", true}};
  const testing::HttpReply reply = Post(server->port(), "/v1/completions", payload);
  ASSERT_EQ(reply.status, 200) << reply.body;
  Json choices = reply.json()["choices"];
  ASSERT_EQ(choices.size(), pairs.size());
  std::sort(choices.begin(), choices.end(),
            [](const Json& a, const Json& b) { return a["index"] < b["index"]; });
  const std::vector<LoglikResult> want = EvalScores(M(), pairs);
  for (size_t i = 0; i < pairs.size(); ++i) {
    SCOPED_TRACE("pair " + std::to_string(i));
    const Json& lp = choices[i]["logprobs"];
    const Json& tl = lp["token_logprobs"];
    const Json& top = lp["top_logprobs"];
    // One entry per prompt token plus the generated one (the contract's off-by-one).
    const size_t n = pairs[i].context.size() + pairs[i].continuation.size();
    ASSERT_EQ(tl.size(), n + 1);
    ASSERT_EQ(lp["tokens"].size(), n + 1);
    ASSERT_EQ(lp["text_offset"].size(), n + 1);
    EXPECT_TRUE(tl[0].is_null());
    double sum = 0;
    bool greedy = true;
    for (size_t t = ctxlens[i]; t + 1 < tl.size(); ++t) {
      sum += tl[t].get<double>();
      double mx = -INFINITY;
      for (auto& [k, v] : top[t].items()) mx = std::max(mx, v.get<double>());
      if (tl[t].get<double>() != mx) greedy = false;
    }
    EXPECT_NEAR(sum, want[i].logprob, kTol);
    EXPECT_EQ(greedy, want[i].is_greedy);
  }
}

// Older lm-eval (and OpenAI's legacy API): echo with max_tokens 0 gives the prompt's log-probs
// only, one per prompt token.
TEST_P(ContractTest, EchoWithZeroMaxTokensGivesPromptLogprobsOnly) {
  auto server = testing::StartServer(M(), testing::TestServerOptions());
  const std::vector<LoglikRequest> pairs = Pairs(M());
  const LoglikRequest& r = pairs[2];
  std::vector<int32_t> inp = r.context;
  inp.insert(inp.end(), r.continuation.begin(), r.continuation.end());
  const testing::HttpReply reply =
      Post(server->port(), "/v1/completions",
           {{"prompt", inp}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const Json tl = reply.json()["choices"][0]["logprobs"]["token_logprobs"];
  ASSERT_EQ(tl.size(), inp.size());
  double sum = 0;
  for (size_t t = r.context.size(); t < tl.size(); ++t) sum += tl[t].get<double>();
  EXPECT_NEAR(sum, EvalScores(M(), {r})[0].logprob, kTol);
  EXPECT_EQ(reply.json()["usage"]["completion_tokens"], 0);
}

// The gguf backend: a string prompt (context + continuation), echo, max_tokens 1, logprobs 10;
// it walks text_offset (characters) to the first token at or past len(context) and sums from
// there to the last prompt token. Contexts hold multi-byte characters, so byte offsets fail.
TEST_P(ContractTest, StringPromptTextOffsetsFindTheContinuation) {
  auto server = testing::StartServer(M(), testing::TestServerOptions());
  const Tokenizer& tok = *M().tokenizer();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Mr. Darcy\u2019s na\u00efve caf\u00e9 friend said", " nothing at all"},
      {"\u201cIt is a truth universally acknowledged,\u201d she wrote", " to her sister"},
      {"The weather \u2014 cold and grey \u2014 kept them", " indoors"},
  };
  for (const auto& [ctx, cont] : cases) {
    SCOPED_TRACE(ctx);
    LoglikRequest r{tok.Encode(ctx), tok.Encode(cont)};
    std::vector<int32_t> joined = r.context;
    joined.insert(joined.end(), r.continuation.begin(), r.continuation.end());
    ASSERT_EQ(tok.Encode(ctx + cont), joined) << "a case whose tokens do not split at the join";
    const testing::HttpReply reply =
        Post(server->port(), "/v1/completions",
             {{"prompt", ctx + cont}, {"echo", true}, {"max_tokens", 1}, {"logprobs", 10},
              {"temperature", 0}});
    ASSERT_EQ(reply.status, 200) << reply.body;
    const Json choice = reply.json()["choices"][0];
    const Json& lp = choice["logprobs"];
    // Python's len(context): code points.
    int64_t context_length = 0;
    for (unsigned char c : ctx) context_length += (c & 0xC0) != 0x80;
    size_t idx = 0;
    while (lp["text_offset"][idx].get<int64_t>() < context_length) ++idx;
    EXPECT_EQ(idx, r.context.size());
    double sum = 0;
    for (size_t t = idx; t + 1 < lp["token_logprobs"].size(); ++t)
      sum += lp["token_logprobs"][t].get<double>();
    EXPECT_NEAR(sum, EvalScores(M(), {r})[0].logprob, kTol);
    // echo: the text starts with the prompt, and top_logprobs hold 10 entries.
    EXPECT_EQ(choice["text"].get<std::string>().rfind(ctx + cont, 0), 0u);
    EXPECT_EQ(lp["top_logprobs"][1].size(), 10u);
  }
}

// The remote tokenizer lm-eval uses (tokenizer_backend=remote): /tokenizer_info, /tokenize,
// /detokenize at the server root.
TEST_P(ContractTest, RemoteTokenizerEndpoints) {
  auto server = testing::StartServer(M(), testing::TestServerOptions());
  const int port = server->port();
  const testing::HttpReply info = Http(port, "GET", "/tokenizer_info");
  ASSERT_EQ(info.status, 200);
  EXPECT_EQ(info.json()["eos_token"], "<|endoftext|>");
  const std::string text = "It is a truth universally acknowledged \u2014 caf\u00e9";
  const testing::HttpReply t =
      Post(port, "/tokenize", {{"prompt", text}, {"add_special_tokens", false}});
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.json()["tokens"].get<std::vector<int32_t>>(), M().tokenizer()->Encode(text));
  const testing::HttpReply d = Post(port, "/detokenize", {{"tokens", t.json()["tokens"]}});
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.json()["prompt"], text);
  const testing::HttpReply models = Http(port, "GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  const std::string dir = M().dir();
  EXPECT_EQ(models.json()["data"][0]["id"], dir.substr(dir.find_last_of('/') + 1));
}

INSTANTIATE_TEST_SUITE_P(Models, ContractTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "W8A8" : "Float"; });

}  // namespace
}  // namespace quamba
