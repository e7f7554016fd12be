// The CLI as a user meets it: exit codes, one-line errors, --help on every subcommand, and a
// real generate/tokenize/synth/inspect/bench run on a tiny synthetic model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/model.h"
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
  {
    // The state one sequence carries: Model::StateBytes() of this checkpoint.
    const auto rows = nlohmann::json::parse(r.out);
    auto m = Model::Load(d / "m");
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(rows.at(0).at("state_bytes_per_seq").get<uint64_t>(), (*m)->StateBytes());
    EXPECT_GT((*m)->StateBytes(), 0u);
  }

  // quantize: a bad --lm-head is a usage error before any work; a good one round-trips through
  // eval --simulate (bit-identical to int8: same top token everywhere) and bench --interleave.
  const std::string calib = testing::SharedData("calibration/pg1342-0.txt");
  r = RunQuamba("quantize -m " + (d / "m") + " -o " + (d / "q") + " --calib " + calib +
             " --lm-head int4");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--lm-head: expected keep, f16, bf16 or int8 (w4: the 4-bit "
                               "recipes quamba2-w4* only), found \"int4\""));
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
    const CliResult r =
        RunQuamba(std::string("synth --shape custom ") + shape + " -o " + (d / "m"));
    EXPECT_EQ(r.code, 1) << shape;
    EXPECT_THAT(r.err, HasSubstr("free on its filesystem")) << shape;
    EXPECT_LE(Lines(r.err), 2) << r.err;  // the size estimate, then the error
    EXPECT_TRUE(std::filesystem::is_empty(d.path())) << shape;  // nothing written, nothing left
  }
}

// ---- output directories (items 8-11): never delete what the tool did not write, never let the
// output overlap the input, remove nothing before the new output is in place.

class OutputDirCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const CliResult r = RunQuamba("synth --shape custom --n-layer 1 --d-model 32 -o " + M() +
                                  " --tokenizer " +
                                  testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string M() { return *dir_ / "m"; }
  // The dynamic recipe needs no calibration: quick.
  static CliResult Quantize(const std::string& model, const std::string& out,
                            const std::string& extra = "") {
    return RunQuamba("quantize -m " + model + " -o " + out + " --recipe dynamic -q " + extra);
  }
  static std::vector<std::string> Names(const std::string& dir) {
    std::vector<std::string> v;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
  static TempDir* dir_;
};
TempDir* OutputDirCliTest::dir_ = nullptr;

const std::vector<std::string> kQuantizeFiles = {"config.json", "model.safetensors",
                                                 "quantization_config.json", "tokenizer.json"};

// -o EXISTING/ --force made its temporary folder inside EXISTING, then deleted EXISTING with
// it and wrote nothing (item 8).
TEST_F(OutputDirCliTest, TrailingSlashIsTheSameDirectory) {
  TempDir d;
  ASSERT_EQ(Quantize(M(), d / "q").code, 0);
  CliResult r = Quantize(M(), d / "q/", "--force");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Names(d.path()), std::vector<std::string>{"q"});  // no temporary folder left
  EXPECT_EQ(Names(d / "q"), kQuantizeFiles);
  // A folder quantize did not write is never replaced, slash or not.
  std::filesystem::create_directory(d / "other");
  std::ofstream(d / "other/keep.txt") << "mine";
  r = Quantize(M(), d / "other/", "--force");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--force: expected an earlier quantize output holding only"));
  EXPECT_EQ(testing::ReadAll(d / "other/keep.txt"), "mine");
}

// -m DIR -o DIR --force replaced the float model itself; -o DIR/ deleted it (items 8, 9).
TEST_F(OutputDirCliTest, OutputIsNeverTheInput) {
  const std::string before = testing::ReadAll(M() + "/model.safetensors");
  for (const std::string& out : {M(), M() + "/", M() + "/q"}) {
    const CliResult r = Quantize(M(), out, "--force");
    EXPECT_EQ(r.code, 1) << out;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr("expected an output apart from every input")) << out;
  }
  EXPECT_EQ(Names(M()), (std::vector<std::string>{"config.json", "model.safetensors",
                                                  "tokenizer.json"}));
  EXPECT_TRUE(testing::ReadAll(M() + "/model.safetensors") == before);  // untouched
}

