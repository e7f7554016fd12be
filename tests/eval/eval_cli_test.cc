// `quamba eval` as a user meets it: usage and input errors (one line, exit 2 / 1), and a real
// run of perplexity + KL divergence + all six tasks on a tiny synthetic model with the GPT-NeoX
// tokenizer, whose JSON must carry every figure; forked and from-scratch scoring agree.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/synth.h"
#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

using testing::CliResult;
using testing::Lines;
using testing::RunQuamba;

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Two examples per task in the shared layout.
void WriteData(const TempDir& d) {
  Write(d / "data/lambada/lambada_test.jsonl",
        "{\"text\": \"The cat sat on the mat\"}\n{\"text\": \"She opened the door\"}\n");
  Write(d / "data/hellaswag/hellaswag_val_full.txt",
        "Cooking: A man cuts onions. he\n1\nflies away.\nputs them in a pan.\nsings.\nsleeps.\n"
        "Running: A woman runs. she\n0\nstops.\nswims.\nreads.\ndances.\n");
  Write(d / "data/piqa/valid.jsonl",
        "{\"goal\": \"Open a jar\", \"sol1\": \"Twist the lid.\", \"sol2\": \"Eat the lid.\"}\n"
        "{\"goal\": \"Dry hair\", \"sol1\": \"Use water.\", \"sol2\": \"Use a towel.\"}\n");
  Write(d / "data/piqa/valid-labels.lst", "0\n1\n");
  const std::string arc =
      "{\"id\": \"a\", \"question\": {\"stem\": \"What is 2+2?\", \"choices\": [{\"text\": \"4\", "
      "\"label\": \"A\"}, {\"text\": \"5\", \"label\": \"B\"}, {\"text\": \"22\", \"label\": "
      "\"C\"}]}, \"answerKey\": \"A\"}\n";
  Write(d / "data/arc/ARC-Easy-Test.jsonl", arc + arc);
  Write(d / "data/arc/ARC-Challenge-Test.jsonl", arc);
  Write(d / "data/winogrande/dev.jsonl",
        "{\"sentence\": \"Tom gave Bob a gift because _ was kind.\", \"option1\": \"Tom\", "
        "\"option2\": \"Bob\", \"answer\": \"1\"}\n");
  std::string text;
  for (int i = 0; i < 20; ++i) text += "The quick brown fox jumps over the lazy dog. ";
  Write(d / "text.txt", text);
}

class EvalCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MambaConfig c;
    c.n_layer = 2;
    c.d_model = 64;
    c.vocab_size = 50280;  // GPT-NeoX's padded vocabulary: the tokenizer's ids fit
    QM_CHECK(WriteSynthCheckpoint(c, DType::kF32, 11, *dir_ / "m").ok(), "synth");
    std::filesystem::copy_file(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"),
                               *dir_ / "m/tokenizer.json");
    WriteData(*dir_);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string M() { return *dir_ / "m"; }
  static std::string Data() { return *dir_ / "data"; }
  static TempDir* dir_;
};
TempDir* EvalCliTest::dir_ = nullptr;

TEST_F(EvalCliTest, UsageErrorsExitTwoWithOneLine) {
  CliResult r = RunQuamba("eval --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: quamba eval"));
  r = RunQuamba("eval -m " + M());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("expected --ppl FILE and/or --tasks LIST, found neither"));
  r = RunQuamba("eval -m " + M() + " --tasks piqa,mmlu --data " + Data());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("eval --tasks: expected one of lambada_openai, hellaswag, piqa, "
                               "arc_easy, arc_challenge, winogrande, found \"mmlu\""));
  r = RunQuamba("eval -m " + M() + " --tasks piqa");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("eval --data: expected the task data directory"));
}

TEST_F(EvalCliTest, BadInputExitsOneNamingFileAndLine) {
  TempDir d;
  CliResult r = RunQuamba("eval -m " + M() + " --tasks winogrande --data " + d.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(d / "winogrande/dev.jsonl" + ": expected the winogrande data "
                                                            "file, found no such file"));
  Write(d / "piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n[1, 2]\n");
  r = RunQuamba("eval -m " + M() + " --tasks piqa --data " + d.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("piqa/valid.jsonl: line 2: expected a JSON object, found array"));
  r = RunQuamba("eval -m " + M() + " --ppl " + (d / "none.txt"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("none.txt: cannot open"));
  r = RunQuamba("eval -m " + M() + " --ppl " + (*dir_ / "text.txt") + " --ctx 100000");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("expected at least 100000 tokens (one window of --ctx)"));
}

