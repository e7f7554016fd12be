// Hugging Face `tokenizers` pipeline, restricted to byte-level BPE:
//   1. split off added tokens whose `normalized` flag is false, matched in the raw text;
//   2. normalize each remaining piece, then split off the `normalized` added tokens;
//   3. pre-tokenize each remaining piece with the GPT-2 pattern (ByteLevel pre-tokenizer);
//   4. run BPE on the bytes of each word, with a cache.
// Text that is not valid UTF-8 flows through as single-byte units (see docs/tokenizer.md).
#include "io/tokenizer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "io/json_util.h"
#include "io/unicode.h"

namespace quamba {
namespace {

using json = nlohmann::json;
using unicode::CharClass;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

// Byte trie over added-token contents, for leftmost-longest matching as HF's Aho-Corasick does.
class TokenTrie {
 public:
  TokenTrie() : nodes_(1) { first_byte_.fill(false); }

  // Keeps the first token for a duplicated pattern, as Aho-Corasick reports the first pattern.
  void Insert(std::string_view pattern, int token_index) {
    if (pattern.empty()) return;
    first_byte_[static_cast<uint8_t>(pattern[0])] = true;
    int node = 0;
    for (char c : pattern) {
      int child = Child(node, static_cast<uint8_t>(c));
      if (child < 0) {
        child = static_cast<int>(nodes_.size());
        nodes_[node].children.push_back({static_cast<uint8_t>(c), child});
        nodes_.emplace_back();
      }
      node = child;
    }
    if (nodes_[node].token < 0) nodes_[node].token = token_index;
    empty_ = false;
  }

  bool empty() const { return empty_; }
  bool MayStartAt(uint8_t b) const { return first_byte_[b]; }

  // The token index of the longest pattern that starts at s[pos] (and its length), or -1.
  int LongestAt(std::string_view s, size_t pos, size_t* len) const {
    int node = 0;
    int best = -1;
    for (size_t i = pos; i < s.size(); ++i) {
      node = Child(node, static_cast<uint8_t>(s[i]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        *len = i + 1 - pos;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int>> children;
    int token = -1;
  };
  int Child(int node, uint8_t b) const {
    for (const auto& [byte, child] : nodes_[node].children) {
      if (byte == b) return child;
    }
    return -1;
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_;
  bool empty_ = true;
};

// The last code point of s, or -1 if s is empty or ends in an invalid byte.
int32_t LastCodePoint(std::string_view s) {
  for (size_t back = 1; back <= 4 && back <= s.size(); ++back) {
    int len;
    const int32_t cp = unicode::DecodeUtf8(s, s.size() - back, &len);
    if (cp >= 0 && static_cast<size_t>(len) == back) return cp;
  }
  return -1;
}

// Byte length of the whitespace that s starts with / ends with (Rust's char::is_whitespace).
size_t LeadingSpaceBytes(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    int len;
    if (!unicode::IsWhiteSpace(unicode::DecodeUtf8(s, i, &len))) break;
    i += len;
  }
  return i;
}
size_t TrailingSpaceBytes(std::string_view s) {
  size_t n = s.size();
  while (n > 0) {
    const int32_t cp = LastCodePoint(s.substr(0, n));
    if (!unicode::IsWhiteSpace(cp)) break;
    std::string utf8;
    unicode::AppendUtf8(cp, &utf8);
    n -= utf8.size();
  }
  return s.size() - n;
}

bool IsWordChar(int32_t cp) { return cp == '_' || unicode::IsAlphanumeric(cp); }

// ---- JSON reading with "file: field: expected X, found Y" errors. ----

std::string Describe(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::discarded:
      return "no such field";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string: {
      std::string s = j.get_ref<const std::string&>();
      if (s.size() > 60) s = s.substr(0, 60) + "...";
      return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    }
    default:
      return j.dump();
  }
}

class Reader {
 public:
  explicit Reader(const std::string& file) : file_(file) {}

  Status Error(const std::string& field, const std::string& expected,
               const std::string& found) const {
    return Status::Error(StrFormat("%s: %s: expected %s, found %s", file_.c_str(), field.c_str(),
                                   expected.c_str(), found.c_str()));
  }
  Status Mismatch(const std::string& field, const std::string& expected, const json& j) const {
    return Error(field, expected, Describe(j));
  }

  // A member of an object, or a `discarded` value when absent (Describe() says so).
  static const json& Member(const json& obj, const char* key) {
    static const json kMissing(json::value_t::discarded);
    auto it = obj.find(key);
    return it == obj.end() ? kMissing : *it;
  }
  static bool Absent(const json& j) { return j.is_null() || j.is_discarded(); }

  Status Bool(const json& obj, const std::string& path, const char* key, bool default_value,
              bool* out) const {
    const json& j = Member(obj, key);
    if (Absent(j)) {
      *out = default_value;
    } else if (j.is_boolean()) {
      *out = j.get<bool>();
    } else {
      return Mismatch(path + "." + key, "true or false", j);
    }
    return Status::Ok();
  }

  Status TypeName(const json& obj, const std::string& path, std::string* out) const {
    if (!obj.is_object()) return Mismatch(path, "an object", obj);
    const json& t = Member(obj, "type");
    if (!t.is_string()) return Mismatch(path + ".type", "a type name", t);
    *out = t.get<std::string>();
    return Status::Ok();
  }

 private:
  const std::string& file_;
};

std::string Quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

constexpr int32_t kMaxTokenId = 1 << 24;  // far above any real vocabulary; bounds allocations

}  // namespace

struct Tokenizer::Impl {
  std::vector<unicode::NormalForm> normalizers;
  bool add_prefix_space = false;
  bool use_regex = true;

