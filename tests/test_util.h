// Shared helpers for tests: temporary directories, data paths.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace quamba::testing {

// A fresh directory under $TMPDIR removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "quamba_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string SharedData(const std::string& rel) {
  return std::string(QM_SHARED_DATA_DIR) + "/" + rel;
}
inline std::string SourcePath(const std::string& rel) {
  return std::string(QM_SOURCE_DIR) + "/" + rel;
}

}  // namespace quamba::testing