constexpr const char* kTasks = "lambada_openai,hellaswag,piqa,arc_easy,arc_challenge,winogrande";

// --chunk 1 scores every token through one-token passes (the decode step's shape): on a float
// model the perplexity of the default 256-token passes up to float summation order; recorded in
// the JSON; 0 refused.
TEST_F(EvalCliTest, ChunkOneScoresTokenByToken) {
  const std::string base =
      "eval -m " + M() + " --ppl " + (*dir_ / "text.txt") + " --ctx 32 -t 1 --json";
  const CliResult a = RunQuamba(base), b = RunQuamba(base + " --chunk 1");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  const nlohmann::json ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_FALSE(ja.contains("chunk"));
  EXPECT_EQ(jb["chunk"].get<int64_t>(), 1);
  EXPECT_NEAR(jb["ppl"].get<double>(), ja["ppl"].get<double>(), 1e-4 * ja["ppl"].get<double>());
  const CliResult z = RunQuamba(base + " --chunk 0");
  EXPECT_EQ(z.code, 2);
  EXPECT_THAT(z.err, HasSubstr("--chunk"));
}

TEST_F(EvalCliTest, PerplexityKldAndAllTasksAsJson) {
  const std::string args = "eval -m " + M() + " --ppl " + (*dir_ / "text.txt") +
                           " --ctx 32 --kld-ref " + M() + " --tasks " + kTasks + " --data " +
                           Data() + " -t 1 --json";
  const CliResult r = RunQuamba(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_EQ(j["windows"].get<int64_t>(), j["tokens"].get<int64_t>() / 31);
  EXPECT_GE(j["windows"].get<int64_t>(), 5);
  EXPECT_NEAR(j["kld_mean"].get<double>(), 0, 1e-9);  // the reference is the same model
  EXPECT_DOUBLE_EQ(j["same_top"].get<double>(), 1.0);
  ASSERT_EQ(j["tasks"].size(), 6u);
  for (const auto& t : j["tasks"]) {
    const std::string name = t["task"];
    EXPECT_GE(t["acc"].get<double>(), 0.0) << name;
    EXPECT_LE(t["acc"].get<double>(), 1.0) << name;
    EXPECT_TRUE(t.contains("stderr")) << name;
    EXPECT_EQ(t.contains("acc_norm"), name != "winogrande" && name != "lambada_openai") << name;
    EXPECT_EQ(t.contains("ppl"), name == "lambada_openai") << name;
    EXPECT_EQ(t["n"].get<int64_t>(), name == "winogrande" || name == "arc_challenge" ? 1 : 2);
  }

  // The same tasks scored from scratch (tasks only, markdown output): the same figures.
  const CliResult s = RunQuamba("eval -m " + M() + " --tasks " + kTasks + " --data " + Data() +
                          " -t 1 --no-fork --json");
  ASSERT_EQ(s.code, 0) << s.err;
  const nlohmann::json k = nlohmann::json::parse(s.out);
  EXPECT_FALSE(k.contains("ppl"));
  EXPECT_EQ(k["fork"], false);
  for (size_t i = 0; i < 6; ++i) {
    const auto &a = j["tasks"][i], &b = k["tasks"][i];
    EXPECT_EQ(a["acc"], b["acc"]) << a["task"];
    if (a.contains("acc_norm")) {
      EXPECT_EQ(a["acc_norm"], b["acc_norm"]) << a["task"];
    }
    if (a.contains("ppl")) {
      EXPECT_NEAR(a["ppl"].get<double>(), b["ppl"].get<double>(), 1e-4 * a["ppl"].get<double>());
    }
  }

  const CliResult md = RunQuamba("eval -m " + M() + " --tasks piqa --data " + Data() + " -t 1");
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_THAT(md.out, HasSubstr("| piqa | 2 | acc |"));
}

}  // namespace
}  // namespace quamba
