// Checked reading of untrusted JSON (config.json, quantization_config.json, safetensors headers,
// eval .jsonl lines): every read states the type and range it expects, and every error is one
// line "file: field: expected X, found Y" whose Y is bounded in length whatever the input holds.
// Parsing rejects nesting deeper than kMaxJsonDepth (nlohmann's serializer, copy and comparison
// recurse, so a deep value would overflow the stack) and duplicate object keys (ambiguous: which
// one did the writer mean?).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quamba {

using Json = nlohmann::json;

// Deeper than any file this project reads (tokenizer.json: 5 levels).
constexpr int kMaxJsonDepth = 64;

// Parses `text`; `file` names it in the error: "file: expected valid JSON, found ...".
StatusOr<Json> ParseJson(std::string_view text, const std::string& file);

// A value as a "found ..." phrase, at most ~60 characters: null, true, 5, 1.5, the string "ab",
// an object, an array.
std::string DescribeJson(const Json& v);
// A string quoted for a message: truncated to max_bytes, invalid UTF-8 replaced.
std::string QuoteForMessage(std::string_view s, size_t max_bytes = 40);

// Value checks shared by JsonObject and array walkers: true with *out set when `v` has the type
// and lies in [lo, hi].
bool JsonIntIn(const Json& v, int64_t lo, int64_t hi, int64_t* out);
bool JsonUintIn(const Json& v, uint64_t hi, uint64_t* out);

// A checked view of one JSON object. `file` and `path` (e.g. "calibration") name it in errors.
// Reads come in two kinds: Int/String/... require the key (null is a wrong type, never "absent");
// Opt* leave *out unchanged when the key is absent, and, when null_is_absent, when it is null
// (Hugging Face configs write None as null).
class JsonObject {
 public:
  // Error "file: path: expected an object, found ..." unless `j` is an object.
  static StatusOr<JsonObject> Of(const Json& j, const std::string& file, const std::string& path,
                                 bool null_is_absent = false);

  const Json& json() const { return *j_; }
  const std::string& file() const { return file_; }
  // "path.key" (or "key" at the top level), as messages name a field.
  std::string Field(std::string_view key) const;
  // The member, or nullptr when absent (or null with null_is_absent).
  const Json* Find(const char* key) const;

  // "file: path.key: expected <expected>, found <found>".
  Status Error(std::string_view key, const std::string& expected, const std::string& found) const;
  // The same with found = the member described (or "nothing" when absent).
  Status Mismatch(const char* key, const std::string& expected) const;

  Status Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const;
  Status OptInt(const char* key, int64_t lo, int64_t hi, int64_t* out, bool* found = nullptr) const;
  // Finite numbers (integers accepted) in [lo, hi].
  Status Number(const char* key, double lo, double hi, double* out) const;
  Status OptNumber(const char* key, double lo, double hi, double* out) const;
  Status String(const char* key, std::string* out) const;
  Status OptString(const char* key, std::string* out, bool* found = nullptr) const;
  Status OptBool(const char* key, bool* out) const;
  // A nested object (required: absent or null is an error).
  StatusOr<JsonObject> Object(const char* key) const;

 private:
  JsonObject(const Json* j, std::string file, std::string path, bool null_is_absent)
      : j_(j), file_(std::move(file)), path_(std::move(path)), null_is_absent_(null_is_absent) {}
  // The member whatever its value, or nullptr.
  const Json* Raw(const char* key) const;
  Status CheckInt(const char* key, const Json& v, int64_t lo, int64_t hi, int64_t* out) const;
  Status CheckNumber(const char* key, const Json& v, double lo, double hi, double* out) const;
  Status CheckString(const char* key, const Json& v, std::string* out) const;

  const Json* j_;
  std::string file_, path_;
  bool null_is_absent_;
};

}  // namespace quamba
