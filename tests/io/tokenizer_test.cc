// Tokenizer tests. Expected ids are written as the vocabulary entries they stand for, so each case
// shows why: e.g. "Hello  world" -> {"Hello", "  ", "world"} says that the two spaces are
// GPT-NeoX's added token, matched before pre-tokenization. Every expectation here (and the corpus
// fingerprints below) was cross-checked against Hugging Face `tokenizers` 0.23.2;
// tests/io/tokenizer_reference.js recomputes the fingerprints.
#include "io/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "io/unicode.h"
#include "test_util.h"

namespace quamba {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kNeoxPath = testing::SharedData("tokenizer/gpt-neox-20b/tokenizer.json");

const Tokenizer& Neox() {
  static const Tokenizer* tok = [] {
    auto t = Tokenizer::Load(kNeoxPath);
    QM_CHECK(t.ok(), "%s", t.status().message().c_str());
    return new Tokenizer(std::move(t).value());
  }();
  return *tok;
}

// The ids of the given token texts (as spelled in the vocabulary or added_tokens).
Ids Tok(const Tokenizer& tok, std::initializer_list<std::string_view> texts) {
  Ids ids;
  for (std::string_view t : texts) {
    const int32_t id = tok.TokenId(t);
    EXPECT_GE(id, 0) << "no token " << std::string(t);
    ids.push_back(id);
  }
  return ids;
}
Ids Tok(std::initializer_list<std::string_view> texts) { return Tok(Neox(), texts); }

// FNV-1a over ids as uint32, with 0xFFFFFFFF after each text (as tokenizer_reference.js).
struct Fingerprint {
  uint64_t hash = 0xcbf29ce484222325ull;
  size_t tokens = 0;
  void Mix(uint32_t v) {
    hash ^= v;
    hash *= 0x100000001b3ull;
  }
  void Add(const Ids& ids) {
    for (int32_t id : ids) Mix(static_cast<uint32_t>(id));
    Mix(0xFFFFFFFFu);
    tokens += ids.size();
  }
};

std::vector<std::string> LambadaTexts() {
  std::ifstream in(testing::SharedData("lambada/lambada_test.jsonl"), std::ios::binary);
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) texts.push_back(json::parse(line).at("text").get<std::string>());
  }
  return texts;
}

// ---- GPT-NeoX-20B: vocabulary ----

TEST(NeoxTokenizer, Vocabulary) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.vocab_size(), 50277);  // 50254 vocab entries + 23 added tokens
  EXPECT_EQ(tok.eos_id(), 0);
  EXPECT_EQ(tok.TokenId("<|endoftext|>"), 0);
  EXPECT_EQ(tok.TokenId("<|padding|>"), 1);
  EXPECT_EQ(tok.TokenId("Ġworld"), 1533);
  EXPECT_EQ(tok.TokenId("  "), 50276);  // added token: two spaces
  EXPECT_EQ(tok.TokenId(std::string(24, ' ')), 50254);
  EXPECT_EQ(tok.TokenId(" world"), -1);  // vocab entries are spelled in the byte-level alphabet
  EXPECT_EQ(tok.TokenId("no such token"), -1);
}

// ---- GPT-NeoX-20B: hand-checked encodings ----

TEST(NeoxTokenizer, EmptyString) { EXPECT_EQ(Neox().Encode(""), Ids{}); }

TEST(NeoxTokenizer, Spaces) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode(" "), Tok({"Ġ"}));
  EXPECT_EQ(tok.Encode(" Hello"), Tok({"ĠHello"}));      // ` ?\p{L}+` keeps the space
  EXPECT_EQ(tok.Encode("Hello "), Tok({"Hello", "Ġ"}));  // trailing space: `\s+(?!\S)`
  EXPECT_EQ(tok.Encode("Hello world"), Tok({"Hello", "Ġworld"}));
  // Runs of 2..24 spaces are added tokens, split off before the regex sees them, so the word
  // after them has no "Ġ" (a pattern-only tokenizer would give "Ġ", "Ġworld").
  EXPECT_EQ(tok.Encode("Hello  world"), Tok({"Hello", "  ", "world"}));
  EXPECT_EQ(tok.Encode("Hello   world"), Tok({"Hello", "   ", "world"}));
  EXPECT_EQ(tok.Encode("   "), Tok({"   "}));
  // Leftmost-longest: 25 spaces are the 24-space token, then " b".
  EXPECT_EQ(tok.Encode("a" + std::string(25, ' ') + "b"), Tok({"a", std::string(24, ' '), "Ġb"}));
  EXPECT_EQ(tok.Encode(std::string(30, ' ')), Tok({std::string(24, ' '), std::string(6, ' ')}));
}

