// Byte-level BPE tokenizer that reads a Hugging Face tokenizer.json and produces the same ids as
// the `tokenizers` library (see docs/tokenizer.md for what is supported and the few deviations).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace quamba {

class Tokenizer {
 public:
  // Parses a Hugging Face tokenizer.json. Errors (missing file, malformed JSON, unsupported
  // model/normalizer/pre_tokenizer type, a merge naming an unknown token, ...) return a Status
  // whose one-line message names the file, the field, what was expected and what was found, e.g.
  // "tokenizer.json: model.type: expected \"BPE\", found \"Unigram\"".
  static StatusOr<Tokenizer> Load(const std::string& path);
  static StatusOr<Tokenizer> FromJson(std::string_view json_text,
                                      const std::string& name_for_errors);

  // Thread-safe; copies share one word cache.
  std::vector<int32_t> Encode(std::string_view text) const;  // no BOS/EOS added
  std::string Decode(std::span<const int32_t> ids) const;  // bytes; may be invalid UTF-8 mid-stream
  std::string DecodeToken(int32_t id) const;               // raw bytes of one token (for streaming)
  int32_t vocab_size() const;                              // 1 + max id over vocab and added tokens
  int32_t eos_id() const;                                  // "<|endoftext|>" if present, else -1
  int32_t TokenId(std::string_view token_text) const;  // -1 if absent (token text as in the vocab)

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// A byte-level tokenizer.json (Hugging Face format) for synthetic checkpoints and tests: id 0 is
// "<|endoftext|>" (the configs' eos_token_id), ids 1..256 the bytes 0..255, no merges. Every
// text encodes (one id per byte), so `generate` and `quantize` work on a synthetic model.
std::string ByteLevelTokenizerJson();

}  // namespace quamba
