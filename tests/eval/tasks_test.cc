// Zero-shot task scoring as lm-evaluation-harness 0.4.2: templates, preprocessing, the
// (context, continuation) tokenization, and acc / acc_norm / perplexity bookkeeping, checked
// with a deterministic fake scorer whose right answers are known; plus the task files in
// ../shared/data (counts and first examples) and the loaders' one-line errors.
#include "eval/tasks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "eval/pystr.h"
#include "test_util.h"

namespace quamba {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using testing::TempDir;

const Tokenizer& NeoX() {
  static const Tokenizer* tok = [] {
    auto t = Tokenizer::Load(testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json"));
    QM_CHECK(t.ok(), "%s", t.status().message().c_str());
    return new Tokenizer(std::move(t).value());
  }();
  return *tok;
}
constexpr int32_t kEot = 0;  // GPT-NeoX "<|endoftext|>"

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Answers from a table keyed by the decoded (context, continuation) strings: it sees exactly
// what the model would, after lm-eval's whitespace move and tokenization.
class TableScorer : public LoglikScorer {
 public:
  std::map<std::pair<std::string, std::string>, LoglikResult> table;
  std::vector<std::pair<std::string, std::string>> seen;
  std::vector<std::vector<LoglikResult>> Score(std::span<const std::vector<LoglikRequest>> groups,
                                               const EvalProgressFn& progress) override {
    std::vector<std::vector<LoglikResult>> out;
    for (const auto& g : groups) {
      out.emplace_back();
      for (const LoglikRequest& r : g) {
        std::string ctx = NeoX().Decode(r.context);
        if (r.context == std::vector<int32_t>{kEot}) ctx = "";
        const std::string cont = NeoX().Decode(r.continuation);
        seen.emplace_back(ctx, cont);
        const auto it = table.find({ctx, cont});
        EXPECT_TRUE(it != table.end()) << "unexpected request (" << ctx << "|" << cont << ")";
        out.back().push_back(it == table.end() ? LoglikResult{} : it->second);
      }
    }
    if (progress) progress(groups.size(), groups.size());
    return out;
  }
};

TaskData Task(std::string name, TaskType type, bool acc_norm, std::vector<TaskDoc> docs) {
  TaskData t;
  t.name = std::move(name);
  t.type = type;
  t.has_acc_norm = acc_norm;
  t.docs = std::move(docs);
  return t;
}

// ---- Python string semantics -------------------------------------------------------------

TEST(PyStr, MatchesPython) {
  // Expected values from CPython 3.
  EXPECT_EQ(pystr::Strip(" x\u3000\u00a0"), "x");
  EXPECT_EQ(pystr::Strip("\t\n a b \r\x1f"), "a b");
  EXPECT_EQ(pystr::RStrip(" a \n"), " a");
  EXPECT_EQ(pystr::Len("\u00e9\u20acx"), 3);  // "é€x": 3 code points, 6 bytes
  EXPECT_EQ(pystr::Capitalize("the LADY in \u00c9COLE"), "The lady in \u00e9cole");
  EXPECT_EQ(pystr::Capitalize("\u00e9bc"), "\u00c9bc");
  EXPECT_EQ(pystr::Replace("a   b", "  ", " "), "a  b");  // one left-to-right pass
}

// ---- templates (each next to its lm-eval 0.4.2 definition in docs/eval.md) ----------------

TEST(Templates, Lambada) {
  EXPECT_THAT(LambadaDoc("The cat sat on the mat").requests,
              ElementsAre(Pair("The cat sat on the", " mat")));
  // text.split(' ') splits on single spaces: a double space leaves an empty word behind.
  EXPECT_THAT(LambadaDoc("a  b").requests, ElementsAre(Pair("a ", " b")));
  EXPECT_THAT(LambadaDoc("word").requests, ElementsAre(Pair("", " word")));
  EXPECT_THAT(LambadaDoc("line one\nline two").requests,
              ElementsAre(Pair("line one\nline", " two")));
}

TEST(Templates, HellaswagPreprocess) {
  // Expected values are hellaswag/utils.py preprocess() run in CPython.
  EXPECT_EQ(HellaswagPreprocess("Health: [header] How to use aromatherapy [title] Know what oils "
                                "help. [step] Clary sage helps."),
            "Health: How to use aromatherapy. Know what oils help. Clary sage helps.");
  EXPECT_EQ(HellaswagPreprocess("  See [find a good attorney | how to] now.  "), "See now.");
  EXPECT_EQ(HellaswagPreprocess("[substeps] Unless you   want [x"), " Unless you  want [x");
  EXPECT_EQ(HellaswagPreprocess("a [b] c [d\n] e"), "a c [d\n] e");
  const TaskDoc d = HellaswagDoc("Roof: A man. he", {"is up.", " [step] falls.", "x", "y"}, 3);
  EXPECT_EQ(d.requests[0], std::make_pair(std::string("Roof: A man. he"), std::string(" is up.")));
  EXPECT_EQ(d.requests[1].second, "  falls.");  // lm-eval keeps the space left by "[step]"
  EXPECT_EQ(d.choices[1], " falls.");
  EXPECT_EQ(d.gold, 3);
}

TEST(Templates, PiqaAndArc) {
  const TaskDoc p = PiqaDoc("How do I X?", "Do a.", "Do b.", 1);
  EXPECT_THAT(p.requests, ElementsAre(Pair("Question: How do I X?\nAnswer:", " Do a."),
                                      Pair("Question: How do I X?\nAnswer:", " Do b.")));
  EXPECT_THAT(p.choices, ElementsAre("Do a.", "Do b."));
  EXPECT_EQ(p.gold, 1);
  const TaskDoc a = ArcDoc("Why?", {"one", "two", "three"}, 2);
  EXPECT_THAT(a.requests, ElementsAre(Pair("Question: Why?\nAnswer:", " one"),
                                      Pair("Question: Why?\nAnswer:", " two"),
                                      Pair("Question: Why?\nAnswer:", " three")));
}

TEST(Templates, WinograndePartialScoring) {
  TaskDoc d;
  ASSERT_TRUE(WinograndeDoc("Sarah was a better surgeon than Maria so _ got the easier cases.",
                            "Sarah", "Maria", 1, &d));
  // The options go into the context; the shared rest of the sentence is the continuation.
  EXPECT_THAT(
      d.requests,
      ElementsAre(
          Pair("Sarah was a better surgeon than Maria so Sarah", " got the easier cases."),
          Pair("Sarah was a better surgeon than Maria so Maria", " got the easier cases.")));
  EXPECT_EQ(d.gold, 1);
  ASSERT_TRUE(WinograndeDoc("_ went home .  ", "He", "She", 0, &d));
  EXPECT_THAT(d.requests, ElementsAre(Pair("He", " went home ."), Pair("She", " went home .")));
  EXPECT_FALSE(WinograndeDoc("no blank here", "a", "b", 0, &d));
}

// ---- tokenization of a pair (lm-eval's _encode_pair) --------------------------------------

TEST(EncodeRequest, SplitsWholeEncodingAtTheContextLength) {
  const Tokenizer& tok = NeoX();
  LoglikRequest r = EncodeRequest(tok, "Hello", " world", kEot);
  EXPECT_EQ(r.context, (std::vector<int32_t>{12092}));
  EXPECT_EQ(r.continuation, (std::vector<int32_t>{1533}));  // "Ġworld"
  // The context's trailing space moves onto the continuation: same tokens as above.
  r = EncodeRequest(tok, "Hello ", "world", kEot);
  EXPECT_EQ(r.context, (std::vector<int32_t>{12092}));
  EXPECT_EQ(r.continuation, (std::vector<int32_t>{1533}));
  // Empty context: end-of-text, and the continuation encoded alone.
  r = EncodeRequest(tok, "", " world", kEot);
  EXPECT_EQ(r.context, (std::vector<int32_t>{kEot}));
  EXPECT_EQ(r.continuation, (std::vector<int32_t>{1533}));
  // The continuation is the tail of encode(context + continuation).
  r = EncodeRequest(tok, "Question: Why?\nAnswer:", " Because.", kEot);
  std::vector<int32_t> whole = r.context;
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
  EXPECT_EQ(whole, tok.Encode("Question: Why?\nAnswer: Because."));
  EXPECT_EQ(r.context, tok.Encode("Question: Why?\nAnswer:"));
}

// ---- bookkeeping with a fake scorer ------------------------------------------------------

TEST(Aggregate, AccAndAccNormDisagreeWhereLengthsDiffer) {
  // choice "a" (1 code point): ll -2 -> -2 per char; "bbbb" (4): ll -4 -> -1 per char.
  TaskDoc d = PiqaDoc("q", "a", "bbbb", 1);
  TaskData t = Task("piqa", TaskType::kMultipleChoice, true, {d, d});
  t.docs[1].gold = 0;
  const TaskResult r = AggregateTask(t, {{{-2, false}, {-4, false}}, {{-2, false}, {-4, false}}});
  EXPECT_THAT(r.pred, ElementsAre(0, 0));
  EXPECT_THAT(r.pred_norm, ElementsAre(1, 1));
  EXPECT_DOUBLE_EQ(r.acc, 0.5);
  EXPECT_DOUBLE_EQ(r.acc_norm, 0.5);
  EXPECT_DOUBLE_EQ(r.acc_stderr, std::sqrt(0.25 / 1));
  EXPECT_TRUE(r.has_acc_norm);
}

TEST(Aggregate, NormalisesByCodePointsNotBytesAndTiesGoFirst) {
  // "éé" is 2 code points (4 bytes), "abc" 3: -2/2 = -1 beats -3.3/3 = -1.1; per byte it would
  // be -0.5 vs -1.1, the same winner, so also check a case where bytes would flip it.
  TaskDoc d = ArcDoc("q", {"\u00e9\u00e9", "abc"}, 0);
  TaskData t = Task("arc_easy", TaskType::kMultipleChoice, true, {d});
  EXPECT_THAT(AggregateTask(t, {{{-2, 0}, {-3.3, 0}}}).pred_norm, ElementsAre(0));
  // -2.4/2 = -1.2 (code points) vs -3.3/3 = -1.1: choice 1; per byte -0.6 would pick choice 0.
  EXPECT_THAT(AggregateTask(t, {{{-2.4, 0}, {-3.3, 0}}}).pred_norm, ElementsAre(1));
  // Equal scores: np.argmax takes the first.
  EXPECT_THAT(AggregateTask(t, {{{-1, 0}, {-1, 0}}}).pred, ElementsAre(0));
}

TEST(Aggregate, StderrIsSampleStddevOverSqrtN) {
  TaskDoc d = PiqaDoc("q", "a", "b", 0);
  TaskData t = Task("piqa", TaskType::kMultipleChoice, true, {d, d, d, d});
  const LoglikResult hi{-1, false}, lo{-2, false};
  const TaskResult r = AggregateTask(t, {{hi, lo}, {hi, lo}, {hi, lo}, {lo, hi}});
  EXPECT_DOUBLE_EQ(r.acc, 0.75);
  EXPECT_DOUBLE_EQ(r.acc_stderr, std::sqrt(0.75 * 0.25 / 3));  // lm-eval mean_stderr
}

TEST(Aggregate, LambadaAccIsGreedyMatchAndPplIsPerDocument) {
  TaskData t = Task("lambada_openai", TaskType::kLoglikelihood, false,
                    {LambadaDoc("a b"), LambadaDoc("c d"), LambadaDoc("e f")});
  const TaskResult r = AggregateTask(t, {{{-1.0, true}}, {{-2.0, false}}, {{-6.0, true}}});
  EXPECT_DOUBLE_EQ(r.acc, 2.0 / 3);
  // perplexity aggregation: exp(-mean of the per-document target log-likelihoods).
  EXPECT_NEAR(r.ppl, std::exp(3.0), 1e-12);
  EXPECT_FALSE(r.has_acc_norm);
  EXPECT_TRUE(r.has_ppl);
}

TEST(RunTask, ScoresTheRequestsLmEvalWouldMake) {
  TableScorer s;
  s.table[{"Question: Pick?\nAnswer:", " yes"}] = {-1.0, true};
  s.table[{"Question: Pick?\nAnswer:", " no"}] = {-3.0, false};
  s.table[{"So Sarah", " left."}] = {-5.0, false};
  s.table[{"So Maria", " left."}] = {-4.0, false};
  s.table[{"The cat", " sat"}] = {-0.5, true};
  s.table[{"", " word"}] = {-2.5, false};
  s.table[{"a", "  b"}] = {-1.5, true};  // "a " + " b": the space moved to the continuation

  TaskData piqa = Task("piqa", TaskType::kMultipleChoice, true, {PiqaDoc("Pick?", "yes", "no", 0)});
  TaskResult r = RunTask(piqa, NeoX(), kEot, &s, nullptr);
  EXPECT_DOUBLE_EQ(r.acc, 1.0);

  TaskDoc w;
  ASSERT_TRUE(WinograndeDoc("So _ left.", "Sarah", "Maria", 0, &w));
  TaskData wino = Task("winogrande", TaskType::kMultipleChoice, false, {w});
  r = RunTask(wino, NeoX(), kEot, &s, nullptr);
  EXPECT_DOUBLE_EQ(r.acc, 0.0);  // Maria scored higher
  EXPECT_FALSE(r.has_acc_norm);

  TaskData lam = Task("lambada_openai", TaskType::kLoglikelihood, false,
                      {LambadaDoc("The cat sat"), LambadaDoc("word"), LambadaDoc("a  b")});
  r = RunTask(lam, NeoX(), kEot, &s, nullptr);
  EXPECT_DOUBLE_EQ(r.acc, 2.0 / 3);
  EXPECT_NEAR(r.ppl, std::exp((0.5 + 2.5 + 1.5) / 3), 1e-12);
}

// ---- loaders: hand-made files in the shared layout ---------------------------------------

TEST(LoadTask, ReadsEachLayout) {
  TempDir d;
  Write(d / "lambada/lambada_test.jsonl", "{\"text\": \"the end\"}\n\n{\"text\": \"x y z\"}\n");
  Write(d / "hellaswag/hellaswag_val_full.txt",
        "Act: ctx here. he\n2\nrun.\nsit.\n[step] jump.\nfly.\n"
        "Act2: c2\n0\na\nb\nc\nd\n");
  Write(d / "piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"s1\", \"sol2\": \"s2\"}\n");
  Write(d / "piqa/valid-labels.lst", "1\n");
  Write(d / "arc/ARC-Easy-Test.jsonl",
        "{\"id\": \"x\", \"question\": {\"stem\": \"Q?\", \"choices\": [{\"text\": \"A1\", "
        "\"label\": \"A\"}, {\"text\": \"B1\", \"label\": \"B\"}]}, \"answerKey\": \"B\"}\n");
  Write(d / "arc/ARC-Challenge-Test.jsonl",  // HF ai2_arc layout, numeric labels
        "{\"question\": \"Q2?\", \"choices\": {\"text\": [\"u\", \"v\", \"w\"], \"label\": "
        "[\"1\", \"2\", \"3\"]}, \"answerKey\": \"3\"}\n");
  Write(d / "winogrande/dev.jsonl",
        "{\"sentence\": \"A _ b.\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"2\"}\n");

  auto lam = LoadTask("lambada_openai", d.path(), 0);
  ASSERT_TRUE(lam.ok()) << lam.status().message();
  ASSERT_EQ(lam->docs.size(), 2u);
  EXPECT_THAT(lam->docs[1].requests, ElementsAre(Pair("x y", " z")));
  EXPECT_EQ(lam->type, TaskType::kLoglikelihood);
  EXPECT_EQ(LoadTask("lambada_openai", d.path(), 1)->docs.size(), 1u);  // --limit

  auto hs = LoadTask("hellaswag", d.path(), 0);
  ASSERT_TRUE(hs.ok()) << hs.status().message();
  ASSERT_EQ(hs->docs.size(), 2u);
  EXPECT_EQ(hs->docs[0].gold, 2);
  EXPECT_EQ(hs->docs[0].requests[0].first, "Act: ctx here. he");  // capitalisation lost
  EXPECT_EQ(hs->docs[0].requests[2].second, "  jump.");

  auto pq = LoadTask("piqa", d.path(), 0);
  ASSERT_TRUE(pq.ok()) << pq.status().message();
  EXPECT_EQ(pq->docs[0].gold, 1);
  EXPECT_EQ(pq->docs[0].requests[1].second, " s2");

  auto ae = LoadTask("arc_easy", d.path(), 0);
  ASSERT_TRUE(ae.ok()) << ae.status().message();
  EXPECT_EQ(ae->docs[0].gold, 1);
  EXPECT_EQ(ae->docs[0].requests[0].first, "Question: Q?\nAnswer:");
  auto ac = LoadTask("arc_challenge", d.path(), 0);
  ASSERT_TRUE(ac.ok()) << ac.status().message();
  EXPECT_EQ(ac->docs[0].gold, 2);
  EXPECT_EQ(ac->docs[0].requests.size(), 3u);

  auto wg = LoadTask("winogrande", d.path(), 0);
  ASSERT_TRUE(wg.ok()) << wg.status().message();
  EXPECT_EQ(wg->docs[0].gold, 1);
  EXPECT_THAT(wg->docs[0].requests, ElementsAre(Pair("A x", " b."), Pair("A y", " b.")));
}

TEST(LoadTask, HellaswagJsonlIsExactlyLmEvalsInput) {
  TempDir d;
  Write(d / "hellaswag/hellaswag_val.jsonl",
        "{\"activity_label\": \"Roof shingle removal\", \"ctx_a\": \"A man is sitting on a roof.\","
        " \"ctx_b\": \"he\", \"endings\": [\"is a.\", \"is b.\", \"is c.\", \"starts [step] d.\"],"
        " \"label\": 3}\n");
  auto hs = LoadTask("hellaswag", d.path(), 0);
  ASSERT_TRUE(hs.ok()) << hs.status().message();
  EXPECT_EQ(hs->docs[0].requests[0].first, "Roof shingle removal: A man is sitting on a roof. He");
  EXPECT_EQ(hs->docs[0].choices[3], "starts d.");
  EXPECT_EQ(hs->docs[0].gold, 3);
}

TEST(LoadTask, ErrorsNameFileLineFieldExpectedAndFound) {
  TempDir d;
  auto err = [&](const std::string& task) {
    auto t = LoadTask(task, d.path(), 0);
    return t.ok() ? std::string("ok") : t.status().message();
  };
  EXPECT_THAT(err("lambada_openai"),
              HasSubstr("lambada/lambada_test.jsonl: expected the lambada_openai data file, found "
                        "no such file"));
  EXPECT_THAT(err("mmlu"), HasSubstr("task: expected one of lambada_openai, hellaswag, piqa, "
                                     "arc_easy, arc_challenge, winogrande, found \"mmlu\""));
  Write(d / "lambada/lambada_test.jsonl", "{\"text\": \"a b\"}\n{\"text\": \"a b\"\n");
  EXPECT_THAT(
      err("lambada_openai"),
      HasSubstr("lambada_test.jsonl: line 2: expected valid JSON, found"));
  Write(d / "lambada/lambada_test.jsonl", "{\"txt\": \"a b\"}\n");
  EXPECT_THAT(
      err("lambada_openai"),
      HasSubstr("lambada_test.jsonl: line 1: text: expected a string, found no such field"));
  Write(d / "piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"s1\", \"sol2\": 7}\n");
  EXPECT_THAT(err("piqa"),
              HasSubstr("valid.jsonl: line 1: sol2: expected a string, found number 7"));
  Write(d / "piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"s1\", \"sol2\": \"s2\"}\n");
  EXPECT_THAT(err("piqa"), HasSubstr("piqa/valid-labels.lst: expected the piqa data file"));
  Write(d / "piqa/valid-labels.lst", "2\n");
  EXPECT_THAT(err("piqa"),
              HasSubstr("valid-labels.lst: line 1: expected a label 0..1, found \"2\""));
  Write(d / "arc/ARC-Easy-Test.jsonl",
        "{\"question\": {\"stem\": \"Q\", \"choices\": [{\"text\": \"t\", \"label\": \"A\"}]}, "
        "\"answerKey\": \"E\"}\n");
  EXPECT_THAT(err("arc_easy"),
              HasSubstr("line 1: answerKey: expected one of the choice labels (A), found \"E\""));
  Write(
      d / "winogrande/dev.jsonl",
      "{\"sentence\": \"no blank\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n");
  EXPECT_THAT(err("winogrande"), HasSubstr("line 1: sentence: expected a sentence with a \"_\""));
  Write(d / "winogrande/dev.jsonl",
        "{\"sentence\": \"a _\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n");
  Write(d / "winogrande/dev-labels.lst", "2\n");
  EXPECT_THAT(err("winogrande"), HasSubstr("line 1: answer: expected \"2\""));
  Write(d / "hellaswag/hellaswag_val_full.txt", "ctx\n7\na\nb\nc\nd\n");
  EXPECT_THAT(err("hellaswag"), HasSubstr("line 2: expected a gold label 0..3, found \"7\""));
  Write(d / "hellaswag/hellaswag_val_full.txt", "ctx\n1\na\n");
  EXPECT_THAT(err("hellaswag"), HasSubstr("expected 6 lines per task"));
}

// A label of 2^32 is not label 0 (get<int>() truncated it): out of range is an error (item 16).
TEST(LoadTask, HellaswagLabelOutOfRangeIsAnError) {
  TempDir d;
  const std::string line =
      "{\"activity_label\": \"A\", \"ctx_a\": \"b.\", \"ctx_b\": \"c\", "
      "\"endings\": [\"1\", \"2\", \"3\", \"4\"], \"label\": ";
  Write(d / "hellaswag/hellaswag_val.jsonl", line + "4294967296}\n");
  auto t = LoadTask("hellaswag", d.path(), 0);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("hellaswag_val.jsonl: line 1: label: expected an "
                                              "index into endings (0..3), found number "
                                              "4294967296"));
  Write(d / "hellaswag/hellaswag_val.jsonl", line + "3}\n");
  t = LoadTask("hellaswag", d.path(), 0);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->docs[0].gold, 3);
}