TEST(NeoxTokenizer, Newlines) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode("\n"), Tok({"Ċ"}));
  EXPECT_EQ(tok.Encode("\n\n"), Tok({"ĊĊ"}));  // a whitespace run that ends the text stays whole
  // Before a word, `\s+(?!\S)` gives back the last newline, which `\s+` then takes alone.
  EXPECT_EQ(tok.Encode("a\n\nb"), Tok({"a", "Ċ", "Ċ", "b"}));
  EXPECT_EQ(tok.Encode("a\r\nb"), Tok({"a", "č", "Ċ", "b"}));
  EXPECT_EQ(tok.Encode("line\r\n"), Tok({"line", "čĊ"}));
  EXPECT_EQ(tok.Encode("a \nb"), Tok({"a", "Ġ", "Ċ", "b"}));
  EXPECT_EQ(tok.Encode("\tx"), Tok({"ĉ", "x"}));
  EXPECT_EQ(tok.Encode("\t x"), Tok({"ĉ", "Ġx"}));  // the space given back joins the word
}

TEST(NeoxTokenizer, Digits) {
  const Tokenizer& tok = Neox();
  // GPT-NeoX keeps a digit run as one pre-token (`\p{N}+`) and its merges build multi-digit
  // tokens, so numbers are not split per digit.
  EXPECT_EQ(tok.Encode("12345"), Tok({"12345"}));
  EXPECT_EQ(tok.Encode("1234567890"), Tok({"12345", "678", "90"}));
  EXPECT_EQ(tok.Encode(" 42"), Tok({"Ġ42"}));
  EXPECT_EQ(tok.Encode("3.14159"), Tok({"3", ".", "14", "159"}));
  EXPECT_EQ(tok.Encode("2024-01-01"), Tok({"20", "24", "-", "01", "-", "01"}));
  // Letters and digits never share a pre-token.
  EXPECT_EQ(tok.Encode("x1y2"), Tok({"x", "1", "y", "2"}));
}

TEST(NeoxTokenizer, Contractions) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode("it's"), Tok({"it", "'s"}));
  EXPECT_EQ(tok.Encode("can't"), Tok({"can", "'t"}));
  EXPECT_EQ(tok.Encode("we're"), Tok({"we", "'re"}));
  EXPECT_EQ(tok.Encode("I've"), Tok({"I", "'ve"}));
  EXPECT_EQ(tok.Encode("I'm"), Tok({"I", "'m"}));
  EXPECT_EQ(tok.Encode("you'll"), Tok({"you", "'ll"}));
  EXPECT_EQ(tok.Encode("he'd"), Tok({"he", "'d"}));
  // The contraction alternatives are case-sensitive: "'T" is punctuation, then a letter.
  EXPECT_EQ(tok.Encode("DON'T"), Tok({"DON", "'", "T"}));
  EXPECT_EQ(tok.Encode("IT'S"), Tok({"IT", "'", "S"}));
  // A punctuation run is greedy: the second quote is taken before "'s" can match.
  EXPECT_EQ(tok.Encode("''s"), Tok({"''", "s"}));
  EXPECT_EQ(tok.Encode(" 's"), Tok({"Ġ'", "s"}));
}

TEST(NeoxTokenizer, Punctuation) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode("Hello, world!"), Tok({"Hello", ",", "Ġworld", "!"}));
  EXPECT_EQ(tok.Encode("(a)"), Tok({"(", "a", ")"}));
  EXPECT_EQ(tok.Encode("..."), Tok({"..."}));
  EXPECT_EQ(tok.Encode(" !?"), Tok({"Ġ!", "?"}));
  EXPECT_EQ(tok.Encode("«quote»"), Tok({"Â«", "quote", "Â»"}));
}

TEST(NeoxTokenizer, EmojiAndCjk) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode("😀"), Tok({"ðŁ", "ĺ", "Ģ"}));  // F0 9F 98 80
  EXPECT_EQ(tok.Encode("👍🏽"), Tok({"ðŁ", "ĳ", "į", "ðŁ", "ı", "½"}));
  EXPECT_EQ(tok.Encode("I ❤ you"), Tok({"I", "Ġâ", "Ŀ", "¤", "Ġyou"}));
  EXPECT_EQ(tok.Encode("日本語"), Tok({"æĹ¥æľ¬", "èª", "ŀ"}));
  EXPECT_EQ(tok.Encode("中文 text"), Tok({"ä¸Ń", "æĸĩ", "Ġtext"}));
  EXPECT_EQ(tok.Encode("한국어"), Tok({"íķľ", "ê", "µ", "Ń", "ìĸ´"}));
}