  StringMap<int32_t> vocab;  // token text (byte-level alphabet) -> id
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  std::unordered_map<uint64_t, MergeInfo> merges;  // (left id, right id) -> merge
  std::array<int32_t, 256> byte_id{};              // id of each byte's one-character token, or -1
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;

  std::vector<AddedToken> added;
  StringMap<int32_t> added_by_content;
  TokenTrie raw_trie;         // added tokens with normalized == false
  TokenTrie normalized_trie;  // the others, by their normalized content

  std::vector<std::string> id_bytes;  // what each id decodes to; empty for unused ids
  int32_t eos = -1;

  // Word cache: BPE of a pre-tokenized word (raw bytes) -> ids.
  static constexpr size_t kCacheCapacity = 1 << 18;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mu;
  mutable StringMap<std::vector<int32_t>> cache;

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::string NormalizeText(std::string_view s) const {
    std::string out(s);
    for (unicode::NormalForm form : normalizers) out = unicode::Normalize(out, form);
    return out;
  }

  void Encode(std::string_view text, std::vector<int32_t>* out) const;
  template <typename PieceFn>
  void SplitOnAdded(std::string_view s, const TokenTrie& trie, std::vector<int32_t>* out,
                    PieceFn&& piece) const;
  std::string_view SubstituteUntokenizableBytes(std::string_view piece, std::string* storage) const;
  void EncodePiece(std::string_view piece, std::vector<int32_t>* out) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;
  void Bpe(std::string_view word, std::vector<int32_t>* out) const;