// -m P/model -o P --force deleted all of P: unrelated files and the input (item 10).
TEST_F(OutputDirCliTest, OutputNeverHoldsTheInput) {
  TempDir p;
  std::filesystem::copy(M(), p / "model");
  std::ofstream(p / "notes.txt") << "unrelated";
  const CliResult r = Quantize(p / "model", p.path(), "--force");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("found it holding the input"));
  EXPECT_EQ(Names(p.path()), (std::vector<std::string>{"model", "notes.txt"}));
  EXPECT_EQ(Names(p / "model").size(), 3u);
}

// synth -o EXISTING_MODEL_DIR overwrote a model without asking (item 11).
TEST_F(OutputDirCliTest, SynthNeverOverwritesAModel) {
  TempDir d;
  ASSERT_EQ(Quantize(M(), d / "q").code, 0);
  const std::string q = testing::ReadAll(d / "q/model.safetensors");
  CliResult r = RunQuamba("synth --shape custom --n-layer 1 --d-model 16 -o " + (d / "q"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("expected a new output directory, found an existing one"));
  r = RunQuamba("synth --shape custom --n-layer 1 --d-model 16 --force -o " + (d / "q"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--force: expected an earlier synth output holding only "
                               "config.json, model.safetensors and tokenizer.json, found "
                               "\"quantization_config.json\" too"));
  EXPECT_TRUE(testing::ReadAll(d / "q/model.safetensors") == q);  // untouched
  // A float model with the same file names, not written by synth (no synth seed in its
  // metadata): kept too.
  std::filesystem::create_directory(d / "hf");
  std::filesystem::copy_file(M() + "/config.json", d / "hf/config.json");
  {
    auto st = TensorStore::Open(M());
    ASSERT_TRUE(st.ok());
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, t] : (*st)->tensors())
      tensors.push_back({name, t.dtype, t.shape, t.data, nullptr});
    ASSERT_TRUE(WriteSafeTensors(d / "hf/model.safetensors", tensors, {{"format", "pt"}}).ok());
  }
  r = RunQuamba("synth --shape custom --n-layer 1 --d-model 16 --force -o " + (d / "hf"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--force: expected an earlier synth output, found a directory "
                               "synth did not write"));
  // An earlier synth output is replaced with --force.
  ASSERT_EQ(RunQuamba("synth --shape custom --n-layer 1 --d-model 16 -o " + (d / "s")).code, 0);
  r = RunQuamba("synth --shape custom --n-layer 1 --d-model 16 --seed 9 --force -o " + (d / "s"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Names(d.path()), (std::vector<std::string>{"hf", "q", "s"}));
}

