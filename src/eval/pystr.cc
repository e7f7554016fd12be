#include "eval/pystr.h"

#include <utf8proc.h>

namespace quamba::pystr {
namespace {

// Decodes the code point at s[i] and its byte length; an invalid byte is itself (length 1).
char32_t Next(std::string_view s, size_t i, size_t* len) {
  utf8proc_int32_t cp = -1;
  const utf8proc_ssize_t n =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                       static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  if (n <= 0) {
    *len = 1;
    return static_cast<unsigned char>(s[i]);
  }
  *len = static_cast<size_t>(n);
  return static_cast<char32_t>(cp);
}

void Append(std::string* out, char32_t c) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

}  // namespace

bool IsSpace(char32_t c) {
  // Python's str.isspace(): bidirectional class WS, B or S, or category Zs.
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
  switch (c) {
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200a;
  }
}

std::string_view Strip(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t n;
    if (!IsSpace(Next(s, b, &n))) break;
    b += n;
  }
  size_t e = b;  // end of the last non-space code point
  for (size_t i = b; i < s.size();) {
    size_t n;
    const bool space = IsSpace(Next(s, i, &n));
    i += n;
    if (!space) e = i;
  }
  return s.substr(b, e - b);
}

std::string_view RStrip(std::string_view s) {
  size_t e = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n;
    const bool space = IsSpace(Next(s, i, &n));
    i += n;
    if (!space) e = i;
  }
  return s.substr(0, e);
}

int64_t Len(std::string_view s) {
  int64_t count = 0;
  for (size_t i = 0; i < s.size(); ++count) {
    size_t n;
    Next(s, i, &n);
    i += n;
  }
  return count;
}

std::string Capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool first = true;
  for (size_t i = 0; i < s.size();) {
    size_t n;
    const char32_t c = Next(s, i, &n);
    const bool valid = n > 1 || c < 0x80;
    if (!valid) {
      out.push_back(s[i]);
    } else {
      Append(&out,
             static_cast<char32_t>(first ? utf8proc_totitle(static_cast<utf8proc_int32_t>(c))
                                         : utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
    first = false;
    i += n;
  }
  return out;
}

std::string Replace(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    const size_t j = s.find(from, i);
    if (j == std::string_view::npos) break;
    out.append(s.substr(i, j - i));
    out.append(to);
    i = j + from.size();
  }
  out.append(s.substr(i));
  return out;
}

}  // namespace quamba::pystr