  Status Parse(const json& root, const Reader& r);
  Status ParseNormalizer(const json& j, const std::string& path, const Reader& r);
  Status ParsePreTokenizer(const json& j, const std::string& path, const Reader& r);
  Status ParseModel(const json& j, const Reader& r);
  Status ParseAddedTokens(const json& j, const Reader& r);
};

// ---- Encoding ----

void Tokenizer::Impl::Encode(std::string_view text, std::vector<int32_t>* out) const {
  SplitOnAdded(text, raw_trie, out, [&](std::string_view raw_piece) {
    const std::string normalized = NormalizeText(raw_piece);
    SplitOnAdded(normalized, normalized_trie, out,
                 [&](std::string_view piece) { EncodePiece(piece, out); });
  });
}

// Emits the ids of added tokens found in s and hands each non-empty stretch between them to
// `piece`, in order. Mirrors HF's AddedVocabulary::find_matches: leftmost-longest matches scanned
// left to right; a single_word token must not touch word characters; lstrip/rstrip widen the
// match over adjacent whitespace.
template <typename PieceFn>
void Tokenizer::Impl::SplitOnAdded(std::string_view s, const TokenTrie& trie,
                                   std::vector<int32_t>* out, PieceFn&& piece) const {
  size_t done = 0;  // end of the last emitted token
  if (!trie.empty()) {
    size_t pos = 0;
    while (pos < s.size()) {
      if (!trie.MayStartAt(static_cast<uint8_t>(s[pos]))) {
        ++pos;
        continue;
      }
      size_t len = 0;
      const int k = trie.LongestAt(s, pos, &len);
      if (k < 0) {
        ++pos;
        continue;
      }
      const AddedToken& token = added[k];
      size_t start = pos;
      size_t stop = pos + len;
      pos = stop;  // the matcher resumes after a match even if it is discarded below
      if (token.single_word) {
        const bool free_start = start == 0 || !IsWordChar(LastCodePoint(s.substr(0, start)));
        int cp_len;
        const bool free_stop =
            stop == s.size() || !IsWordChar(unicode::DecodeUtf8(s, stop, &cp_len));
        if (!free_start || !free_stop) continue;
      }
      if (token.lstrip) start = std::max(done, start - TrailingSpaceBytes(s.substr(0, start)));
      // A match inside whitespace that an rstrip token already took is still emitted, as in HF.
      if (token.rstrip) stop += LeadingSpaceBytes(s.substr(stop));
      if (done < start) piece(s.substr(done, start - done));
      out->push_back(token.id);
      done = stop;
    }
  }
  if (done < s.size()) piece(s.substr(done));
}

// An invalid byte is a unit of its own, classed like U+FFFD, and normally encodes as its own
// byte-level token, so that decoding gives it back. A vocabulary may lack tokens for bytes that
// valid UTF-8 never contains (GPT-NeoX lacks C0, C1, F5..FF); HF would silently drop such a byte,
// so it is replaced by U+FFFD instead, which keeps a visible trace in the ids and the decoded text.
std::string_view Tokenizer::Impl::SubstituteUntokenizableBytes(std::string_view piece,
                                                               std::string* storage) const {
  auto untokenizable = [&](size_t i, int32_t cp) {
    return cp < 0 && byte_id[static_cast<uint8_t>(piece[i])] < 0;
  };
  bool any = false;
  for (size_t i = 0; i < piece.size() && !any;) {
    int len;
    any = untokenizable(i, unicode::DecodeUtf8(piece, i, &len));
    i += len;
  }
  if (!any) return piece;
  storage->clear();
  for (size_t i = 0; i < piece.size();) {
    int len;
    const int32_t cp = unicode::DecodeUtf8(piece, i, &len);
    if (untokenizable(i, cp)) {
      storage->append("\xEF\xBF\xBD");
    } else {
      storage->append(piece.substr(i, len));
    }
    i += len;
  }
  return *storage;
}

// Pre-tokenizes one piece with the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as a scan over code points. The alternatives are tried in order at each position, as the
// backtracking regex engine does; every code point falls in one of them, so the words tile the
// piece.
void Tokenizer::Impl::EncodePiece(std::string_view piece, std::vector<int32_t>* out) const {
  std::string substituted;
  piece = SubstituteUntokenizableBytes(piece, &substituted);
  std::string prefixed;
  if (add_prefix_space && piece[0] != ' ') {
    prefixed.reserve(piece.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(piece);
    piece = prefixed;
  }
  if (!use_regex) {
    EncodeWord(piece, out);
    return;
  }

  struct Unit {
    uint32_t offset;
    int32_t cp;  // -1 for an invalid byte
    CharClass cls;
  };
  std::vector<Unit> units;
  units.reserve(piece.size() + 1);
  for (size_t i = 0; i < piece.size();) {
    int len;
    const int32_t cp = unicode::DecodeUtf8(piece, i, &len);
    units.push_back({static_cast<uint32_t>(i), cp, unicode::Classify(cp)});
    i += len;
  }
  const size_t n = units.size();
  units.push_back({static_cast<uint32_t>(piece.size()), -1, CharClass::kOther});  // sentinel

  auto emit = [&](size_t begin, size_t end) {
    EncodeWord(piece.substr(units[begin].offset, units[end].offset - units[begin].offset), out);
  };
  auto cp_at = [&](size_t i) { return i < n ? units[i].cp : -1; };

  size_t i = 0;
  while (i < n) {
    // 's 't 're 've 'm 'll 'd (case-sensitive).
    if (units[i].cp == '\'') {
      const int32_t c1 = cp_at(i + 1);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(i, i + 2);
        i += 2;
        continue;
      }
      const int32_t c2 = cp_at(i + 2);
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        emit(i, i + 3);
        i += 3;
        continue;
      }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional U+0020, then a run of one class.
    size_t j = i;
    if (units[i].cp == ' ' && i + 1 < n && units[i + 1].cls != CharClass::kSpace) j = i + 1;
    const CharClass cls = units[j].cls;
    if (cls != CharClass::kSpace) {
      size_t k = j + 1;
      while (k < n && units[k].cls == cls) ++k;
      emit(i, k);
      i = k;
      continue;
    }
    // `\s+(?!\S)`: a whitespace run that ends the piece, or all of it but its last character when
    // a non-space follows (that character then starts the next word); else `\s+` takes the
    // single whitespace character.
    size_t k = i + 1;
    while (k < n && units[k].cls == CharClass::kSpace) ++k;
    const size_t end = (k < n && k - i >= 2) ? k - 1 : k;
    emit(i, end);
    i = end;
  }
}

void Tokenizer::Impl::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out->size();
  Bpe(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() < kCacheCapacity) {
      cache.emplace(std::string(word), std::vector<int32_t>(out->begin() + first, out->end()));
    }
  }
}

// BPE over the word's bytes, merging the lowest-ranked adjacent pair first (leftmost on ties),
// with a heap and a linked list of symbols, exactly as HF's Word::merge_all.
void Tokenizer::Impl::Bpe(std::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges) {
    auto it = vocab.find(unicode::ToByteLevel(word));
    if (it != vocab.end()) {
      out->push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const int32_t idx = static_cast<int32_t>(symbols.size());
    if (idx > 0) symbols.back().next = idx;
    symbols.push_back({id, idx - 1, -1, true});
  };
  bool pending_unk = false;  // a fused run of unknown bytes not yet added
  for (char c : word) {
    const int32_t id = byte_id[static_cast<uint8_t>(c)];
    if (id >= 0) {
      if (pending_unk) add(unk_id);
      pending_unk = false;
      add(id);
    } else if (unk_id >= 0) {
      if (pending_unk && !fuse_unk) add(unk_id);
      pending_unk = true;
    }
    // else: HF drops bytes that have no token when there is no unk token.
  }
  if (pending_unk) add(unk_id);
  if (symbols.empty()) return;

  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const Candidate& o) const {  // std::priority_queue pops the largest
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  auto lookup = [&](int32_t a, int32_t b) -> const MergeInfo* {
    auto it = merges.find(PairKey(a, b));
    return it == merges.end() ? nullptr : &it->second;
  };
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(symbols.size() * 2);
  std::priority_queue<Candidate> heap(std::less<Candidate>(), std::move(heap_storage));
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const MergeInfo* m = lookup(symbols[i].id, symbols[i + 1].id)) {
      heap.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const Symbol right = symbols[left.next];
    // Skip stale entries: the pair at this position changed since it was queued.
    const MergeInfo* current = lookup(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;
    left.id = top.new_id;
    symbols[left.next].alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeInfo* m = lookup(symbols[left.prev].id, left.id)) {
        heap.push({m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const MergeInfo* m = lookup(left.id, symbols[left.next].id)) {
        heap.push({m->rank, top.pos, m->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) out->push_back(s.id);
  }
}

// ---- Loading ----

Status Tokenizer::Impl::ParseNormalizer(const json& j, const std::string& path, const Reader& r) {
  if (Reader::Absent(j)) return Status::Ok();
  std::string type;
  QM_RETURN_IF_ERROR(r.TypeName(j, path, &type));
  if (type == "NFC") {
    normalizers.push_back(unicode::NormalForm::kNFC);
  } else if (type == "NFD") {
    normalizers.push_back(unicode::NormalForm::kNFD);
  } else if (type == "NFKC") {
    normalizers.push_back(unicode::NormalForm::kNFKC);
  } else if (type == "NFKD") {
    normalizers.push_back(unicode::NormalForm::kNFKD);
  } else if (type == "Sequence") {
    const json& list = Reader::Member(j, "normalizers");
    if (!list.is_array()) return r.Mismatch(path + ".normalizers", "an array", list);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string sub = StrFormat("%s.normalizers[%zu]", path.c_str(), i);
      if (list[i].is_null()) return r.Mismatch(sub, "a normalizer", list[i]);
      QM_RETURN_IF_ERROR(ParseNormalizer(list[i], sub, r));
    }
  } else {
    return r.Error(path + ".type", "one of \"NFC\", \"NFD\", \"NFKC\", \"NFKD\", \"Sequence\"",
                   Quote(type));
  }
  return Status::Ok();
}

Status Tokenizer::Impl::ParsePreTokenizer(const json& j, const std::string& path, const Reader& r) {
  if (Reader::Absent(j)) return r.Mismatch(path, "a ByteLevel pre-tokenizer", j);
  std::string type;
  QM_RETURN_IF_ERROR(r.TypeName(j, path, &type));
  if (type == "Sequence") {
    // Accepted only as a wrapper around a single ByteLevel.
    const json& list = Reader::Member(j, "pretokenizers");
    if (!list.is_array() || list.size() != 1) {
      return r.Mismatch(path + ".pretokenizers", "an array holding one ByteLevel pre-tokenizer",
                        list);
    }
    return ParsePreTokenizer(list[0], path + ".pretokenizers[0]", r);
  }
  if (type != "ByteLevel") return r.Error(path + ".type", "\"ByteLevel\"", Quote(type));
  // HF requires add_prefix_space in a file; use_regex defaults to true.
  if (!Reader::Member(j, "add_prefix_space").is_boolean()) {
    return r.Mismatch(path + ".add_prefix_space", "true or false",
                      Reader::Member(j, "add_prefix_space"));
  }
  QM_RETURN_IF_ERROR(r.Bool(j, path, "add_prefix_space", false, &add_prefix_space));
  QM_RETURN_IF_ERROR(r.Bool(j, path, "use_regex", true, &use_regex));
  return Status::Ok();
}

Status Tokenizer::Impl::ParseModel(const json& model, const Reader& r) {
  if (!model.is_object()) return r.Mismatch("model", "an object", model);
  const json& type = Reader::Member(model, "type");
  // HF infers the model from its fields when "type" is missing.
  if (!(Reader::Absent(type) && model.contains("merges")) && !(type.is_string() && type == "BPE")) {
    return r.Mismatch("model.type", "\"BPE\"", type);
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json& v = Reader::Member(model, key);
    if (!Reader::Absent(v) && v != "") {
      return r.Mismatch(std::string("model.") + key, "null (not supported with byte-level BPE)", v);
    }
  }
  const json& dropout = Reader::Member(model, "dropout");
  if (!Reader::Absent(dropout) && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
    return r.Mismatch("model.dropout", "null (BPE dropout is for training)", dropout);
  }
  QM_RETURN_IF_ERROR(r.Bool(model, "model", "fuse_unk", false, &fuse_unk));
  QM_RETURN_IF_ERROR(r.Bool(model, "model", "ignore_merges", false, &ignore_merges));
  bool byte_fallback = false;
  QM_RETURN_IF_ERROR(r.Bool(model, "model", "byte_fallback", false, &byte_fallback));

  const json& jvocab = Reader::Member(model, "vocab");
  if (!jvocab.is_object()) return r.Mismatch("model.vocab", "an object", jvocab);
  vocab.reserve(jvocab.size());
  for (auto it = jvocab.begin(); it != jvocab.end(); ++it) {
    const json& v = it.value();
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxTokenId) {
      return r.Mismatch("model.vocab[" + Quote(it.key()) + "]",
                        StrFormat("an id in [0, %d)", kMaxTokenId), v);
    }
    vocab[it.key()] = v.get<int32_t>();
  }

  const json& unk = Reader::Member(model, "unk_token");
  if (!Reader::Absent(unk)) {
    if (!unk.is_string()) return r.Mismatch("model.unk_token", "null or a string", unk);
    auto it = vocab.find(unk.get<std::string>());
    if (it == vocab.end()) return r.Mismatch("model.unk_token", "a token of model.vocab", unk);
    unk_id = it->second;
  }

  for (int b = 0; b < 256; ++b) {
    std::string text;
    unicode::AppendUtf8(unicode::ByteToCodePoint(static_cast<uint8_t>(b)), &text);
    auto it = vocab.find(text);
    if (it == vocab.end() && byte_fallback) it = vocab.find(StrFormat("<0x%02X>", b));
    byte_id[b] = it == vocab.end() ? -1 : it->second;
  }

  const json& jmerges = Reader::Member(model, "merges");
  if (!jmerges.is_array()) return r.Mismatch("model.merges", "an array", jmerges);
  merges.reserve(jmerges.size());
  for (size_t i = 0; i < jmerges.size(); ++i) {
    const json& m = jmerges[i];
    const std::string field = StrFormat("model.merges[%zu]", i);
    std::string a, b;
    if (m.is_string()) {
      // "left right"; tokens with spaces need the [left, right] form.
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return r.Mismatch(field, "two tokens separated by one space", m);
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return r.Mismatch(field, "\"left right\" or [\"left\", \"right\"]", m);
    }
    auto ia = vocab.find(a);
    if (ia == vocab.end()) return r.Error(field, "a token of model.vocab", Quote(a));
    auto ib = vocab.find(b);
    if (ib == vocab.end()) return r.Error(field, "a token of model.vocab", Quote(b));
    auto inew = vocab.find(a + b);
    if (inew == vocab.end()) {
      return r.Error(field, "the merged token " + Quote(a + b) + " in model.vocab", "none");
    }
    // Like HF's map building, a repeated pair keeps its last rank.
    merges[PairKey(ia->second, ib->second)] = {static_cast<int32_t>(i), inew->second};
  }
  return Status::Ok();
}

Status Tokenizer::Impl::ParseAddedTokens(const json& list, const Reader& r) {
  if (Reader::Absent(list)) return Status::Ok();
  if (!list.is_array()) return r.Mismatch("added_tokens", "an array", list);
  // HF re-adds the tokens in file order and assigns ids itself (warning where the file's "id"
  // differs): a token the model has keeps the model's id, a repeated content keeps its first id,
  // and a new token gets the next id after the model's vocabulary / the last added id. Files HF
  // saved agree with that, so this only matters for hand-edited ones.
  const int32_t model_size = static_cast<int32_t>(vocab.size());
  int32_t max_added = -1;
  StringMap<size_t> index_by_content;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string path = StrFormat("added_tokens[%zu]", i);
    if (!t.is_object()) return r.Mismatch(path, "an object", t);
    AddedToken token;
    const json& id = Reader::Member(t, "id");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxTokenId) {
      return r.Mismatch(path + ".id", StrFormat("an id in [0, %d)", kMaxTokenId), id);
    }
    const json& content = Reader::Member(t, "content");
    if (!content.is_string() || content == "") {
      return r.Mismatch(path + ".content", "a non-empty string", content);
    }
    token.content = content.get<std::string>();
    QM_RETURN_IF_ERROR(r.Bool(t, path, "special", false, &token.special));
    QM_RETURN_IF_ERROR(r.Bool(t, path, "single_word", false, &token.single_word));
    QM_RETURN_IF_ERROR(r.Bool(t, path, "lstrip", false, &token.lstrip));
    QM_RETURN_IF_ERROR(r.Bool(t, path, "rstrip", false, &token.rstrip));
    // HF's AddedToken default: special tokens are matched before normalization.
    QM_RETURN_IF_ERROR(r.Bool(t, path, "normalized", !token.special, &token.normalized));

    if (auto it = index_by_content.find(token.content); it != index_by_content.end()) {
      token.id = added[it->second].id;  // the later flags win, as in HF
      added[it->second] = std::move(token);
      continue;
    }
    if (auto it = vocab.find(token.content); it != vocab.end()) {
      token.id = it->second;
    } else if (max_added < 0) {
      token.id = model_size;
    } else {
      token.id = (max_added >= model_size || model_size == 0) ? max_added + 1 : model_size;
    }
    if (token.id >= kMaxTokenId) {
      return r.Error(path + ".id", StrFormat("an id below %d", kMaxTokenId),
                     std::to_string(token.id));
    }
    max_added = std::max(max_added, token.id);
    index_by_content.emplace(token.content, added.size());
    added.push_back(std::move(token));
  }
  for (size_t k = 0; k < added.size(); ++k) {
    const AddedToken& t = added[k];
    added_by_content.emplace(t.content, t.id);
    if (t.normalized) {
      normalized_trie.Insert(NormalizeText(t.content), static_cast<int>(k));
    } else {
      raw_trie.Insert(t.content, static_cast<int>(k));
    }
  }
  return Status::Ok();
}