TEST(NeoxTokenizer, NfcNormalization) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode("e\u0301"), Tok({"Ã©"}));  // composed to U+00E9 before anything else
  EXPECT_EQ(tok.Encode("\u00e9"), Tok({"Ã©"}));
  EXPECT_EQ(tok.Encode("Cafe\u0301 au lait"), Tok({"C", "af", "Ã©", "Ġau", "Ġla", "it"}));
  EXPECT_EQ(tok.Encode("\u212b"), Tok({"Ãħ"}));  // ANGSTROM SIGN -> U+00C5
}

TEST(NeoxTokenizer, UnicodeWhitespace) {
  const Tokenizer& tok = Neox();
  // U+00A0, U+3000 and U+0085 are White_Space: a lone one before a word is its own pre-token.
  EXPECT_EQ(tok.Encode("\u00a0x"), Tok({"Âł", "x"}));
  EXPECT_EQ(tok.Encode("a\u3000b"), Tok({"a", "ãĢĢ", "b"}));
  EXPECT_EQ(tok.Encode("x\u0085y"), Tok({"x", "Âħ", "y"}));
  // U+200B is a format character (not \s, not a letter): its own pre-token too.
  EXPECT_EQ(tok.Encode("a\u200bb"), Tok({"a", "âĢĭ", "b"}));
}

TEST(NeoxTokenizer, SpecialTokensInText) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.Encode("<|endoftext|>"), Ids{0});
  EXPECT_EQ(tok.Encode("a<|endoftext|>b"), Tok({"a", "<|endoftext|>", "b"}));
  EXPECT_EQ(tok.Encode("Hi <|endoftext|> there"), Tok({"Hi", "Ġ", "<|endoftext|>", "Ġthere"}));
  EXPECT_EQ(tok.Encode("<|endoftext|><|endoftext|>"), (Ids{0, 0}));
  EXPECT_EQ(tok.Encode("<|padding|>"), Ids{1});
  EXPECT_EQ(tok.Encode("<|endoftext"), Tok({"<", "|", "end", "of", "text"}));  // incomplete
}

TEST(NeoxTokenizer, InvalidUtf8) {
  const Tokenizer& tok = Neox();
  // An invalid byte is its own unit, classed like U+FFFD (neither letter, digit nor space), and
  // maps through the byte-level alphabet: Latin-1 "é" (E9) is the token "é", not "Ã©", and it
  // does not join the letters around it.
  EXPECT_EQ(tok.Encode("caf\xe9 au lait"), Tok({"c", "af", "é", "Ġau", "Ġla", "it"}));
  // Truncated U+20AC: two stray bytes, merged as bytes ("âĤ" is a vocabulary entry).
  EXPECT_EQ(tok.Encode("\xe2\x82x"), Tok({"âĤ", "x"}));
  // A surrogate (ED A0 80) is three invalid bytes, one pre-token with the punctuation after it.
  const Ids surrogate = tok.Encode("\xed\xa0\x80!");
  EXPECT_EQ(tok.Decode(surrogate), "\xed\xa0\x80!");
  // Bytes that never occur in UTF-8 (C0 C1 F5..FF) have no token in GPT-NeoX: they become U+FFFD.
  EXPECT_EQ(tok.Encode("a\xff"), Tok({"a", "ï¿½"}));
  EXPECT_EQ(tok.Encode("a\xff"), tok.Encode("a\uFFFD"));
  EXPECT_EQ(tok.Decode(tok.Encode("\xc0\xaf")), "\uFFFD\xaf");
}

// ---- GPT-NeoX-20B: decoding ----

