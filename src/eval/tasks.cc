#include "eval/tasks.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <functional>

#include "eval/bzip2.h"
#include "eval/pystr.h"
#include "io/json_util.h"
#include "io/mapped_file.h"

namespace quamba {
namespace {

using json = Json;

// ---- reading files -----------------------------------------------------------------------

StatusOr<std::string> ReadTaskFile(const TaskFiles& fs, const std::string& path,
                                   const std::string& task) {
  if (!fs.exists(path))
    return Status::Error(
        StrFormat("%s: expected the %s data file, found no such file (--data "
                  "DIR must follow the layout of docs/eval.md)",
                  path.c_str(), task.c_str()));
  return fs.read(path);
}

// Lines without their "\n" (and a "\r" before it); a final newline ends the last line.
std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t i = 0;
  while (i < text.size()) {
    size_t e = text.find('\n', i);
    if (e == std::string_view::npos) e = text.size();
    std::string_view l = text.substr(i, e - i);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lines.push_back(l);
    i = e + 1;
  }
  return lines;
}

std::string Quote(std::string_view s) {
  std::string q = s.size() > 40 ? std::string(s.substr(0, 40)) + "..." : std::string(s);
  return "\"" + q + "\"";
}

std::string Found(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) return "the string " + Quote(v.get<std::string>());
  std::string d = v.dump();
  if (d.size() > 40) d = d.substr(0, 40) + "...";
  return std::string(v.type_name()) + " " + d;
}

// Calls fn(line_no, object) for each non-blank line of a .jsonl file, up to `limit` records.
Status ForEachJsonl(const std::string& path, std::string_view text, int64_t limit,
                    const std::function<Status(int64_t, const json&)>& fn) {
  int64_t line_no = 0, records = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    if (pystr::Strip(line).empty()) continue;
    if (limit > 0 && records >= limit) break;
    auto obj = ParseJson(line, StrFormat("%s: line %lld", path.c_str(), (long long)line_no));
    if (!obj.ok()) return obj.status();
    if (!obj->is_object())
      return Status::Error(StrFormat("%s: line %lld: expected a JSON object, found %s",
                                     path.c_str(), (long long)line_no, Found(*obj).c_str()));
    QM_RETURN_IF_ERROR(fn(line_no, *obj));
    ++records;
  }
  return Status::Ok();
}

Status FieldError(const std::string& path, int64_t line, const std::string& field,
                  const std::string& expected, const std::string& found) {
  return Status::Error(StrFormat("%s: line %lld: %s: expected %s, found %s", path.c_str(),
                                 (long long)line, field.c_str(), expected.c_str(), found.c_str()));
}

Status GetString(const json& o, const char* key, const std::string& path, int64_t line,
                 std::string* out) {
  const auto it = o.find(key);
  if (it == o.end()) return FieldError(path, line, key, "a string", "no such field");
  if (!it->is_string()) return FieldError(path, line, key, "a string", Found(*it));
  *out = it->get<std::string>();
  return Status::Ok();
}

// One integer label per line (PIQA's valid-labels.lst, WinoGrande's dev-labels.lst).
StatusOr<std::vector<int>> ReadLabels(const TaskFiles& fs, const std::string& path,
                                      const std::string& task, int lo, int hi, int64_t want) {
  QM_ASSIGN_OR_RETURN(std::string text, ReadTaskFile(fs, path, task));
  std::vector<int> labels;
  int64_t line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    const std::string_view t = pystr::Strip(line);
    if (t.empty()) continue;
    if (static_cast<int64_t>(labels.size()) == want) break;
    if (t.size() != 1 || t[0] < '0' + lo || t[0] > '0' + hi)
      return Status::Error(StrFormat("%s: line %lld: expected a label %d..%d, found %s",
                                     path.c_str(), (long long)line_no, lo, hi, Quote(t).c_str()));
    labels.push_back(t[0] - '0');
  }
  if (static_cast<int64_t>(labels.size()) < want)
    return Status::Error(StrFormat("%s: expected %lld labels (one per example), found %zu",
                                   path.c_str(), (long long)want, labels.size()));
  return labels;
}

