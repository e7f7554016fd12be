// Guards the ISA coverage of the kernel tests: every test defined in tests/kernels/ is a
// parameterised test instantiated for generic, avx2 and avx512 by name (an ISA this CPU lacks is
// reported as skipped, not dropped), except the few suites listed below that are not about one
// ISA's kernels. A suite instantiated over a shorter list, or a plain TEST that calls one table,
// makes this test fail.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "kernels/kernel_test_util.h"

namespace quamba::kernels {
namespace {

// Suites in tests/kernels/ that take no ISA parameter, and why.
const std::set<std::string> kIsaFreeSuites = {
    "CpuFeaturesTest",  // the detection itself, with forged masks for every ISA
    "IsaCoverageTest",  // this test
    "S4LayoutTest",     // the 4-bit weight layout as the oracle reads it (no 4-bit kernel yet)
};

TEST(IsaCoverageTest, EveryKernelTestRunsOnEveryIsa) {
  std::set<std::string> want;
  for (Isa isa : testing::AllIsas()) want.insert(IsaName(isa));
  ASSERT_EQ(want.size(), static_cast<size_t>(kNumIsas));

  const ::testing::UnitTest& u = *::testing::UnitTest::GetInstance();
  std::map<std::string, std::set<std::string>> isas_of;  // "Suite.Test" -> ISA names
  int n_tests = 0;
  for (int i = 0; i < u.total_test_suite_count(); ++i) {
    const ::testing::TestSuite* ts = u.GetTestSuite(i);
    for (int j = 0; j < ts->total_test_count(); ++j) {
      const ::testing::TestInfo* ti = ts->GetTestInfo(j);
      if (std::string(ti->file()).find("tests/kernels/") == std::string::npos) continue;
      ++n_tests;
      const std::string suite = ts->name();
      if (ti->value_param() == nullptr) {
        EXPECT_TRUE(kIsaFreeSuites.count(suite))
            << suite << "." << ti->name() << " (" << ti->file() << ":" << ti->line()
            << ") has no ISA parameter: derive from testing::IsaTest and instantiate over "
               "testing::AllIsas()";
        continue;
      }
      const std::string name = ti->name();
      const size_t slash = name.rfind('/');
      ASSERT_NE(slash, std::string::npos) << suite << "." << name;
      isas_of[suite + "." + name.substr(0, slash)].insert(name.substr(slash + 1));
    }
  }
  ASSERT_GT(n_tests, 0) << "no test from tests/kernels/ is registered";
  ASSERT_GE(isas_of.size(), 30u) << "fewer ISA-parameterised kernel tests than expected";
  for (const auto& [test, isas] : isas_of) {
    EXPECT_EQ(isas, want) << test << " is not instantiated for every ISA";
  }
  // Cases that will run: at least the generic one of every test (never an empty list).
  EXPECT_FALSE(testing::SupportedIsasOrFail().empty());
}

}  // namespace
}  // namespace quamba::kernels