Status Tokenizer::Impl::Parse(const json& root, const Reader& r) {
  if (!root.is_object()) return r.Mismatch("(top level)", "an object", root);
  QM_RETURN_IF_ERROR(ParseModel(Reader::Member(root, "model"), r));
  QM_RETURN_IF_ERROR(ParseNormalizer(Reader::Member(root, "normalizer"), "normalizer", r));
  QM_RETURN_IF_ERROR(ParsePreTokenizer(Reader::Member(root, "pre_tokenizer"), "pre_tokenizer", r));
  const json& decoder = Reader::Member(root, "decoder");
  if (!Reader::Absent(decoder)) {
    std::string type;
    QM_RETURN_IF_ERROR(r.TypeName(decoder, "decoder", &type));
    if (type != "ByteLevel") return r.Error("decoder.type", "\"ByteLevel\" or null", Quote(type));
  }
  // post_processor only adds special tokens around an encoding; Encode() adds none by contract.
  QM_RETURN_IF_ERROR(ParseAddedTokens(Reader::Member(root, "added_tokens"), r));

  int32_t max_id = -1;
  for (const auto& [text, id] : vocab) max_id = std::max(max_id, id);
  for (const AddedToken& t : added) max_id = std::max(max_id, t.id);
  id_bytes.assign(max_id + 1, std::string());
  for (const auto& [text, id] : vocab) {
    // As HF's ByteLevel decoder: a token with a character outside the alphabet decodes to its
    // UTF-8 text.
    if (!unicode::FromByteLevel(text, &id_bytes[id])) id_bytes[id] = text;
  }
  // Added tokens decode to their content, so that decode(encode(s)) == s for any s.
  for (const AddedToken& t : added) {
    id_bytes[t.id] = t.content;
  }
  auto eos_it = added_by_content.find("<|endoftext|>");
  if (eos_it != added_by_content.end()) {
    eos = eos_it->second;
  } else if (auto v = vocab.find("<|endoftext|>"); v != vocab.end()) {
    eos = v->second;
  }
  return Status::Ok();
}

