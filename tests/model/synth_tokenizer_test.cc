// `synth` writes a byte-level tokenizer by default, so the README's synth example can go on to
// `generate`: every byte string encodes to one id per byte and decodes back.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/tokenizer.h"
#include "model/synth.h"
#include "test_util.h"

namespace quamba {
namespace {

// Every shape `synth --help` lists resolves, to the official layer count and width
// (quamba2-spec §1.1; Mamba-2 reuses Mamba-1's table: 1.3b = 48 x 2048 like mamba-1.4b);
// the other family's names do not.
TEST(SynthShapeTest, EveryListedShapeResolves) {
  struct Want {
    const char* name;
    int64_t n_layer, d_model;
    Arch arch;
  };
  for (const Want w : {Want{"mamba-130m", 24, 768, Arch::kMamba1},
                       Want{"mamba-370m", 48, 1024, Arch::kMamba1},
                       Want{"mamba-790m", 48, 1536, Arch::kMamba1},
                       Want{"mamba-1.4b", 48, 2048, Arch::kMamba1},
                       Want{"mamba-2.8b", 64, 2560, Arch::kMamba1},
                       Want{"mamba2-130m", 24, 768, Arch::kMamba2},
                       Want{"mamba2-370m", 48, 1024, Arch::kMamba2},
                       Want{"mamba2-780m", 48, 1536, Arch::kMamba2},
                       Want{"mamba2-1.3b", 48, 2048, Arch::kMamba2},
                       Want{"mamba2-2.7b", 64, 2560, Arch::kMamba2}}) {
    MambaConfig c;
    ASSERT_TRUE(SynthShape(w.name, &c)) << w.name;
    EXPECT_EQ(c.n_layer, w.n_layer) << w.name;
    EXPECT_EQ(c.d_model, w.d_model) << w.name;
    EXPECT_EQ(c.arch, w.arch) << w.name;
  }
  MambaConfig c;
  for (const char* bad : {"mamba2-1.4b", "mamba2-790m", "mamba2-2.8b", "mamba-1.3b", "mamba-780m",
                          "mamba-2.7b", "mamba3-130m", ""})
    EXPECT_FALSE(SynthShape(bad, &c)) << bad;
}

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
