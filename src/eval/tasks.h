// Zero-shot tasks scored as lm-evaluation-harness 0.4.2 (commit 4600d6b, the version Quamba
// pins) does: the same prompt templates, target delimiter " ", preprocessing, tokenization of
// (context, continuation) pairs (_encode_pair) and metrics (acc, acc_norm, LAMBADA perplexity,
// stderr). docs/eval.md sets each template next to lm-eval's definition.
//
// Three layers, each testable alone: a task's files -> TaskDocs (strings); strings -> token
// requests (EncodeRequest); a LoglikScorer's answers -> TaskResult (AggregateTask).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "eval/loglik.h"
#include "io/tokenizer.h"

namespace quamba {

enum class TaskType {
  kLoglikelihood,   // one request; acc = is_greedy, perplexity = exp(-mean logprob) (LAMBADA)
  kMultipleChoice,  // one request per choice; acc = argmax of logprob == gold
};

// One example, as lm-eval's requests for it.
struct TaskDoc {
  std::vector<std::pair<std::string, std::string>> requests;  // (context, continuation)
  std::vector<std::string> choices;  // lm-eval's doc_to_choice: its lengths normalise acc_norm
  int gold = 0;                      // index of the right request (multiple choice)
};

struct TaskData {
  std::string name;
  TaskType type = TaskType::kMultipleChoice;
  bool has_acc_norm = false;  // lm-eval reports acc_norm for this task
  std::string source;         // the file(s) read
  std::vector<TaskDoc> docs;
};

struct TaskResult {
  std::string task;
  int64_t n = 0;
  double acc = 0,
         acc_stderr = 0;  // stderr = sqrt(acc (1 - acc) / (n - 1)), lm-eval's; NaN if n < 2
  bool has_acc_norm = false;
  double acc_norm = 0, acc_norm_stderr = 0;
  bool has_ppl = false;               // LAMBADA: exp(-mean over docs of the target's logprob)
  double ppl = 0, ppl_stderr = 0;     // stderr: delta method (lm-eval bootstraps it)
  std::vector<int> pred, pred_norm;   // per doc: argmax of logprob / of logprob per code point
  std::vector<LoglikResult> lambada;  // per doc (loglikelihood tasks)
  int64_t non_finite = 0;             // requests whose log-likelihood is NaN or Inf (0 expected)
};

// lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande.
const std::vector<std::string>& KnownTasks();
bool IsKnownTask(std::string_view name);

// Reads task `name` from data_dir laid out as ../shared/data (lambada/lambada_test.jsonl,
// hellaswag/hellaswag_val_full.txt[.bz2] or hellaswag/hellaswag_val.jsonl, piqa/valid.jsonl +
// valid-labels.lst, arc/ARC-{Easy,Challenge}-Test.jsonl, winogrande/dev.jsonl [+ dev-labels.lst]).
// limit > 0 keeps the first `limit` docs (lm-eval's --limit). Errors name the file, the line, the
// field, what was expected and what was found.
// Where task files come from: the disk, or memory (tests, fuzzing).
struct TaskFiles {
  std::function<bool(const std::string& path)> exists;  // a regular file
  std::function<StatusOr<std::string>(const std::string& path)> read;
};
const TaskFiles& DiskTaskFiles();

StatusOr<TaskData> LoadTask(const std::string& name, const std::string& data_dir, int64_t limit,
                            const TaskFiles& files = DiskTaskFiles());

// Doc builders (the templates), public for tests.
TaskDoc LambadaDoc(std::string_view text);
std::string HellaswagPreprocess(std::string_view text);
// query: activity_label + ": " + ctx as lm-eval builds it before preprocess().
TaskDoc HellaswagDoc(std::string_view query, const std::vector<std::string>& endings, int gold);
TaskDoc PiqaDoc(std::string_view goal, std::string_view sol1, std::string_view sol2, int gold);
TaskDoc ArcDoc(std::string_view question, const std::vector<std::string>& choices, int gold);
// false if the sentence has no "_".
bool WinograndeDoc(std::string_view sentence, std::string_view option1, std::string_view option2,
                   int gold, TaskDoc* doc);

// lm-eval's tokenization of a (context, continuation) pair: trailing whitespace of the context
// moves to the continuation; then continuation = encode(context + continuation) minus the first
// len(encode(context)) tokens. An empty context becomes [eot].
LoglikRequest EncodeRequest(const Tokenizer& tok, std::string_view context,
                            std::string_view continuation, int32_t eot);

// Tokenizes, scores every request through `scorer` and aggregates.
TaskResult RunTask(const TaskData& task, const Tokenizer& tok, int32_t eot, LoglikScorer* scorer,
                   const EvalProgressFn& progress);

// Metrics from per-request results (results[d][i] answers task.docs[d].requests[i]).
TaskResult AggregateTask(const TaskData& task,
                         const std::vector<std::vector<LoglikResult>>& results);

}  // namespace quamba