// ---- Public API ----

StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::Error(StrFormat("%s: expected a readable tokenizer.json, found %s", path.c_str(),
                                   std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return Status::Error(StrFormat("%s: read error: %s", path.c_str(), std::strerror(errno)));
  }
  return FromJson(buffer.str(), path);
}

StatusOr<Tokenizer> Tokenizer::FromJson(std::string_view json_text,
                                        const std::string& name_for_errors) {
  // Depth limit, duplicate keys, every nlohmann exception (1e400 is an out_of_range): json_util.
  QM_ASSIGN_OR_RETURN(const json root, ParseJson(json_text, name_for_errors));
  auto impl = std::make_shared<Impl>();
  const Reader reader(name_for_errors);
  QM_RETURN_IF_ERROR(impl->Parse(root, reader));
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->Encode(text, &ids);
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    // Ids without a token (e.g. a model's padded vocabulary) decode to nothing, as in HF.
    if (id >= 0 && id < static_cast<int32_t>(impl_->id_bytes.size())) {
      out += impl_->id_bytes[id];
    }
  }
  return out;
}

std::string Tokenizer::DecodeToken(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(impl_->id_bytes.size())) return std::string();
  return impl_->id_bytes[id];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_bytes.size()); }

int32_t Tokenizer::eos_id() const { return impl_->eos; }

int32_t Tokenizer::TokenId(std::string_view token_text) const {
  if (auto it = impl_->vocab.find(token_text); it != impl_->vocab.end()) return it->second;
  if (auto it = impl_->added_by_content.find(token_text); it != impl_->added_by_content.end()) {
    return it->second;
  }
  return -1;
}

}  // namespace quamba
