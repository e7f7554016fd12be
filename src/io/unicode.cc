#include "io/unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>

namespace quamba::unicode {

void AppendUtf8(int32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

CharClass ClassifySlow(int32_t cp) {
  // White_Space is a property, not a category: U+0085 is Cc and U+2028/9 are Zl/Zp.
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return CharClass::kSpace;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return CharClass::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return CharClass::kNumber;
    case UTF8PROC_CATEGORY_ZS:  // U+0020 U+00A0 U+1680 U+2000..200A U+202F U+205F U+3000
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return CharClass::kSpace;
    default:
      return CharClass::kOther;
  }
}

// ASCII dominates real text: classify it by table.
const std::array<CharClass, 128> kAsciiClass = [] {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) t[c] = ClassifySlow(c);
  return t;
}();

struct ByteLevelTables {
  std::array<int32_t, 256> byte_to_cp{};
  std::array<int16_t, 324> cp_to_byte{};  // the alphabet lies within U+0021..U+0143
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables t = [] {
    ByteLevelTables t;
    t.cp_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t.byte_to_cp[b] = printable ? b : next++;
      t.cp_to_byte[t.byte_to_cp[b]] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

CharClass Classify(int32_t cp) {
  if (cp < 0) return CharClass::kOther;
  if (cp < 128) return kAsciiClass[cp];
  return ClassifySlow(cp);
}

std::string Normalize(std::string_view s, NormalForm form) {
  bool ascii = true;
  for (char c : s) ascii &= static_cast<uint8_t>(c) < 0x80;
  if (ascii) return std::string(s);

  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNFC:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalForm::kNFD:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalForm::kNFKC:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalForm::kNFKD:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  std::string out;
  out.reserve(s.size());
  auto flush_run = [&](size_t begin, size_t end) {
    if (begin == end) return;
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + begin),
                     static_cast<utf8proc_ssize_t>(end - begin), &mapped,
                     static_cast<utf8proc_option_t>(options));
    if (n >= 0) {
      out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    } else {
      out.append(s.substr(begin, end - begin));  // unreachable: the run was validated
    }
    std::free(mapped);
  };
  size_t run = 0;
  for (size_t i = 0; i < s.size();) {
    int len;
    if (DecodeUtf8(s, i, &len) < 0) {
      flush_run(run, i);
      out.push_back(s[i]);
      run = i + 1;
    }
    i += len;
  }
  flush_run(run, s.size());
  return out;
}

int32_t ByteToCodePoint(uint8_t b) { return Tables().byte_to_cp[b]; }

int ByteFromCodePoint(int32_t cp) {
  if (cp < 0 || cp >= static_cast<int32_t>(Tables().cp_to_byte.size())) return -1;
  return Tables().cp_to_byte[cp];
}

std::string ToByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(ByteToCodePoint(static_cast<uint8_t>(c)), &out);
  return out;
}

bool FromByteLevel(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size();) {
    int len;
    const int b = ByteFromCodePoint(DecodeUtf8(text, i, &len));
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
    i += len;
  }
  return true;
}

}  // namespace quamba::unicode
