// Memory-mapped files: the SIGBUS guard for a file that shrinks while in use.
#include "io/mapped_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "test_util.h"

namespace quamba {
namespace {

// Another program truncating a model file while generate runs made the next read of the lost
// pages a SIGBUS crash; with the guard (installed by the CLI) it is one line and exit code 1
// (item 18).
TEST(MappedFileGuardDeathTest, FileTruncatedWhileMappedIsOneLineAndExitOne) {
  testing::TempDir d;
  const std::string path = d / "model.safetensors";
  std::ofstream(path, std::ios::binary) << std::string(1 << 16, 'x');
  EXPECT_EXIT(
      {
        InstallMappedFileGuard();
        auto f = MappedFile::Open(path);
        if (!f.ok()) std::exit(3);
        if (::truncate(path.c_str(), 0) != 0) std::exit(4);
        volatile uint8_t byte = (*f)->data()[40000];  // a page the file no longer has
        (void)byte;
        std::exit(0);
      },
      ::testing::ExitedWithCode(1),
      "quamba: .*model.safetensors: expected the file to keep its size while in use, found it "
      "shorter");
}

}  // namespace
}  // namespace quamba
