// `tokenize -f` and `generate -f`: prompts from a file or standard input, which carry what a
// command-line argument cannot (more than the 128 KiB argument limit, NUL bytes).
#include <gtest/gtest.h>

#include <fstream>

#include "io/tokenizer.h"
#include "test_util.h"

namespace quamba {
namespace {

using testing::RunQuamba;

TEST(PromptFileTest, TokenizeReadsFilesAndStdinBeyondTheArgumentLimit) {
  testing::TempDir dir;
  const std::string model = testing::SourcePath("models/mamba-ref-d256-l6");
  std::string text;
  while (text.size() < 300000) text += "In the beginning God created the heaven and the earth. ";
  text += std::string("nul\0byte", 8);
  std::ofstream(dir / "p.txt", std::ios::binary) << text;
  auto tok = Tokenizer::Load(model + "/tokenizer.json");
  ASSERT_TRUE(tok.ok());
  std::string want = "[";
  const std::vector<int32_t> ids = tok->Encode(text);
  for (size_t i = 0; i < ids.size(); ++i) want += (i ? ", " : "") + std::to_string(ids[i]);
  want += "]\n";
  const testing::CliResult f = RunQuamba("tokenize -m " + model + " --json -f " + (dir / "p.txt"));
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(f.out, want);
  // Standard input: RunQuamba gives /dev/null, so pipe through the shell here.
  const std::string cmd = std::string("cat ") + (dir / "p.txt") + " | " + QM_CLI_PATH +
                          " tokenize -m " + model + " --json -f - > " + (dir / "out");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(testing::ReadAll(dir / "out"), want);
}

TEST(PromptFileTest, ExactlyOneOfPromptAndFile) {
  const std::string model = testing::SourcePath("models/mamba-ref-d256-l6");
  for (const std::string cmd : {"tokenize", "generate"}) {
    const testing::CliResult both = RunQuamba(cmd + " -m " + model + " -p x -f -");
    EXPECT_EQ(both.code, 2) << cmd;
    EXPECT_EQ(both.err, "quamba: " + cmd + ": expected exactly one of -p TEXT and -f FILE, "
                        "found both\n");
    const testing::CliResult neither = RunQuamba(cmd + " -m " + model);
    EXPECT_EQ(neither.code, 2) << cmd;
    EXPECT_EQ(testing::Lines(neither.err), 1) << neither.err;
    const testing::CliResult missing = RunQuamba(cmd + " -m " + model + " -f /nonexistent/p");
    EXPECT_EQ(missing.code, 1) << cmd;
    EXPECT_NE(missing.err.find("/nonexistent/p"), std::string::npos) << missing.err;
  }
}

}  // namespace
}  // namespace quamba