// ---- the tasks -----------------------------------------------------------------------------

StatusOr<TaskData> LoadLambada(const TaskFiles& fs, const std::string& dir, int64_t limit) {
  TaskData t{
      "lambada_openai", TaskType::kLoglikelihood, false, dir + "/lambada/lambada_test.jsonl", {}};
  QM_ASSIGN_OR_RETURN(std::string text, ReadTaskFile(fs, t.source, t.name));
  QM_RETURN_IF_ERROR(ForEachJsonl(t.source, text, limit, [&](int64_t line, const json& o) {
    std::string s;
    QM_RETURN_IF_ERROR(GetString(o, "text", t.source, line, &s));
    t.docs.push_back(LambadaDoc(s));
    return Status::Ok();
  }));
  return t;
}

// rowanz/hellaswag's hellaswag_val.jsonl (= HF "hellaswag" validation): exactly lm-eval's input.
StatusOr<TaskData> LoadHellaswagJsonl(const TaskFiles& fs, const std::string& path, int64_t limit) {
  TaskData t{"hellaswag", TaskType::kMultipleChoice, true, path, {}};
  QM_ASSIGN_OR_RETURN(std::string text, ReadTaskFile(fs, path, t.name));
  QM_RETURN_IF_ERROR(ForEachJsonl(path, text, limit, [&](int64_t line, const json& o) {
    std::string label, ctx_a, ctx_b;
    QM_RETURN_IF_ERROR(GetString(o, "activity_label", path, line, &label));
    QM_RETURN_IF_ERROR(GetString(o, "ctx_a", path, line, &ctx_a));
    QM_RETURN_IF_ERROR(GetString(o, "ctx_b", path, line, &ctx_b));
    const auto e = o.find("endings");
    if (e == o.end() || !e->is_array() || e->empty())
      return FieldError(path, line, "endings", "an array of strings",
                        e == o.end() ? "no such field" : Found(*e));
    std::vector<std::string> endings;
    for (const json& x : *e) {
      if (!x.is_string()) return FieldError(path, line, "endings", "an array of strings", Found(x));
      endings.push_back(x.get<std::string>());
    }
    // An integer or a one-digit string, checked in range before any narrowing (2^32 is not 0).
    const auto l = o.find("label");
    const int64_t last = static_cast<int64_t>(endings.size()) - 1;
    int64_t gold = -1;
    if (l != o.end() && !JsonIntIn(*l, 0, last, &gold)) gold = -1;
    if (l != o.end() && l->is_string() && l->get<std::string>().size() == 1)
      gold = l->get<std::string>()[0] - '0';
    if (gold < 0 || gold > last)
      return FieldError(path, line, "label",
                        StrFormat("an index into endings (0..%zu)", endings.size() - 1),
                        l == o.end() ? "no such field" : Found(*l));
    // utils.py process_docs: ctx = ctx_a + " " + ctx_b.capitalize().
    const std::string query = label + ": " + ctx_a + " " + pystr::Capitalize(ctx_b);
    t.docs.push_back(HellaswagDoc(query, endings, static_cast<int>(gold)));
    return Status::Ok();
  }));
  return t;
}

