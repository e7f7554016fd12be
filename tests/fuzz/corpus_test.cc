// Replays every file of tests/fuzz/corpus/<target>/ through its fuzz target: the seeds, and every
// input a fuzzer once crashed on, stay regression tests in both ctest builds (fuzz_targets.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <ostream>
#include <string>

#include "fuzz/fuzz_targets.h"
#include "test_util.h"

namespace quamba::fuzz {
namespace {

class FuzzCorpusTest : public ::testing::TestWithParam<FuzzTarget> {};

}  // namespace

// ctest lists the target by name, not as bytes.
void PrintTo(const FuzzTarget& t, std::ostream* os) { *os << t.name; }

namespace {

TEST_P(FuzzCorpusTest, EveryCorpusFileRunsClean) {
  const std::string dir = testing::SourcePath("tests/fuzz/corpus/") + GetParam().name;
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string bytes = testing::ReadAll(e.path().string());
    SCOPED_TRACE(e.path().string());
    EXPECT_EQ(GetParam().run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
    ++files;
  }
  EXPECT_GT(files, 0) << "no seeds in " << dir;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpusTest, ::testing::ValuesIn(kFuzzTargets),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace quamba::fuzz
