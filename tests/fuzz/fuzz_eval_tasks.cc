#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "eval/tasks.h"
#include "fuzz/fuzz_targets.h"

namespace quamba::fuzz {
namespace {

struct Layout {
  const char* task;
  const char* file;    // under the data directory
  const char* labels;  // the second file, or nullptr
};
constexpr Layout kLayouts[] = {
    {"lambada_openai", "lambada/lambada_test.jsonl", nullptr},
    {"hellaswag", "hellaswag/hellaswag_val.jsonl", nullptr},
    {"hellaswag", "hellaswag/hellaswag_val_full.txt", nullptr},
    {"hellaswag", "hellaswag/hellaswag_val_full.txt.bz2", nullptr},
    {"piqa", "piqa/valid.jsonl", "piqa/valid-labels.lst"},
    {"arc_easy", "arc/ARC-Easy-Test.jsonl", nullptr},
    {"arc_challenge", "arc/ARC-Challenge-Test.jsonl", nullptr},
    {"winogrande", "winogrande/dev.jsonl", "winogrande/dev-labels.lst"},
};

}  // namespace

int FuzzEvalTasks(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Layout& l = kLayouts[data[0] % std::size(kLayouts)];
  std::string main(reinterpret_cast<const char*>(data + 1), size - 1), labels;
  if (const size_t cut = main.find("\n=====\n"); cut != std::string::npos) {
    labels = main.substr(cut + 7);
    main.resize(cut);
  }
  std::map<std::string, std::string> files = {{std::string("d/") + l.file, main}};
  if (l.labels != nullptr) files[std::string("d/") + l.labels] = labels;
  const TaskFiles fs{[&](const std::string& p) { return files.count(p) > 0; },
                     [&](const std::string& p) -> StatusOr<std::string> {
                       const auto it = files.find(p);
                       if (it == files.end()) return Status::Error(p + ": cannot open");
                       return it->second;
                     }};
  auto task = LoadTask(l.task, "d", 0, fs);
  if (!task.ok()) return 0;
  // Every doc must be one the scoring accepts: one result per request.
  std::vector<std::vector<LoglikResult>> results;
  for (const TaskDoc& d : task->docs) results.emplace_back(d.requests.size());
  (void)AggregateTask(*task, results);
  return 0;
}

}  // namespace quamba::fuzz
