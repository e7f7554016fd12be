#include "io/json_util.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>
#include <vector>

namespace quamba {
namespace {

// Byte offset where brackets first nest deeper than max_depth, or npos. Strings are skipped so
// that "[[[" inside a value does not count; malformed text is the parser's to reject.
size_t TooDeepAt(std::string_view s, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

struct DuplicateKey {
  std::string key;
};

// nlohmann's message without its "[json.exception.parse_error.101] " tag, on one line, bounded
// (its "last read: '...'" can quote an arbitrarily long token).
std::string ParseErrorText(const char* what) {
  std::string s = what;
  const size_t tag = s.find("] ");
  if (s.rfind("[json.exception", 0) == 0 && tag != std::string::npos) s = s.substr(tag + 2);
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > 160) s = s.substr(0, 160) + "...";
  // The text may quote invalid UTF-8 bytes; keep the message printable.
  std::string out;
  for (unsigned char c : s) out += (c < 0x20 || c >= 0x7f) ? '?' : static_cast<char>(c);
  return out;
}

}  // namespace

StatusOr<Json> ParseJson(std::string_view text, const std::string& file) {
  if (const size_t at = TooDeepAt(text, kMaxJsonDepth); at != std::string_view::npos)
    return Status::Error(
        StrFormat("%s: expected JSON nested at most %d levels deep, found deeper "
                  "nesting at byte %zu",
                  file.c_str(), kMaxJsonDepth, at));
  // One key set per open object, to refuse {"a": 1, "a": 2} (nlohmann keeps the last silently).
  std::vector<std::unordered_set<std::string>> keys;
  const Json::parser_callback_t on_event = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys.back().insert(parsed.get_ref<const std::string&>()).second)
          throw DuplicateKey{parsed.get<std::string>()};
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for 1e400
    return Status::Error(StrFormat("%s: expected valid JSON, found %s", file.c_str(),
                                   ParseErrorText(e.what()).c_str()));
  } catch (const DuplicateKey& d) {
    return Status::Error(StrFormat("%s: key %s: expected once per object, found it twice",
                                   file.c_str(), QuoteForMessage(d.key).c_str()));
  }
}

std::string QuoteForMessage(std::string_view s, size_t max_bytes) {
  const bool cut = s.size() > max_bytes;
  std::string q = Json(std::string(s.substr(0, max_bytes)))
                      .dump(-1, ' ', false, Json::error_handler_t::replace);
  if (cut) q.insert(q.size() - 1, "...");
  return q;
}

std::string DescribeJson(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::discarded:
      return "nothing";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return QuoteForMessage(v.get_ref<const std::string&>());
    case Json::value_t::binary:
      return "binary data";
    case Json::value_t::number_float: {
      const double x = v.get<double>();
      if (!std::isfinite(x)) return x > 0 ? "inf" : "-inf";  // dump() would say null
      return v.dump();
    }
    default:
      return v.dump();  // an integer or a boolean: at most 20 characters
  }
}

bool JsonIntIn(const Json& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    const int64_t x = static_cast<int64_t>(u);
    if (x < lo || x > hi) return false;
    *out = x;
    return true;
  }
  if (!v.is_number_integer()) return false;
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) return false;
  *out = x;
  return true;
}

bool JsonUintIn(const Json& v, uint64_t hi, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;  // nlohmann stores non-negative integers unsigned
  const uint64_t u = v.get<uint64_t>();
  if (u > hi) return false;
  *out = u;
  return true;
}

StatusOr<JsonObject> JsonObject::Of(const Json& j, const std::string& file, const std::string& path,
                                    bool null_is_absent) {
  if (!j.is_object())
    return Status::Error(StrFormat("%s: %s: expected an object, found %s", file.c_str(),
                                   path.empty() ? "(top level)" : path.c_str(),
                                   DescribeJson(j).c_str()));
  return JsonObject(&j, file, path, null_is_absent);
}

std::string JsonObject::Field(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const Json* JsonObject::Raw(const char* key) const {
  const auto it = j_->find(key);
  return it == j_->end() ? nullptr : &*it;
}

const Json* JsonObject::Find(const char* key) const {
  const Json* v = Raw(key);
  return v != nullptr && null_is_absent_ && v->is_null() ? nullptr : v;
}

Status JsonObject::Error(std::string_view key, const std::string& expected,
                         const std::string& found) const {
  return Status::Error(StrFormat("%s: %s: expected %s, found %s", file_.c_str(), Field(key).c_str(),
                                 expected.c_str(), found.c_str()));
}

Status JsonObject::Mismatch(const char* key, const std::string& expected) const {
  const Json* v = Raw(key);
  return Error(key, expected, v ? DescribeJson(*v) : "nothing");
}

Status JsonObject::CheckInt(const char* key, const Json& v, int64_t lo, int64_t hi,
                            int64_t* out) const {
  if (JsonIntIn(v, lo, hi, out)) return Status::Ok();
  if (!v.is_number_integer()) return Error(key, "an integer", DescribeJson(v));
  return Error(key, StrFormat("an integer in [%lld, %lld]", (long long)lo, (long long)hi),
               DescribeJson(v));
}

Status JsonObject::CheckNumber(const char* key, const Json& v, double lo, double hi,
                               double* out) const {
  if (!v.is_number()) return Error(key, "a number", DescribeJson(v));
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))  // NaN fails too (nlohmann never parses one, but a caller may pass)
    return Error(key, StrFormat("a number in [%g, %g]", lo, hi), DescribeJson(v));
  *out = x;
  return Status::Ok();
}

Status JsonObject::CheckString(const char* key, const Json& v, std::string* out) const {
  if (!v.is_string()) return Error(key, "a string", DescribeJson(v));
  *out = v.get<std::string>();
  return Status::Ok();
}

Status JsonObject::Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
  const Json* v = Raw(key);
  return v ? CheckInt(key, *v, lo, hi, out) : Error(key, "an integer", "nothing");
}

Status JsonObject::OptInt(const char* key, int64_t lo, int64_t hi, int64_t* out,
                          bool* found) const {
  const Json* v = Find(key);
  if (found) *found = v != nullptr;
  return v ? CheckInt(key, *v, lo, hi, out) : Status::Ok();
}

Status JsonObject::Number(const char* key, double lo, double hi, double* out) const {
  const Json* v = Raw(key);
  return v ? CheckNumber(key, *v, lo, hi, out) : Error(key, "a number", "nothing");
}

Status JsonObject::OptNumber(const char* key, double lo, double hi, double* out) const {
  const Json* v = Find(key);
  return v ? CheckNumber(key, *v, lo, hi, out) : Status::Ok();
}

Status JsonObject::String(const char* key, std::string* out) const {
  const Json* v = Raw(key);
  return v ? CheckString(key, *v, out) : Error(key, "a string", "nothing");
}

Status JsonObject::OptString(const char* key, std::string* out, bool* found) const {
  const Json* v = Find(key);
  if (found) *found = v != nullptr;
  return v ? CheckString(key, *v, out) : Status::Ok();
}

Status JsonObject::OptBool(const char* key, bool* out) const {
  const Json* v = Find(key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) return Error(key, "true or false", DescribeJson(*v));
  *out = v->get<bool>();
  return Status::Ok();
}

StatusOr<JsonObject> JsonObject::Object(const char* key) const {
  const Json* v = Raw(key);
  if (v == nullptr) return Error(key, "an object", "nothing");
  return Of(*v, file_, Field(key), null_is_absent_);
}

}  // namespace quamba