// Missing parents are created; folders get the usual permissions (not mkdtemp's 0700); a
// temporary folder left by a killed run is removed by the next one.
TEST_F(OutputDirCliTest, ParentsPermissionsAndLeftovers) {
  TempDir d;
  const mode_t old_mask = ::umask(022);
  CliResult r = Quantize(M(), d / "a/b/q");
  ::umask(old_mask);
  ASSERT_EQ(r.code, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat((d / "a/b/q").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  // A process id that is not running, and a folder holding only what quantize writes.
  pid_t dead = 4194303;
  while (::kill(dead, 0) == 0 || errno != ESRCH) --dead;
  const std::string left = d / ("a/b/q2.tmp-" + std::to_string(dead) + "-Ab12Cd");
  std::filesystem::create_directory(left);
  std::ofstream(left + "/model.safetensors") << "partial";
  std::filesystem::create_directory(d / "a/b/q2.tmp-zz99yy");  // not of this version: reported
  r = Quantize(M(), d / "a/b/q2");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("removed " + left + ", left by an interrupted run"));
  EXPECT_THAT(r.err, HasSubstr("q2.tmp-zz99yy alone"));
  EXPECT_EQ(Names(d / "a/b"), (std::vector<std::string>{"q", "q2", "q2.tmp-zz99yy"}));
  // A failed run leaves neither its temporary folder nor the parents it made.
  r = RunQuamba("quantize -m " + M() + " -o " + (d / "x/y/q") + " --recipe minmax -q --calib " +
                (d / "none.txt"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("none.txt: cannot open"));
  EXPECT_FALSE(std::filesystem::exists(d / "x"));
}

// One NaN in a weight: quantize said "wrote" and made a model every command then refused;
// generate made 0 tokens and eval printed "ppl -nan", both exiting 0. Every command that turns
// logits into an answer now names the tensor (item 12).
TEST_F(OutputDirCliTest, NonFiniteWeightsAreNamed) {
  TempDir d;
  std::filesystem::copy(M(), d / "nan");
  {
    auto st = TensorStore::Open(M());
    ASSERT_TRUE(st.ok());
    std::vector<std::vector<uint8_t>> keep;
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, t] : (*st)->tensors()) {
      keep.emplace_back(t.data, t.data + t.nbytes);
      if (name == "backbone.layers.0.mixer.in_proj.weight") {
        const float nan = std::nanf("");
        std::memcpy(keep.back().data() + 4 * 77, &nan, 4);
      }
      tensors.push_back({name, t.dtype, t.shape, keep.back().data(), nullptr});
    }
    ASSERT_TRUE(WriteSafeTensors(d / "nan/model.safetensors", tensors, (*st)->metadata()).ok());
  }
  const std::string named =
      "tensor \"backbone.layers.0.mixer.in_proj.weight\": expected finite values, found nan at "
      "element 77";
  CliResult r = Quantize(d / "nan", d / "q");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(named));
  EXPECT_FALSE(std::filesystem::exists(d / "q"));
  r = RunQuamba("generate -m " + (d / "nan") + " -p Hello -n 4");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr(named));
  std::ofstream(d / "text.txt") << "It is a truth universally acknowledged, that a single man in "
                                   "possession of a good fortune, must be in want of a wife.";
  r = RunQuamba("eval -m " + (d / "nan") + " --ppl " + (d / "text.txt") + " --ctx 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr(named));
  std::filesystem::create_directories(d / "data/piqa");
  std::ofstream(d / "data/piqa/valid.jsonl") << "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n";
  std::ofstream(d / "data/piqa/valid-labels.lst") << "1\n";
  r = RunQuamba("eval -m " + (d / "nan") + " --tasks piqa --data " + (d / "data"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr(named));
}

// A model folder whose name is not valid UTF-8: the JSON reports replace the bytes (U+FFFD)
// instead of throwing nlohmann's type_error 316 after all the work.
TEST_F(OutputDirCliTest, JsonReportsOfANonUtf8PathAreWritten) {
  TempDir d;
  const std::string m = d / "m\xff";
  std::filesystem::copy(M(), m);
  std::ofstream(d / "text.txt") << "It is a truth universally acknowledged, that a single man.";
  CliResult r = RunQuamba("eval -m '" + m + "' --ppl " + (d / "text.txt") + " --ctx 8 --json");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("m\xEF\xBF\xBD\""));
  r = RunQuamba("bench -m '" + m + "' -p 4 -n 2 -r 1 -o json");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("m\xEF\xBF\xBD\""));
}

// quamba2-w4ax: without a layout it is one line and no output; --a16-layers prints the
// measured sensitivity and the chosen layout, and the model loads with it.
TEST(W4AXCliTest, LayoutIsRequiredAndPrinted) {
  testing::TempDir d;
  const std::string base = "quantize -m " + testing::SourcePath("models/mamba-ref-d256-l6") +
                           " --recipe quamba2-w4ax --calib " +
                           testing::SharedData("calibration/pg1342-0.txt") +
                           " --calib-samples 2 --calib-len 128 -q -o ";
  CliResult r = RunQuamba(base + (d / "q"));
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(Lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("expected one of --layer-config FILE or --a16-layers K, found "
                               "neither"));
  EXPECT_FALSE(std::filesystem::exists(d / "q"));
  r = RunQuamba(base + (d / "q") + " --a16-layers 1 --sens-samples 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("quantize: w4ax layer sensitivity (KLD from the float model: all "
                               "W4A16 "));
  EXPECT_THAT(r.err, HasSubstr("quantize: w4ax layout (layer:precision): 0:W4A"));
  r = RunQuamba("inspect -m " + (d / "q") + " --tensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("W4AX g128: 1 of 6 layers A16"));
  // The A16 layer's conv stays float, the A8 layers' is int8; in_proj is 4-bit in both.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("mixer.conv1d.weight +F32 +\\(512, 1, 4\\) "
                                              "+conv1d.weight +float"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("mixer.conv1d.weight +I8 +\\(512, 1, 4\\) "
                                              "+conv1d.weight +int8 \\+ scale"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("mixer.in_proj.weight +U8 .* +4-bit \\+ group "
                                              "scales"));
}

}  // namespace
}  // namespace quamba