// klosax/hellaswag_text_data's hellaswag_val_full.txt: 6 lines a task (activity_label + ": " +
// ctx, gold label, 4 endings), already lightly preprocessed; ctx_b was not capitalised.
StatusOr<TaskData> LoadHellaswagText(const TaskFiles& fs, const std::string& path, bool bz2,
                                     int64_t limit) {
  TaskData t{"hellaswag", TaskType::kMultipleChoice, true, path, {}};
  QM_ASSIGN_OR_RETURN(std::string raw, ReadTaskFile(fs, path, t.name));
  std::string text;
  if (bz2) {
    QM_ASSIGN_OR_RETURN(text, Bzip2Decompress(raw, path));
  } else {
    text = std::move(raw);
  }
  const std::vector<std::string_view> lines = SplitLines(text);
  if (lines.size() % 6 != 0)
    return Status::Error(
        StrFormat("%s: expected 6 lines per task (context, label, 4 endings), "
                  "found %zu lines (not a multiple of 6)",
                  path.c_str(), lines.size()));
  for (size_t i = 0; i < lines.size(); i += 6) {
    if (limit > 0 && static_cast<int64_t>(t.docs.size()) >= limit) break;
    const std::string_view lab = lines[i + 1];
    if (lab.size() != 1 || lab[0] < '0' || lab[0] > '3')
      return Status::Error(StrFormat("%s: line %zu: expected a gold label 0..3, found %s",
                                     path.c_str(), i + 2, Quote(lab).c_str()));
    std::vector<std::string> endings;
    for (int k = 0; k < 4; ++k) endings.emplace_back(lines[i + 2 + k]);
    t.docs.push_back(HellaswagDoc(lines[i], endings, lab[0] - '0'));
  }
  return t;
}

StatusOr<TaskData> LoadHellaswag(const TaskFiles& fs, const std::string& dir, int64_t limit) {
  const std::string base = dir + "/hellaswag/";
  if (fs.exists(base + "hellaswag_val.jsonl"))
    return LoadHellaswagJsonl(fs, base + "hellaswag_val.jsonl", limit);
  if (fs.exists(base + "hellaswag_val_full.txt"))
    return LoadHellaswagText(fs, base + "hellaswag_val_full.txt", false, limit);
  return LoadHellaswagText(fs, base + "hellaswag_val_full.txt.bz2", true, limit);
}

StatusOr<TaskData> LoadPiqa(const TaskFiles& fs, const std::string& dir, int64_t limit) {
  TaskData t{"piqa", TaskType::kMultipleChoice, true, dir + "/piqa/valid.jsonl", {}};
  QM_ASSIGN_OR_RETURN(std::string text, ReadTaskFile(fs, t.source, t.name));
  std::vector<std::array<std::string, 3>> recs;
  QM_RETURN_IF_ERROR(ForEachJsonl(t.source, text, limit, [&](int64_t line, const json& o) {
    std::array<std::string, 3> r;
    QM_RETURN_IF_ERROR(GetString(o, "goal", t.source, line, &r[0]));
    QM_RETURN_IF_ERROR(GetString(o, "sol1", t.source, line, &r[1]));
    QM_RETURN_IF_ERROR(GetString(o, "sol2", t.source, line, &r[2]));
    recs.push_back(std::move(r));
    return Status::Ok();
  }));
  const std::string labels_path = dir + "/piqa/valid-labels.lst";
  QM_ASSIGN_OR_RETURN(std::vector<int> labels,
                      ReadLabels(fs, labels_path, t.name, 0, 1, static_cast<int64_t>(recs.size())));
  for (size_t i = 0; i < recs.size(); ++i)
    t.docs.push_back(PiqaDoc(recs[i][0], recs[i][1], recs[i][2], labels[i]));
  t.source += " + " + labels_path;
  return t;
}

