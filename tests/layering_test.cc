// The layers of docs/DEVELOPERS.md, checked on the source tree: every `#include "dir/..."` of a
// file under src/<layer>/ or tools/ must name a layer it may depend on. Includes point one way:
//   tools -> eval, quant -> model -> format -> io, kernels -> core
// (format may use io; model may use format, io and kernels; quant and eval may use everything
// below them but not each other's internals; kernels know nothing above core).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
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
      {"tools", {"tools", "eval", "quant", "model", "format", "kernels", "io", "core"}},
  };
  return m;
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

TEST(LayeringTest, IncludesPointDownward) {
  const fs::path root = testing::SourcePath("");
  const std::regex inc(R"(^\s*#\s*include\s+"([^"/]+)/[^"]+")");
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
        std::smatch m;
        if (!std::regex_search(line, m, inc)) continue;
        const std::string dep = m[1].str();
        // Includes relative to the file's own folder (tools' "args.h") have no slash: skipped.
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
