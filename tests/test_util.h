// Shared helpers for tests: temporary directories, data paths, file contents, and running the
// `quamba` CLI as a user would.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

// Wall-clock seconds (steady clock), for tests that bound how long something takes.
inline double NowSecondsForTest() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline std::string SharedData(const std::string& rel) {
  return std::string(QM_SHARED_DATA_DIR) + "/" + rel;
}
inline std::string SourcePath(const std::string& rel) {
  return std::string(QM_SOURCE_DIR) + "/" + rel;
}

// The whole file as bytes ("" if it cannot be read).
inline std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline int Lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// `quamba <args>` through the shell with stdin from /dev/null: exit code, stdout, stderr.
struct CliResult {
  int code;
  std::string out, err;
};
inline CliResult RunQuamba(const std::string& args) {
  TempDir d;
  const std::string cmd = std::string(QM_CLI_PATH) + " " + args + " </dev/null >" + (d / "out") +
                          " 2>" + (d / "err");
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, ReadAll(d / "out"), ReadAll(d / "err")};
}

}  // namespace quamba::testing
