// Internal to the tokenizer (io/tokenizer.cc encodes, io/tokenizer_json.cc loads): the parsed
// tokenizer.json as the encoder uses it. Not part of the io layer's public interface.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "io/tokenizer.h"
#include "io/unicode.h"

namespace quamba {
namespace tokenizer_internal {

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

// JSON reading with "file: field: expected X, found Y" errors (tokenizer_json.cc).
class Reader;

}  // namespace tokenizer_internal

struct Tokenizer::Impl {
  using json = nlohmann::json;
  using AddedToken = tokenizer_internal::AddedToken;
  using Reader = tokenizer_internal::Reader;
  using TokenTrie = tokenizer_internal::TokenTrie;
  template <typename V>
  using StringMap = tokenizer_internal::StringMap<V>;

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

}  // namespace quamba
