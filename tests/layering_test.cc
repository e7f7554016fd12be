// The layers of docs/DEVELOPERS.md, checked on the source tree: every `#include "dir/..."` of a
// file under src/<layer>/ or tools/ must name a layer it may depend on. Includes point one way:
//   tools -> serve -> eval, quant -> model -> format -> io, kernels -> core
// (format may use io; model may use format, io and kernels; quant and eval may use everything
// below them but not each other's internals; serve (the HTTP server) and capi (the C API) sit
// above eval and model, beside each other; kernels know nothing above core).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "test_util.h"

namespace quamba {
namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::set<std::string>>& Allowed() {
  static const std::map<std::string, std::set<std::string>> m = {
      {"core", {"core"}},
      {"io", {"io", "core"}},
      {"kernels", {"kernels", "core"}},
      {"format", {"format", "io", "core"}},
      {"model", {"model", "format", "kernels", "io", "core"}},
      {"quant", {"quant", "model", "format", "kernels", "io", "core"}},
      {"eval", {"eval", "model", "format", "kernels", "io", "core"}},
      {"serve", {"serve", "eval", "model", "format", "kernels", "io", "core"}},
      {"capi", {"capi", "eval", "model", "format", "kernels", "io", "core"}},
      {"tools", {"tools", "serve", "eval", "quant", "model", "format", "kernels", "io", "core"}},
  };
  return m;
}

// `#include "dir/rest"` -> "dir"; "" for any other line, and for includes without a folder
// (tools' "args.h", relative to the file's own folder). A plain parser: std::regex trips GCC 12's
// -Wmaybe-uninitialized inside libstdc++ under the sanitizer build's -O2 -Werror.
std::string IncludedDir(const std::string& line) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos || line[i] != '#') return "";
  i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string::npos || line.compare(i, 7, "include") != 0) return "";
  i = line.find_first_not_of(" \t", i + 7);
  if (i == std::string::npos || line[i] != '"') return "";
  const size_t close = line.find('"', i + 1);
  const size_t slash = line.find('/', i + 1);
  if (close == std::string::npos || slash == std::string::npos || slash > close) return "";
  return line.substr(i + 1, slash - i - 1);
}

// The layer a repository-relative path belongs to ("" if none).
std::string LayerOf(const fs::path& rel) {
  auto it = rel.begin();
  if (it == rel.end()) return "";
  const std::string top = (it++)->string();
  if (top == "tools") return "tools";
  if (top == "src" && it != rel.end()) return it->string();
  return "";
}

TEST(LayeringTest, IncludeParser) {
  EXPECT_EQ(IncludedDir("#include \"model/model.h\""), "model");
  EXPECT_EQ(IncludedDir("  #  include \"io/a/b.h\"  // why"), "io");
  EXPECT_EQ(IncludedDir("#include \"args.h\""), "");           // the file's own folder
  EXPECT_EQ(IncludedDir("#include <gtest/gtest.h>"), "");      // system headers
  EXPECT_EQ(IncludedDir("// #include \"quant/x.h\""), "");     // commented out
  EXPECT_EQ(IncludedDir("#include \"a.h\" // see b/c"), "");  // slash after the name
}

TEST(LayeringTest, IncludesPointDownward) {
  const fs::path root = testing::SourcePath("");
  int files = 0, includes = 0;
  for (const char* top : {"src", "tools"}) {
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      if (!e.is_regular_file()) continue;
      const std::string ext = e.path().extension().string();
      if (ext != ".h" && ext != ".cc" && ext != ".inc") continue;
      const fs::path rel = fs::relative(e.path(), root);
      const std::string layer = LayerOf(rel);
      auto allowed = Allowed().find(layer);
      ASSERT_NE(allowed, Allowed().end()) << rel << ": a folder that is no layer (" << layer
                                          << "); add it to docs/DEVELOPERS.md and this test";
      ++files;
      std::ifstream f(e.path());
      std::string line;
      int n = 0;
      while (std::getline(f, line)) {
        ++n;
        const std::string dep = IncludedDir(line);
        if (dep.empty()) continue;
        ++includes;
        EXPECT_TRUE(allowed->second.count(dep) > 0)
            << rel.string() << ":" << n << ": layer " << layer << " includes " << dep;
      }
    }
  }
  // A walk that saw nothing proves nothing.
  EXPECT_GT(files, 100);
  EXPECT_GT(includes, 200);
}

}  // namespace
}  // namespace quamba
