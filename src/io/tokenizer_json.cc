// Reading a Hugging Face tokenizer.json into Tokenizer::Impl (see tokenizer.cc for the pipeline):
// every field checked, errors as "file: field: expected X, found Y".
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/json_util.h"
#include "io/tokenizer_impl.h"
#include "io/unicode.h"

namespace quamba {
namespace tokenizer_internal {

using json = nlohmann::json;

// ---- JSON reading with "file: field: expected X, found Y" errors. ----

static std::string Describe(const json& j) {
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

static std::string Quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

constexpr int32_t kMaxTokenId = 1 << 24;  // far above any real vocabulary; bounds allocations

}  // namespace tokenizer_internal

namespace {
using json = nlohmann::json;
using tokenizer_internal::kMaxTokenId;
using tokenizer_internal::Quote;
using tokenizer_internal::Reader;
}  // namespace

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

// ---- Public API: loading ----

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

std::string ByteLevelTokenizerJson() {
  nlohmann::ordered_json vocab;
  vocab["<|endoftext|>"] = 0;
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    vocab[unicode::ToByteLevel(std::string_view(&byte, 1))] = b + 1;
  }
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 0}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
        {"merges", nlohmann::json::array()}}}};
  return j.dump(1) + "\n";
}

}  // namespace quamba