TEST(NeoxTokenizer, DecodeTokens) {
  const Tokenizer& tok = Neox();
  EXPECT_EQ(tok.DecodeToken(0), "<|endoftext|>");
  EXPECT_EQ(tok.DecodeToken(tok.TokenId("Ġworld")), " world");
  EXPECT_EQ(tok.DecodeToken(tok.TokenId("Ċ")), "\n");
  EXPECT_EQ(tok.DecodeToken(50276), "  ");
  EXPECT_EQ(tok.DecodeToken(50277), "");  // models pad the vocabulary past the last token
  EXPECT_EQ(tok.DecodeToken(-1), "");
  // Streaming: one emoji spans three tokens; each decodes to its raw (partial UTF-8) bytes.
  const Ids emoji = tok.Encode("😀");
  ASSERT_EQ(emoji.size(), 3u);
  EXPECT_EQ(tok.DecodeToken(emoji[0]), "\xf0\x9f");
  EXPECT_EQ(tok.DecodeToken(emoji[1]), "\x98");
  EXPECT_EQ(tok.DecodeToken(emoji[2]), "\x80");
  const Ids padded = {tok.TokenId("Hello"), 50279, tok.TokenId("Ġworld")};
  EXPECT_EQ(tok.Decode(padded), "Hello world");
}

TEST(NeoxTokenizer, RoundTripHandPicked) {
  const Tokenizer& tok = Neox();
  for (const std::string& s : std::vector<std::string>{
           "", " ", "Hello  world", "a\r\n\tb  ", "DON'T", "😀 日本語", "<|endoftext|>x<|padding|>",
           std::string(100, ' '), std::string("nul\0byte", 8), "\xe2\x82", "\x80\x80",
           "\xed\xa0\x80", "caf\xe9"}) {
    EXPECT_EQ(tok.Decode(tok.Encode(s)), s);
  }
}