// A line whose value is nested 80,000 levels deep: a one-line error, not a stack overflow where
// the message would print the value.
TEST(LoadTask, DeeplyNestedLineIsAnError) {
  TempDir d;
  const std::string deep = std::string(80000, '[') + std::string(80000, ']');
  Write(d / "piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": " + deep + "}\n");
  auto t = LoadTask("piqa", d.path(), 0);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("valid.jsonl: line 1: expected JSON nested at most 64 levels deep"));
  Write(d / "piqa/valid.jsonl", deep + "\n");
  t = LoadTask("piqa", d.path(), 0);
  ASSERT_FALSE(t.ok());
  EXPECT_LT(t.status().message().size(), 300u);
}

// ---- the shared data files ---------------------------------------------------------------

TEST(SharedData, TaskSizesAndFirstExamples) {
  const std::string dir = QM_SHARED_DATA_DIR;
  const std::map<std::string, size_t> sizes = {{"lambada_openai", 5153}, {"hellaswag", 10042},
                                               {"piqa", 1838},           {"arc_easy", 2376},
                                               {"arc_challenge", 1172},  {"winogrande", 1267}};
  std::map<std::string, TaskData> tasks;
  for (const auto& [name, n] : sizes) {
    auto t = LoadTask(name, dir, 0);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->docs.size(), n) << name;
    for (const TaskDoc& doc : t->docs) {
      ASSERT_FALSE(doc.requests.empty()) << name;
      ASSERT_LT(doc.gold, static_cast<int>(doc.requests.size())) << name;
    }
    tasks[name] = std::move(t).value();
  }
  const TaskDoc& hs = tasks["hellaswag"].docs[0];
  EXPECT_EQ(hs.requests[3],
            std::make_pair(std::string("Roof shingle removal: A man is sitting on a roof. he"),
                           std::string(" starts pulling up roofing on a roof.")));
  EXPECT_EQ(hs.gold, 3);
  const TaskDoc& wg = tasks["winogrande"].docs[0];
  EXPECT_THAT(wg.requests, ElementsAre(Pair("Sarah was a much better surgeon than Maria so Sarah",
                                            " always got the easier cases."),
                                       Pair("Sarah was a much better surgeon than Maria so Maria",
                                            " always got the easier cases.")));
  EXPECT_EQ(wg.gold, 1);
  const TaskDoc& ae = tasks["arc_easy"].docs[0];
  EXPECT_EQ(ae.requests[0].first,
            "Question: Which statement best explains why photosynthesis is the foundation of most "
            "food webs?\nAnswer:");
  EXPECT_EQ(ae.gold, 0);
  const TaskDoc& pq = tasks["piqa"].docs[1];
  EXPECT_EQ(pq.requests[1].second, " finish, woodgrain with  bobby pin ");
  EXPECT_EQ(pq.gold, 1);
  EXPECT_EQ(LoadTask("piqa", dir, 3)->docs.size(), 3u);  // --limit
}

}  // namespace
}  // namespace quamba