// AI2's layout ({"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}) or HF
// ai2_arc's ({"question": str, "choices": {"text": [...], "label": [...]}, "answerKey"}).
StatusOr<TaskData> LoadArc(const TaskFiles& fs, const std::string& name, const std::string& file,
                           const std::string& dir, int64_t limit) {
  TaskData t{name, TaskType::kMultipleChoice, true, dir + "/arc/" + file, {}};
  const std::string& p = t.source;
  QM_ASSIGN_OR_RETURN(std::string text, ReadTaskFile(fs, p, t.name));
  QM_RETURN_IF_ERROR(ForEachJsonl(p, text, limit, [&](int64_t line, const json& o) {
    std::string question, key;
    std::vector<std::string> texts, labels;
    QM_RETURN_IF_ERROR(GetString(o, "answerKey", p, line, &key));
    const auto q = o.find("question");
    if (q == o.end())
      return FieldError(p, line, "question", "an object or a string", "no such field");
    auto read_choice = [&](const json& c, const char* field) -> Status {
      if (!c.is_object() || !c.contains("text") || !c["text"].is_string() || !c.contains("label") ||
          !c["label"].is_string())
        return FieldError(p, line, field, "{\"text\": string, \"label\": string}", Found(c));
      texts.push_back(c["text"].get<std::string>());
      labels.push_back(c["label"].get<std::string>());
      return Status::Ok();
    };
    if (q->is_object()) {
      QM_RETURN_IF_ERROR(GetString(*q, "stem", p, line, &question));
      const auto cs = q->find("choices");
      if (cs == q->end() || !cs->is_array() || cs->empty())
        return FieldError(p, line, "question.choices", "a non-empty array",
                          cs == q->end() ? "no such field" : Found(*cs));
      for (const json& c : *cs) QM_RETURN_IF_ERROR(read_choice(c, "question.choices"));
    } else if (q->is_string()) {
      question = q->get<std::string>();
      const auto cs = o.find("choices");
      const bool ok = cs != o.end() && cs->is_object() && cs->contains("text") &&
                      cs->contains("label") && cs->at("text").is_array() &&
                      cs->at("label").is_array() && !cs->at("text").empty() &&
                      cs->at("text").size() == cs->at("label").size();
      if (!ok)
        return FieldError(p, line, "choices", "{\"text\": [...], \"label\": [...]} of equal size",
                          cs == o.end() ? "no such field" : Found(*cs));
      for (size_t i = 0; i < cs->at("text").size(); ++i)
        QM_RETURN_IF_ERROR(read_choice(
            json{{"text", cs->at("text")[i]}, {"label", cs->at("label")[i]}}, "choices"));
    } else {
      return FieldError(p, line, "question", "an object or a string", Found(*q));
    }
    // doc_to_target: choices.label.index(answerKey).
    const auto it = std::find(labels.begin(), labels.end(), key);
    if (it == labels.end()) {
      std::string all;
      for (const auto& l : labels) all += (all.empty() ? "" : ", ") + l;
      return FieldError(p, line, "answerKey", "one of the choice labels (" + all + ")", Quote(key));
    }
    t.docs.push_back(ArcDoc(question, texts, static_cast<int>(it - labels.begin())));
    return Status::Ok();
  }));
  return t;
}