// Random strings built to hold valid and invalid UTF-8, from any byte but the 13 that GPT-NeoX
// cannot represent (see InvalidUtf8).
std::vector<std::string> RandomByteStrings(int count) {
  std::mt19937 rng(20240601);
  // clang-format off
  const std::vector<std::string> pieces = {
      " ", "  ", "\n", "\t", "a", "Z", "7", ".", "'s", "é", "e\u0301", "日", "<|endoftext|>",
      "\xc3", "\xa9", "\xe2", "\x82", "\xac", "\xf0", "\x9f", "\x80", "\xbf",  // parts of UTF-8
      "\xed\xa0", "\xe0\x80\x80", "\xf4\x90"};  // surrogate, overlong, above U+10FFFF
  // clang-format on
  std::vector<std::string> out;
  for (int n = 0; n < count; ++n) {
    std::string s;
    const int parts = 1 + static_cast<int>(rng() % 12);
    for (int p = 0; p < parts; ++p) {
      if (rng() % 3 == 0) {
        uint8_t b;
        do b = static_cast<uint8_t>(rng());
        while (b == 0xC0 || b == 0xC1 || b >= 0xF5);
        s.push_back(static_cast<char>(b));
      } else {
        s += pieces[rng() % pieces.size()];
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

void ExpectRoundTrips(const Tokenizer& tok, const std::vector<std::string>& inputs,
                      bool normalize) {
  for (size_t n = 0; n < inputs.size(); ++n) {
    const std::string& s = inputs[n];
    const std::string want = normalize ? unicode::Normalize(s, unicode::NormalForm::kNFC) : s;
    const Ids ids = tok.Encode(s);
    ASSERT_EQ(tok.Decode(ids), want) << "case " << n;
    std::string streamed;
    for (int32_t id : ids) streamed += tok.DecodeToken(id);
    ASSERT_EQ(streamed, want) << "case " << n;
  }
}

TEST(NeoxTokenizer, RoundTripRandomBytes) {
  // NFC is part of the pipeline, so decoding gives back the NFC form (invalid bytes untouched).
  ExpectRoundTrips(Neox(), RandomByteStrings(2000), /*normalize=*/true);
}

TEST(NeoxTokenizer, RoundTripRandomBytesWithoutNormalizer) {
  json root = json::parse(ReadFile(kNeoxPath));
  root["normalizer"] = nullptr;
  auto tok = Tokenizer::FromJson(root.dump(), "neox-no-normalizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  ExpectRoundTrips(*tok, RandomByteStrings(2000), /*normalize=*/false);
}

// ---- GPT-NeoX-20B: corpora ----

TEST(NeoxTokenizer, WikiText2MatchesHuggingFaceAndRoundTrips) {
  const Tokenizer& tok = Neox();
  const std::string text = ReadFile(testing::SharedData("wikitext-2-raw/wiki.test.raw"));
  ASSERT_EQ(text.size(), 1290590u);
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = tok.Encode(text);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("encoded WikiText-2 test (%zu bytes, %zu tokens) in %.3f s\n", text.size(),
              ids.size(), seconds);
  EXPECT_LT(seconds, 5.0);  // ~0.1 s in a release build; this catches accidental quadratic work
  Fingerprint fp;
  fp.Add(ids);
  EXPECT_EQ(fp.tokens, 287159u);
  EXPECT_EQ(fp.hash, 0xe8bc9ed726feb9e5ull);  // HF tokenizers 0.23.2
  EXPECT_EQ(tok.Decode(ids), text);
}

TEST(NeoxTokenizer, LambadaMatchesHuggingFaceAndRoundTrips) {
  const Tokenizer& tok = Neox();
  const std::vector<std::string> texts = LambadaTexts();
  ASSERT_EQ(texts.size(), 5153u);
  Fingerprint fp;
  for (const std::string& text : texts) {
    const Ids ids = tok.Encode(text);
    fp.Add(ids);
    ASSERT_EQ(tok.Decode(ids), text);
  }
  EXPECT_EQ(fp.tokens, 418644u);
  EXPECT_EQ(fp.hash, 0x22f826f7480bdca8ull);  // HF tokenizers 0.23.2
}

TEST(NeoxTokenizer, ConcurrentEncodeAgrees) {
  const Tokenizer& tok = Neox();
  const std::vector<std::string> texts = LambadaTexts();
  std::vector<Ids> serial;
  for (size_t i = 0; i < 400; ++i) serial.push_back(tok.Encode(texts[i]));
  const Tokenizer copy = tok;  // copies share the word cache
  std::vector<Ids> a(400), b(400);
  std::thread t1([&] {
    for (size_t i = 0; i < 400; ++i) a[i] = tok.Encode(texts[i]);
  });
  std::thread t2([&] {
    for (size_t i = 400; i-- > 0;) b[i] = copy.Encode(texts[i]);
  });
  t1.join();
  t2.join();
  EXPECT_EQ(a, serial);
  EXPECT_EQ(b, serial);
}

// ---- A small hand-made tokenizer for BPE order and added-token flags ----

// Byte-level vocabulary (id = byte) plus a few merges, Sequence[NFKC] normalizer, and added
// tokens with each flag. Ids of the added tokens follow HF's assignment (next free id).
std::string MiniJson(bool add_prefix_space) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    vocab[unicode::ToByteLevel(std::string(1, static_cast<char>(b)))] = b;
  for (const char* t : {"aa", "ab", "bc", "aaaa", "Ġa", "fi"}) {
    const size_t id = vocab.size();
    vocab[t] = id;
  }
  json added = json::array();
  auto add = [&](const char* content, bool special, bool lstrip, bool rstrip, bool single_word,
                 bool normalized) {
    added.push_back({{"id", vocab.size() + added.size()},
                     {"content", content},
                     {"special", special},
                     {"lstrip", lstrip},
                     {"rstrip", rstrip},
                     {"single_word", single_word},
                     {"normalized", normalized}});
  };
  add("<s>", true, false, false, false, false);
  add("[M]", true, true, false, false, false);       // lstrip
  add("[R]", true, false, true, false, false);       // rstrip
  add("hi", false, false, false, true, true);        // single_word
  add("\uFB01x", false, false, false, false, true);  // "ﬁx": matched as its NFKC form "fix"
  json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", add_prefix_space},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  json root = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}}},
      {"pre_tokenizer", byte_level},
      {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"vocab", vocab},
        // Rank order is not left-to-right order: "b c" outranks "a b".
        {"merges", {"b c", "a b", "a a", "aa aa", "Ġ a", "f i"}}}},
  };
  return root.dump();
}

const Tokenizer& Mini(bool add_prefix_space) {
  static const Tokenizer* toks[2] = {nullptr, nullptr};
  const Tokenizer*& tok = toks[add_prefix_space];
  if (tok == nullptr) {
    auto t = Tokenizer::FromJson(MiniJson(add_prefix_space), "mini.json");
    QM_CHECK(t.ok(), "%s", t.status().message().c_str());
    tok = new Tokenizer(std::move(t).value());
  }
  return *tok;
}

TEST(MiniTokenizer, MergesApplyByRankThenLeftmost) {
  const Tokenizer& tok = Mini(false);
  EXPECT_EQ(tok.Encode("abc"), Tok(tok, {"a", "bc"}));  // left-to-right greedy would give ab, c
  EXPECT_EQ(tok.Encode("aaa"), Tok(tok, {"aa", "a"}));  // a tie goes to the leftmost pair
  EXPECT_EQ(tok.Encode("aaaa"), Tok(tok, {"aaaa"}));    // merged results merge again
  EXPECT_EQ(tok.Encode("aaaaa"), Tok(tok, {"aaaa", "a"}));
  EXPECT_EQ(tok.Encode("  "), Tok(tok, {"Ġ", "Ġ"}));  // no "Ġ Ġ" merge here
  EXPECT_EQ(tok.Encode("fi"), Tok(tok, {"fi"}));
}

TEST(MiniTokenizer, MergesAsPairs) {
  // Newer tokenizer.json files spell merges as ["left", "right"] (tokens may then hold spaces).
  json root = json::parse(MiniJson(false));
  for (json& m : root["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    m = json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  auto tok = Tokenizer::FromJson(root.dump(), "mini.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->Encode("abc aaaaa fi"), Mini(false).Encode("abc aaaaa fi"));
  EXPECT_EQ(tok->Encode("abc"), Tok(*tok, {"a", "bc"}));
}

TEST(MiniTokenizer, AddedTokenFlags) {
  const Tokenizer& tok = Mini(false);
  EXPECT_EQ(tok.vocab_size(), 256 + 6 + 5);
  EXPECT_EQ(tok.Encode("x <s>y"), Tok(tok, {"x", "Ġ", "<s>", "y"}));  // no stripping
  EXPECT_EQ(tok.Encode("x  [M]y"), Tok(tok, {"x", "[M]", "y"}));      // lstrip eats the spaces
  EXPECT_EQ(tok.Encode("x[R]  y"), Tok(tok, {"x", "[R]", "y"}));      // rstrip eats the spaces
  EXPECT_EQ(tok.Encode(" [M] [R] "), Tok(tok, {"[M]", "Ġ", "[R]"}));
  // single_word: only where no letter, digit or '_' touches it.
  EXPECT_EQ(tok.Encode("hi a"), Tok(tok, {"hi", "Ġa"}));
  EXPECT_EQ(tok.Encode("(hi)"), Tok(tok, {"(", "hi", ")"}));
  EXPECT_EQ(tok.Encode("thi"), Tok(tok, {"t", "h", "i"}));
  EXPECT_EQ(tok.Encode("hi_"), Tok(tok, {"h", "i", "_"}));
  // normalized: matched in the NFKC-normalized text, so both spellings find it.
  EXPECT_EQ(tok.Encode("\uFB01x"), Tok(tok, {"\uFB01x"}));
  EXPECT_EQ(tok.Encode("fix"), Tok(tok, {"\uFB01x"}));
  EXPECT_EQ(tok.Encode("\uFB01"), Tok(tok, {"fi"}));  // NFKC: U+FB01 -> "fi"
}

TEST(MiniTokenizer, AddPrefixSpace) {
  const Tokenizer& tok = Mini(true);
  EXPECT_EQ(tok.Encode("a"), Tok(tok, {"Ġa"}));
  EXPECT_EQ(tok.Encode(" a"), Tok(tok, {"Ġa"}));  // not doubled
  EXPECT_EQ(tok.Encode("abc"), Tok(tok, {"Ġa", "bc"}));
  // Every piece between added tokens gets its own prefix space.
  EXPECT_EQ(tok.Encode("<s>a"), Tok(tok, {"<s>", "Ġa"}));
  EXPECT_EQ(tok.Encode("a<s> a"), Tok(tok, {"Ġa", "<s>", "Ġa"}));
}

TEST(MiniTokenizer, AddedTokenInVocabKeepsVocabId) {
  json root = json::parse(MiniJson(false));
  root["added_tokens"].push_back({{"id", 999},
                                  {"content", "ab"},
                                  {"special", false},
                                  {"lstrip", false},
                                  {"rstrip", false},
                                  {"single_word", false},
                                  {"normalized", true}});
  auto tok = Tokenizer::FromJson(root.dump(), "mini.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->TokenId("ab"), 257);
  EXPECT_EQ(tok->Encode("cab"), (Ids{'c', 257}));
}

// ---- Errors ----

std::string LoadError(const std::string& json_text) {
  auto tok = Tokenizer::FromJson(json_text, "tokenizer.json");
  EXPECT_FALSE(tok.ok());
  const std::string message = tok.ok() ? "" : tok.status().message();
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  return message;
}

TEST(TokenizerErrors, MissingFile) {
  auto tok = Tokenizer::Load("/nonexistent/dir/tokenizer.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().message(),
            "/nonexistent/dir/tokenizer.json: expected a readable tokenizer.json, found No such "
            "file or directory");
}

TEST(TokenizerErrors, MalformedJson) {
  const std::string message = LoadError("{\"model\": {\"type\": \"BPE\",,}");
  EXPECT_EQ(message.rfind("tokenizer.json: expected valid JSON, found parse error at line 1", 0),
            0u)
      << message;
  EXPECT_EQ(message.find("[json.exception"), std::string::npos) << message;
}

// Found by the tokenizer fuzzer in seconds: a number beyond double's range is nlohmann's
// out_of_range, which escaped the parse_error handler and aborted; and a value nested deeper
// than the serializer's stack (item 2) where a message would print it.
TEST(TokenizerErrors, NumberOverflowAndDeepNestingAreErrors) {
  EXPECT_EQ(LoadError("{\"model\": {\"dropout\": 1e400}}"),
            "tokenizer.json: expected valid JSON, found number overflow parsing '1e400'");
  const std::string deep = std::string(80000, '[') + std::string(80000, ']');
  EXPECT_EQ(LoadError("{\"model\": {\"type\": \"BPE\", \"dropout\": " + deep + "}}")
                .rfind("tokenizer.json: expected JSON nested at most 64 levels", 0),
            0u);
}

TEST(TokenizerErrors, WrongModelType) {
  json root = json::parse(MiniJson(false));
  root["model"]["type"] = "Unigram";
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: model.type: expected \"BPE\", found \"Unigram\"");
}

TEST(TokenizerErrors, MergeWithUnknownToken) {
  json root = json::parse(MiniJson(false));
  root["model"]["merges"].push_back("a zzz");
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: model.merges[6]: expected a token of model.vocab, found \"zzz\"");
  root = json::parse(MiniJson(false));
  root["model"]["merges"].push_back("b a");  // both known, but "ba" is not in the vocabulary
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: model.merges[6]: expected the merged token \"ba\" in model.vocab, "
            "found none");
  root = json::parse(MiniJson(false));
  root["model"]["merges"].push_back("abc");
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: model.merges[6]: expected two tokens separated by one space, found "
            "\"abc\"");
}

