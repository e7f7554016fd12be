// OutputDir: the rules for writing a whole output directory (io/output_dir.h), below the CLI.
#include "io/output_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;
using testing::ReadAll;
using testing::TempDir;
namespace fs = std::filesystem;

OutputDirOptions Options(bool force = false) {
  OutputDirOptions o;
  o.command = "test";
  o.force = force;
  o.outputs = {"a.txt", "b.txt"};
  o.is_earlier_output = [](const std::string& d) { return fs::exists(d + "/a.txt"); };
  return o;
}

TEST(OutputDirTest, OverlapIsCheckedOnResolvedPaths) {
  TempDir d;
  fs::create_directories(d / "in/sub");
  fs::create_directory_symlink(d / "in", d / "link");
  const std::vector<std::string> in = {d / "in"};
  EXPECT_TRUE(CheckNoOverlap(d / "out", in, "-o").ok());
  EXPECT_TRUE(CheckNoOverlap(d / "in2", in, "-o").ok());  // a common prefix is not a parent
  EXPECT_THAT(CheckNoOverlap(d / "in/", in, "-o").message(), HasSubstr("the same path as"));
  EXPECT_THAT(CheckNoOverlap(d / "link", in, "-o").message(), HasSubstr("the same path as"));
  EXPECT_THAT(CheckNoOverlap(d / "in/sub/../x", in, "-o").message(), HasSubstr("inside"));
  EXPECT_THAT(CheckNoOverlap(d / "link/new", in, "-o").message(), HasSubstr("inside"));
  EXPECT_THAT(CheckNoOverlap(d.path(), in, "-o").message(), HasSubstr("holding"));
}

TEST(OutputDirTest, NewOutputAppearsWhole) {
  TempDir d;
  {
    auto o = OutputDir::Create(d / "p/q/out", Options());
    ASSERT_TRUE(o.ok()) << o.status().message();
    EXPECT_TRUE(fs::is_directory(d / "p/q"));
    std::ofstream((*o)->tmp() + "/a.txt") << "new";
    EXPECT_FALSE(fs::exists(d / "p/q/out"));  // nothing at the output until Commit
    ASSERT_TRUE((*o)->Commit().ok());
  }
  EXPECT_EQ(ReadAll(d / "p/q/out/a.txt"), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(d / "p/q"), {}), 1);
  // Not committed: the temporary folder and the parents made for it go.
  {
    auto o = OutputDir::Create(d / "x/y/out", Options());
    ASSERT_TRUE(o.ok());
  }
  EXPECT_FALSE(fs::exists(d / "x"));
}

TEST(OutputDirTest, ForceReplacesOnlyAnEarlierOutputAndOnlyOnCommit) {
  TempDir d;
  fs::create_directory(d / "out");
  std::ofstream(d / "out/a.txt") << "old";
  EXPECT_THAT(OutputDir::Create(d / "out", Options()).status().message(),
              HasSubstr("expected a new output directory, found an existing one"));
  {
    auto o = OutputDir::Create(d / "out", Options(true));
    ASSERT_TRUE(o.ok()) << o.status().message();
    std::ofstream((*o)->tmp() + "/a.txt") << "new";
    EXPECT_EQ(ReadAll(d / "out/a.txt"), "old");  // still there while the new one is written
  }
  EXPECT_EQ(ReadAll(d / "out/a.txt"), "old");  // no Commit: the earlier output stays
  {
    auto o = OutputDir::Create(d / "out/", Options(true));
    ASSERT_TRUE(o.ok()) << o.status().message();
    std::ofstream((*o)->tmp() + "/a.txt") << "new";
    ASSERT_TRUE((*o)->Commit().ok());
  }
  EXPECT_EQ(ReadAll(d / "out/a.txt"), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path()), {}), 1);
  std::ofstream(d / "out/mine.txt") << "x";  // a file the command does not write
  EXPECT_THAT(OutputDir::Create(d / "out", Options(true)).status().message(),
              HasSubstr("found \"mine.txt\" too"));
  fs::remove(d / "out/mine.txt");
  fs::remove(d / "out/a.txt");  // not recognised as an earlier output any more
  EXPECT_THAT(OutputDir::Create(d / "out", Options(true)).status().message(),
              HasSubstr("found a directory test did not write"));
  std::ofstream(d / "file") << "x";
  EXPECT_THAT(OutputDir::Create(d / "file", Options(true)).status().message(),
              HasSubstr("found a file"));
  EXPECT_THAT(OutputDir::Create(d / "file/out", Options()).status().message(),
              HasSubstr("expected a directory to create the output in, found the file"));
}

}  // namespace
}  // namespace quamba
