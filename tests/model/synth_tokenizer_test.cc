// `synth` writes a byte-level tokenizer by default, so the README's synth example can go on to
// `generate`: every byte string encodes to one id per byte and decodes back.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/tokenizer.h"
#include "model/synth.h"
#include "test_util.h"

namespace quamba {
namespace {

TEST(SynthTokenizerTest, ByteLevelTokenizerRoundTripsEveryByte) {
  auto tok = Tokenizer::FromJson(ByteLevelTokenizerJson(), "synth tokenizer");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->vocab_size(), 257);
  EXPECT_EQ(tok->eos_id(), 0);
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  all += "Hello, world! ünïcödé";
  const std::vector<int32_t> ids = tok->Encode(all);
  ASSERT_EQ(ids.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(ids[i], static_cast<uint8_t>(all[i]) + 1) << i;
  EXPECT_EQ(tok->Decode(ids), all);
  EXPECT_EQ(tok->Encode("<|endoftext|>"), std::vector<int32_t>{0});
}

TEST(SynthTokenizerTest, SynthThenGenerateWorks) {
  testing::TempDir dir;
  const testing::CliResult s = testing::RunQuamba(
      "synth --shape custom --n-layer 1 --d-model 32 --vocab 300 -o " + (dir / "m"));
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "m/tokenizer.json"));
  const testing::CliResult g =
      testing::RunQuamba("generate -m " + (dir / "m") + " -p hello -n 4 --temp 0");
  EXPECT_EQ(g.code, 0) << g.err;
  const testing::CliResult none = testing::RunQuamba(
      "synth --shape custom --n-layer 1 --d-model 32 --vocab 300 --tokenizer none -o " +
      (dir / "n"));
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "n/tokenizer.json"));
}

}  // namespace
}  // namespace quamba