TEST(TokenizerErrors, UnsupportedPipelineParts) {
  json root = json::parse(MiniJson(false));
  root["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: normalizer.type: expected one of \"NFC\", \"NFD\", \"NFKC\", "
            "\"NFKD\", \"Sequence\", found \"Lowercase\"");
  root["normalizer"] = {{"type", "Sequence"},
                        {"normalizers", {{{"type", "NFC"}}, {{"type", "Strip"}}}}};
  EXPECT_NE(LoadError(root.dump()).find("normalizer.normalizers[1].type: expected one of"),
            std::string::npos);

  root = json::parse(MiniJson(false));
  root["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: pre_tokenizer.type: expected \"ByteLevel\", found \"Whitespace\"");
  root["pre_tokenizer"] = nullptr;
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: pre_tokenizer: expected a ByteLevel pre-tokenizer, found null");

  root = json::parse(MiniJson(false));
  root["decoder"] = {{"type", "WordPiece"}};
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: decoder.type: expected \"ByteLevel\" or null, found \"WordPiece\"");

  root = json::parse(MiniJson(false));
  root["model"]["vocab"]["a"] = "one";
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: model.vocab[\"a\"]: expected an id in [0, 16777216), found \"one\"");

  EXPECT_EQ(LoadError("[1, 2]"), "tokenizer.json: (top level): expected an object, found an array");
}