StatusOr<TaskData> LoadWinogrande(const TaskFiles& fs, const std::string& dir, int64_t limit) {
  TaskData t{"winogrande", TaskType::kMultipleChoice, false, dir + "/winogrande/dev.jsonl", {}};
  const std::string& p = t.source;
  QM_ASSIGN_OR_RETURN(std::string text, ReadTaskFile(fs, p, t.name));
  struct Rec {
    std::string sentence, option1, option2, answer;
    int64_t line;
  };
  std::vector<Rec> recs;
  QM_RETURN_IF_ERROR(ForEachJsonl(p, text, limit, [&](int64_t line, const json& o) {
    Rec r;
    r.line = line;
    QM_RETURN_IF_ERROR(GetString(o, "sentence", p, line, &r.sentence));
    QM_RETURN_IF_ERROR(GetString(o, "option1", p, line, &r.option1));
    QM_RETURN_IF_ERROR(GetString(o, "option2", p, line, &r.option2));
    if (o.contains("answer")) {
      QM_RETURN_IF_ERROR(GetString(o, "answer", p, line, &r.answer));
      if (r.answer != "1" && r.answer != "2")
        return FieldError(p, line, "answer", "\"1\" or \"2\"", Quote(r.answer));
    }
    recs.push_back(std::move(r));
    return Status::Ok();
  }));
  // The answer is in dev.jsonl (what HF's winogrande loader reads); dev-labels.lst, when
  // present, must agree, and supplies answers a jsonl lacks.
  const std::string labels_path = dir + "/winogrande/dev-labels.lst";
  const bool need_labels =
      std::any_of(recs.begin(), recs.end(), [](const Rec& r) { return r.answer.empty(); });
  std::vector<int> labels;
  if (need_labels || fs.exists(labels_path)) {
    QM_ASSIGN_OR_RETURN(
        labels, ReadLabels(fs, labels_path, t.name, 1, 2, static_cast<int64_t>(recs.size())));
    t.source += " + " + labels_path;
  }
  for (size_t i = 0; i < recs.size(); ++i) {
    const Rec& r = recs[i];
    int gold = r.answer.empty() ? labels[i] - 1 : r.answer[0] - '1';
    if (!labels.empty() && labels[i] - 1 != gold)
      return FieldError(
          p, r.line, "answer",
          StrFormat("\"%d\" (as line %zu of %s)", labels[i], i + 1, labels_path.c_str()),
          Quote(r.answer));
    TaskDoc d;
    if (!WinograndeDoc(r.sentence, r.option1, r.option2, gold, &d))
      return FieldError(p, r.line, "sentence", "a sentence with a \"_\" blank", Quote(r.sentence));
    t.docs.push_back(std::move(d));
  }
  return t;
}

// lm-eval's target_delimiter + continuation. (Built with append: GCC 12's -Wrestrict misfires
// on `" " + std::string(...)`.)
std::string Delimited(std::string_view s) {
  std::string out = " ";
  out.append(s);
  return out;
}

// lm-eval's mean_stderr of 0/1 scores: sample stddev / sqrt(n) = sqrt(p (1 - p) / (n - 1));
// undefined for one example (lm-eval prints "N/A").
double Stderr(double p, int64_t n) { return n > 1 ? std::sqrt(p * (1 - p) / (n - 1)) : NAN; }

// np.argmax: the first index of the maximum.
int ArgMax(const std::vector<double>& v) {
  int a = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[i] > v[a]) a = i;
  return a;
}

}  // namespace

const std::vector<std::string>& KnownTasks() {
  static const std::vector<std::string> k = {"lambada_openai", "hellaswag",     "piqa",
                                             "arc_easy",       "arc_challenge", "winogrande"};
  return k;
}

bool IsKnownTask(std::string_view name) {
  const auto& k = KnownTasks();
  return std::find(k.begin(), k.end(), name) != k.end();
}

const TaskFiles& DiskTaskFiles() {
  static const TaskFiles files{
      [](const std::string& path) {
        std::error_code ec;
        return std::filesystem::is_regular_file(path, ec);
      },
      [](const std::string& path) { return ReadFileToString(path); }};
  return files;
}

StatusOr<TaskData> LoadTask(const std::string& name, const std::string& dir, int64_t limit,
                            const TaskFiles& fs) {
  if (name == "lambada_openai") return LoadLambada(fs, dir, limit);
  if (name == "hellaswag") return LoadHellaswag(fs, dir, limit);
  if (name == "piqa") return LoadPiqa(fs, dir, limit);
  if (name == "arc_easy") return LoadArc(fs, name, "ARC-Easy-Test.jsonl", dir, limit);
  if (name == "arc_challenge") return LoadArc(fs, name, "ARC-Challenge-Test.jsonl", dir, limit);
  if (name == "winogrande") return LoadWinogrande(fs, dir, limit);
  std::string all;
  for (const auto& k : KnownTasks()) all += (all.empty() ? "" : ", ") + k;
  return Status::Error(
      StrFormat("task: expected one of %s, found \"%s\"", all.c_str(), name.c_str()));
}

