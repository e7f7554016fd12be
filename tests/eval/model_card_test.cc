// Agreement with the reference models' cards (Mamba-1 and Mamba-2): the validation loss each
// states (measured by scripts/train_reference.py on out/corpus/valid.txt) is what `quamba eval`
// gives on the same text with the same windows. The training script scores non-overlapping targets with 256-token
// input windows: window w feeds ids[256w, 256w + 256) from a zero state and predicts
// ids[256w + 1, 256w + 257), for w < (N - 1) / 256. That is `eval -c 257 --ppl-stride 256`:
// windows of 257 tokens starting every 256, each scoring its 256 predictions.
//
// The validation text is rebuilt by scripts/build_corpus.py from Debian packages
// (bible-kjv-text, fortunes, dict-gcide; scripts/install_deps.sh installs them) and checked
// against the sha256 the card states.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace quamba {
namespace {

constexpr double kCardValLoss = 3.4186;  // models/mamba-ref-d256-l6/README.md, 4 decimals
constexpr const char* kValidSha256 =
    "89eb8fb68a10b71038dfa9178e6ff564c88bb6a5493d84991ccc20a11ef8304f";

TEST(ModelCardTest, ValidationLossIsReproducedByEval) {
  testing::TempDir dir;
  const std::string corpus = dir / "corpus";
  const std::string build = "/usr/bin/python3 " + testing::SourcePath("scripts/build_corpus.py") +
                            " --out " + corpus + " > " + (dir / "log") + " 2>&1";
  ASSERT_EQ(std::system(build.c_str()), 0)
      << "scripts/build_corpus.py failed (needs Debian's bible-kjv-text, fortunes and "
         "dict-gcide: scripts/install_deps.sh):\n"
      << testing::ReadAll(dir / "log");
  const std::string sha_cmd = "sha256sum " + corpus + "/valid.txt > " + (dir / "sha");
  ASSERT_EQ(std::system(sha_cmd.c_str()), 0);
  ASSERT_EQ(testing::ReadAll(dir / "sha").substr(0, 64), kValidSha256)
      << "valid.txt differs from the one the card was measured on";

  // Each card states its loss in the training script's windowing (-c 257 --ppl-stride 256);
  // the Mamba-2 card also in quamba eval's default non-overlapping windows (-c 256).
  struct Case {
    const char* model;
    const char* windows;
    double card_nll;
  };
  for (const Case& c : {Case{"models/mamba-ref-d256-l6", "-c 257 --ppl-stride 256", kCardValLoss},
                        Case{"models/mamba2-ref-d256-l6", "-c 257 --ppl-stride 256", 3.6527},
                        Case{"models/mamba2-ref-d256-l6", "-c 256", 3.6535}}) {
    SCOPED_TRACE(std::string(c.model) + " " + c.windows);
    const testing::CliResult r = testing::RunQuamba("eval -m " + testing::SourcePath(c.model) +
                                                    " --ppl " + corpus + "/valid.txt " +
                                                    c.windows + " -t 2 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const double nll = j.at("nll").get<double>();
    // The cards round to 4 decimals; float32 vs the training run's float32 differ by ~1e-5.
    EXPECT_NEAR(nll, c.card_nll, 1e-3);
    EXPECT_EQ(j.at("windows").get<int64_t>(), 256);
    std::printf("%s %s: eval nll %.5f nats/token (card %.4f), ppl %.4f\n", c.model, c.windows,
                nll, c.card_nll, j.at("ppl").get<double>());
  }
}

}  // namespace
}  // namespace quamba