TEST(TokenizerErrors, MissingFields) {
  json root = json::parse(MiniJson(false));
  root.erase("model");
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: model: expected an object, found no such field");
  root = json::parse(MiniJson(false));
  root["pre_tokenizer"].erase("add_prefix_space");  // required by HF too
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: pre_tokenizer.add_prefix_space: expected true or false, found no "
            "such field");
  root = json::parse(MiniJson(false));
  root["added_tokens"][1].erase("content");
  EXPECT_EQ(LoadError(root.dump()),
            "tokenizer.json: added_tokens[1].content: expected a non-empty string, found no such "
            "field");
}

TEST(TokenizerErrors, NullNormalizerIsAccepted) {
  json root = json::parse(MiniJson(false));
  root["normalizer"] = nullptr;
  auto tok = Tokenizer::FromJson(root.dump(), "mini.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->Encode("\uFB01"), Tok(*tok, {"ï", "¬", "ģ"}));  // U+FB01 stays, as bytes EF AC 81
}

// ---- Reference cases for the project's own tokenizer (tests/data/tokenizer_ref_cases.json) ----

TEST(TokenizerRefCases, MatchReference) {
  // Written by scripts/make_golden.py with its own Python BPE encoder:
  // {"format": "quamba-tokenizer-cases-v1", "tokenizer": "models/<name>/tokenizer.json",
  //  "cases": [{"text": str, "ids": [int, ...]}, ...]}, paths relative to the repository root.
  const std::string path = testing::SourcePath("tests/data/tokenizer_ref_cases.json");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  const json ref = json::parse(ReadFile(path));
  ASSERT_EQ(ref.value("format", ""), "quamba-tokenizer-cases-v1");
  std::string tok_path = ref.at("tokenizer").get<std::string>();
  if (tok_path[0] != '/') tok_path = testing::SourcePath(tok_path);
  auto tok = Tokenizer::Load(tok_path);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const json& cases = ref.at("cases");
  ASSERT_GT(cases.size(), 0u);
  for (const json& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const Ids want = c.at("ids").get<Ids>();
    EXPECT_EQ(tok->Encode(text), want) << "text: " << json(text).dump();
    EXPECT_EQ(tok->Decode(want), text) << "text: " << json(text).dump();
  }
}

// ---- Unicode helpers ----

TEST(Unicode, DecodeUtf8RejectsInvalidSequences) {
  int len;
  EXPECT_EQ(unicode::DecodeUtf8("\xc3\xa9", 0, &len), 0xE9);
  EXPECT_EQ(len, 2);
  EXPECT_EQ(unicode::DecodeUtf8("\xf0\x9f\x98\x80", 0, &len), 0x1F600);
  EXPECT_EQ(len, 4);
  for (std::string_view bad : {"\x80", "\xc0\xaf", "\xc3", "\xe0\x80\x80", "\xed\xa0\x80",
                               "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe2\x82"}) {
    EXPECT_EQ(unicode::DecodeUtf8(bad, 0, &len), -1)
        << json(std::string(bad)).dump(-1, ' ', false, json::error_handler_t::replace);
    EXPECT_EQ(len, 1);
  }
}

TEST(Unicode, Classes) {
  using unicode::CharClass;
  EXPECT_EQ(unicode::Classify('a'), CharClass::kLetter);
  EXPECT_EQ(unicode::Classify(0x65E5), CharClass::kLetter);  // 日
  EXPECT_EQ(unicode::Classify(0x2B0), CharClass::kLetter);   // ʰ (Lm)
  EXPECT_EQ(unicode::Classify('7'), CharClass::kNumber);
  EXPECT_EQ(unicode::Classify(0x2167), CharClass::kNumber);  // Ⅷ (Nl)
  EXPECT_EQ(unicode::Classify(0xBD), CharClass::kNumber);    // ½ (No)
  for (int32_t cp : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028,
                     0x2029, 0x202F, 0x205F, 0x3000}) {
    EXPECT_EQ(unicode::Classify(cp), CharClass::kSpace) << cp;
  }
  for (int32_t cp : {0x1C, 0x1F, 0x200B, 0x180E, 0xFEFF, 0x301, 0x27 /* ' */, 0x5F /* _ */, -1}) {
    EXPECT_EQ(unicode::Classify(cp), CharClass::kOther) << cp;
  }
}

TEST(Unicode, ByteLevelAlphabet) {
  EXPECT_EQ(unicode::ToByteLevel(" \n!\xff"), "Ġ\u010a!ÿ");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  ASSERT_TRUE(unicode::FromByteLevel(unicode::ToByteLevel(all), &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(unicode::FromByteLevel(" ", &back));  // U+0020 is not in the alphabet
}

TEST(Unicode, NormalizeKeepsInvalidBytes) {
  EXPECT_EQ(unicode::Normalize("e\u0301\xff"
                               "e\u0301",
                               unicode::NormalForm::kNFC),
            "\u00e9\xff\u00e9");
  EXPECT_EQ(unicode::Normalize("\u00e9", unicode::NormalForm::kNFD), "e\u0301");
  EXPECT_EQ(unicode::Normalize("\uFB01", unicode::NormalForm::kNFKC), "fi");
  EXPECT_EQ(unicode::Normalize("plain ascii", unicode::NormalForm::kNFKD), "plain ascii");
}

}  // namespace
}  // namespace quamba
