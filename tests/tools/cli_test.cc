// The CLI as a user meets it: exit codes, one-line errors, --help on every subcommand, and a
// real generate/tokenize/synth/inspect/bench run on a tiny synthetic model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

using testing::CliResult;
using testing::Lines;
using testing::RunQuamba;

TEST(CliTest, HelpOnEverySubcommand) {
  for (const char* cmd : {"generate", "tokenize", "bench", "inspect", "synth", "quantize", "eval"}) {
    const CliResult r = RunQuamba(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_THAT(r.out, HasSubstr(std::string("usage: quamba ") + cmd)) << cmd;
  }
  EXPECT_EQ(RunQuamba("").code, 2);
  EXPECT_EQ(RunQuamba("frobnicate").code, 2);
}

TEST(CliTest, BadInputIsOneLineAndNonZero) {
  TempDir d;
  CliResult r = RunQuamba("generate -m " + (d / "missing") + " -p hi");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("expected a model directory"));
  r = RunQuamba("generate -m x -p hi --temp abc");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--temp: expected a number, found \"abc\""));
  r = RunQuamba("generate -p hi");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--model: expected a value"));
  r = RunQuamba("synth --shape mamba-9b -o " + (d / "m"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--shape: expected mamba-130m"));
  EXPECT_FALSE(std::filesystem::exists(d / "m"));
  r = RunQuamba("generate -m x -p hi -n");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("found the end of the command line"));
}

TEST(CliTest, UnsupportedIsaOverrideIsRefused) {
  const CliResult r = RunQuamba("tokenize -m x -p y");  // sanity: runs without the override
  EXPECT_NE(r.code, 0);
  const std::string cmd = "QUAMBA_ISA=sse9 " + std::string(QM_CLI_PATH) + " inspect -m x 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 512> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  EXPECT_NE(pclose(p), 0);
  EXPECT_THAT(out, HasSubstr("QUAMBA_ISA: expected generic, avx2 or avx512, found \"sse9\""));
}

TEST(CliTest, SynthGenerateTokenizeInspectBench) {
  TempDir d;
  const std::string tok = testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json");
  CliResult r = RunQuamba("synth --shape custom --n-layer 2 --d-model 64 -o " + (d / "m") +
                 " --tokenizer " + tok);
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunQuamba("generate -m " + (d / "m") + " -p \"Hello world\" -n 8 --temp 0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::StartsWith("Hello world"));
  EXPECT_THAT(r.err, HasSubstr("generation: 8 tokens"));
  // Greedy decoding is deterministic; sampling with a seed too.
  EXPECT_EQ(RunQuamba("generate -m " + (d / "m") + " -p \"Hello world\" -n 8 --temp 0").out, r.out);
  const CliResult s1 = RunQuamba("generate -m " + (d / "m") + " -p Hi -n 8 --seed 5");
  EXPECT_EQ(RunQuamba("generate -m " + (d / "m") + " -p Hi -n 8 --seed 5").out, s1.out);
  r = RunQuamba("tokenize -m " + (d / "m") + " -p \"Hello world\" --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[12092, 1533]\n");  // "Hello", "Ġworld" in GPT-NeoX's vocabulary
  r = RunQuamba("inspect -m " + (d / "m") + " --tensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("backbone.layers.1.mixer.A_log"));
  // Rows come from the architecture's tensor list: role and quantization treatment.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("mixer.in_proj.weight +F32 +\\(256, 64\\) +in_proj "
                                              "+int8 linear"));
  r = RunQuamba("bench -m " + (d / "m") + " -p 8 -n 4 -r 2 -o json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"decode_tok_s\""));
  EXPECT_THAT(r.out, HasSubstr("\"peak_rss_bytes\""));
  EXPECT_THAT(r.out, HasSubstr("\"decode_vs_ceiling\""));

  // quantize: a bad --lm-head is a usage error before any work; a good one round-trips through
  // eval --simulate (bit-identical to int8: same top token everywhere) and bench --interleave.
  const std::string calib = testing::SharedData("calibration/pg1342-0.txt");
  r = RunQuamba("quantize -m " + (d / "m") + " -o " + (d / "q") + " --calib " + calib +
             " --lm-head int4");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--lm-head: expected keep, f16, bf16 or int8, found \"int4\""));
  EXPECT_FALSE(std::filesystem::exists(d / "q"));
  r = RunQuamba("quantize -m " + (d / "m") + " -o " + (d / "q") + " --calib " + calib +
             " --calib-samples 2 --calib-len 32 --lm-head int8 -q");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ofstream(d / "text.txt") << "It is a truth universally acknowledged, that a single man in "
                                   "possession of a good fortune, must be in want of a wife.";
  r = RunQuamba("eval -m " + (d / "q") + " --simulate --kld-ref " + (d / "q") + " --ppl " +
             (d / "text.txt") + " --ctx 16 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"same_top\": 1.0"));
  r = RunQuamba("bench -m " + (d / "m") + " -m " + (d / "q") + " -p 8 -n 4 -r 1 --interleave");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lm_head I8"));
  EXPECT_THAT(r.out, HasSubstr("(interleaved)"));
}

// eos_token_id beyond the embedding, with a tokenizer that has no <|endoftext|> to take its
// place, and an empty prompt (which starts from eos): a one-line error naming the field, not a
// "Bug: ... token id outside [0, vocab)" abort in the forward pass (item 3).
TEST(CliTest, EosBeyondTheVocabularyIsBadInput) {
  TempDir d;
  ASSERT_EQ(RunQuamba("synth --shape custom --n-layer 1 --d-model 16 --vocab 64 -o " + (d / "m"))
                .code,
            0);
  std::ofstream(d / "m/tokenizer.json")
      << "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}}";
  std::string cfg = testing::ReadAll(d / "m/config.json");
  cfg.replace(cfg.find("\"eos_token_id\": 0"), 17, "\"eos_token_id\": 64");
  std::ofstream(d / "m/config.json") << cfg;
  const CliResult r = RunQuamba("generate -m " + (d / "m") + " -p \"\" -n 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("config.json: eos_token_id: expected an id below vocab_size (64), "
                               "found 64"));
}

// A checkpoint bigger than the disk (or than memory, one tensor at a time) is refused before
// anything is written: it was an uncaught std::bad_alloc, or a write until the disk was full
// that left the temporary file behind (item 6).
TEST(CliTest, SynthTooBigForTheDiskIsRefusedUpFront) {
  TempDir d;
  // One 16 TiB embedding table; then 512 layers of 2^16 width: ~68 TB.
  for (const char* shape : {"--n-layer 1 --d-model 65536 --vocab 4194304",
                            "--n-layer 512 --d-model 65536"}) {
    const CliResult r = RunQuamba(std::string("synth --shape custom ") + shape + " -o " + (d / "m"));
    EXPECT_EQ(r.code, 1) << shape;
    EXPECT_THAT(r.err, HasSubstr("free on its filesystem")) << shape;
    EXPECT_LE(Lines(r.err), 2) << r.err;  // the size estimate, then the error
    EXPECT_TRUE(std::filesystem::is_empty(d.path())) << shape;  // nothing written, nothing left
  }
}

}  // namespace
}  // namespace quamba
