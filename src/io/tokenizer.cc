// Hugging Face `tokenizers` pipeline, restricted to byte-level BPE:
//   1. split off added tokens whose `normalized` flag is false, matched in the raw text;
//   2. normalize each remaining piece, then split off the `normalized` added tokens;
//   3. pre-tokenize each remaining piece with the GPT-2 pattern (ByteLevel pre-tokenizer);
//   4. run BPE on the bytes of each word, with a cache.
// Text that is not valid UTF-8 flows through as single-byte units (see docs/tokenizer.md).
// This file: encoding and decoding; tokenizer_json.cc reads tokenizer.json.
#include "io/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <queue>
#include <utility>

#include "io/tokenizer_impl.h"
#include "io/unicode.h"

namespace quamba {
namespace {

using json = nlohmann::json;
using unicode::CharClass;

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

}  // namespace

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

// ---- Public API ----

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