// lambada_openai.yaml: doc_to_text "{{text.split(' ')[:-1]|join(' ')}}",
// doc_to_target "{{' '+text.split(' ')[-1]}}" (split on single spaces).
TaskDoc LambadaDoc(std::string_view text) {
  TaskDoc d;
  const size_t sp = text.rfind(' ');
  const std::string context = sp == std::string_view::npos ? "" : std::string(text.substr(0, sp));
  const std::string_view last = sp == std::string_view::npos ? text : text.substr(sp + 1);
  d.requests.emplace_back(context, Delimited(last));
  return d;
}

// hellaswag/utils.py preprocess(): strip, " [title]" -> ". ", drop "[...]" (non-greedy, within
// a line), then one pass of "  " -> " ".
std::string HellaswagPreprocess(std::string_view text) {
  std::string s = pystr::Replace(pystr::Strip(text), " [title]", ". ");
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;  // regex '.' stops at \n
      if (j < s.size() && s[j] == ']') {
        i = j;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return pystr::Replace(out, "  ", " ");
}

TaskDoc HellaswagDoc(std::string_view query, const std::vector<std::string>& endings, int gold) {
  TaskDoc d;
  const std::string ctx = HellaswagPreprocess(query);
  for (const std::string& e : endings) {
    d.choices.push_back(HellaswagPreprocess(e));
    d.requests.emplace_back(ctx, Delimited(d.choices.back()));
  }
  d.gold = gold;
  return d;
}

// piqa.yaml: "Question: {{goal}}\nAnswer:", choices [sol1, sol2].
TaskDoc PiqaDoc(std::string_view goal, std::string_view sol1, std::string_view sol2, int gold) {
  TaskDoc d;
  const std::string ctx = "Question: " + std::string(goal) + "\nAnswer:";
  for (std::string_view s : {sol1, sol2}) {
    d.choices.emplace_back(s);
    d.requests.emplace_back(ctx, Delimited(s));
  }
  d.gold = gold;
  return d;
}

// arc_easy.yaml: "Question: {{question}}\nAnswer:", choices = choices.text.
TaskDoc ArcDoc(std::string_view question, const std::vector<std::string>& choices, int gold) {
  TaskDoc d;
  const std::string ctx = "Question: " + std::string(question) + "\nAnswer:";
  for (const std::string& c : choices) {
    d.choices.push_back(c);
    d.requests.emplace_back(ctx, Delimited(c));
  }
  d.gold = gold;
  return d;
}

// preprocess_winogrande.py: the choices are the contexts (sentence up to "_" + option), the
// target is sentence after "_", stripped; lm-eval scores " " + target after each context.
bool WinograndeDoc(std::string_view sentence, std::string_view option1, std::string_view option2,
                   int gold, TaskDoc* doc) {
  const size_t idx = sentence.find('_');
  if (idx == std::string_view::npos) return false;
  const std::string target = Delimited(pystr::Strip(sentence.substr(idx + 1)));
  TaskDoc d;
  for (std::string_view opt : {option1, option2}) {
    d.choices.push_back(std::string(sentence.substr(0, idx)) + std::string(opt));
    d.requests.emplace_back(d.choices.back(), target);
  }
  d.gold = gold;
  *doc = std::move(d);
  return true;
}

LoglikRequest EncodeRequest(const Tokenizer& tok, std::string_view context,
                            std::string_view continuation, int32_t eot) {
  LoglikRequest r;
  if (context.empty()) {  // lm-eval: end-of-text as context
    r.context = {eot};
    r.continuation = tok.Encode(continuation);
    return r;
  }
  const std::string_view ctx = pystr::RStrip(context);
  const std::string cont = std::string(context.substr(ctx.size())) + std::string(continuation);
  const std::vector<int32_t> whole = tok.Encode(std::string(ctx) + cont);
  r.context = tok.Encode(ctx);
  const size_t n = std::min(r.context.size(), whole.size());
  r.continuation.assign(whole.begin() + n, whole.end());
  // A whitespace-only context encodes to nothing; the model still needs a first token.
  if (r.context.empty()) r.context = {eot};
  return r;
}

TaskResult RunTask(const TaskData& task, const Tokenizer& tok, int32_t eot, LoglikScorer* scorer,
                   const EvalProgressFn& progress) {
  const size_t n_docs = task.docs.size();
  std::vector<std::vector<LoglikRequest>> groups(n_docs);
  std::vector<std::vector<int>> where(n_docs);  // request index -> position in its group, or -1
  for (size_t d = 0; d < n_docs; ++d) {
    for (const auto& [ctx, cont] : task.docs[d].requests) {
      LoglikRequest r = EncodeRequest(tok, ctx, cont, eot);
      // An empty continuation scores nothing: logprob 0, greedy (as lm-eval's empty slice).
      where[d].push_back(r.continuation.empty() ? -1 : static_cast<int>(groups[d].size()));
      if (!r.continuation.empty()) groups[d].push_back(std::move(r));
    }
  }
  const auto scored = scorer->Score(groups, progress);
  std::vector<std::vector<LoglikResult>> results(n_docs);
  for (size_t d = 0; d < n_docs; ++d)
    for (int w : where[d]) results[d].push_back(w < 0 ? LoglikResult{} : scored[d][w]);
  return AggregateTask(task, results);
}

TaskResult AggregateTask(const TaskData& task,
                         const std::vector<std::vector<LoglikResult>>& results) {
  QM_CHECK(results.size() == task.docs.size(), "%zu results for %zu docs", results.size(),
           task.docs.size());
  TaskResult r;
  r.task = task.name;
  r.n = static_cast<int64_t>(task.docs.size());
  for (const auto& res : results)
    for (const LoglikResult& x : res) r.non_finite += !std::isfinite(x.logprob);
  if (r.n == 0) return r;
  if (task.type == TaskType::kLoglikelihood) {
    double hits = 0, sum = 0, sum_sq = 0;
    for (const auto& res : results) {
      QM_CHECK(res.size() == 1, "loglikelihood docs have one request");
      r.lambada.push_back(res[0]);
      hits += res[0].is_greedy;
      sum += res[0].logprob;
      sum_sq += res[0].logprob * res[0].logprob;
    }
    r.acc = hits / r.n;
    r.acc_stderr = Stderr(r.acc, r.n);
    r.has_ppl = true;
    const double mean = sum / r.n;
    r.ppl = std::exp(-mean);
    const double var = r.n > 1 ? std::max(0.0, (sum_sq - r.n * mean * mean) / (r.n - 1)) : NAN;
    r.ppl_stderr = r.ppl * std::sqrt(var / r.n);
    return r;
  }
  double hits = 0, hits_norm = 0;
  for (size_t d = 0; d < task.docs.size(); ++d) {
    const TaskDoc& doc = task.docs[d];
    QM_CHECK(results[d].size() == doc.requests.size(), "results per doc");
    std::vector<double> lls, norm;
    for (size_t i = 0; i < results[d].size(); ++i) {
      lls.push_back(results[d][i].logprob);
      // process_results: completion_len = len(choice) in code points, without the delimiter.
      norm.push_back(results[d][i].logprob / static_cast<double>(pystr::Len(doc.choices[i])));
    }
    r.pred.push_back(ArgMax(lls));
    r.pred_norm.push_back(ArgMax(norm));
    hits += r.pred.back() == doc.gold;
    hits_norm += r.pred_norm.back() == doc.gold;
  }
  r.acc = hits / r.n;
  r.acc_stderr = Stderr(r.acc, r.n);
  r.has_acc_norm = task.has_acc_norm;
  if (r.has_acc_norm) {
    r.acc_norm = hits_norm / r.n;
    r.acc_norm_stderr = Stderr(r.acc_norm, r.n);
  }
  return r;
}

}  // namespace quamba
