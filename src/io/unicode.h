// Small Unicode helpers for the tokenizer: UTF-8 decoding that tolerates invalid bytes, the
// character classes of the GPT-2 split pattern, normalization through utf8proc, and the GPT-2
// byte-level alphabet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace quamba::unicode {

// Decodes one code point at s[pos]. Returns it and sets *len to its byte length, or returns -1 with
// *len = 1 when the bytes there are not valid UTF-8 (truncated, overlong, surrogate, > U+10FFFF,
// stray continuation byte): such a byte is a unit of its own. Requires pos < s.size().
inline int32_t DecodeUtf8(std::string_view s, size_t pos, int* len) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + pos;
  const size_t n = s.size() - pos;
  const uint8_t b0 = p[0];
  *len = 1;
  if (b0 < 0x80) return b0;
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return -1;
    *len = 2;
    return ((b0 & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return -1;
    const int32_t cp = ((b0 & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;  // overlong or surrogate
    *len = 3;
    return cp;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return -1;
    const int32_t cp =
        ((b0 & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    if (cp < 0x10000 || cp > 0x10FFFF) return -1;
    *len = 4;
    return cp;
  }
  return -1;
}

// Appends the UTF-8 encoding of a valid code point.
void AppendUtf8(int32_t cp, std::string* out);

// The classes the GPT-2 pattern distinguishes. An invalid byte (cp < 0) is kOther, as U+FFFD
// (category So) would be.
enum class CharClass : uint8_t {
  kLetter,  // \p{L}: Lu Ll Lt Lm Lo
  kNumber,  // \p{N}: Nd Nl No
  kSpace,   // \s: the White_Space property (the same set in Oniguruma, Rust regex and Rust char)
  kOther,
};
CharClass Classify(int32_t cp);

inline bool IsWhiteSpace(int32_t cp) { return cp >= 0 && Classify(cp) == CharClass::kSpace; }

// Approximates Rust's char::is_alphanumeric() (Alphabetic || Numeric) by the categories L*, N*
// (Rust's Alphabetic also holds some marks and symbols; only single_word added tokens use this).
inline bool IsAlphanumeric(int32_t cp) {
  const CharClass c = cp >= 0 ? Classify(cp) : CharClass::kOther;
  return c == CharClass::kLetter || c == CharClass::kNumber;
}

enum class NormalForm : uint8_t { kNFC, kNFD, kNFKC, kNFKD };

// Normalizes every maximal run of valid UTF-8 in s; invalid bytes are kept where they are (nothing
// composes across them). ASCII is left alone without calling utf8proc.
std::string Normalize(std::string_view s, NormalForm form);

// The GPT-2 byte-level alphabet: byte b <-> a printable code point (printable Latin-1 bytes map to
// themselves, the other 68 to U+0100 upwards in byte order).
int32_t ByteToCodePoint(uint8_t b);
// The byte for an alphabet code point, or -1 if cp is not in the alphabet.
int ByteFromCodePoint(int32_t cp);

// Maps raw bytes to their byte-level string (UTF-8 of the alphabet code points).
std::string ToByteLevel(std::string_view bytes);
// Inverse of ToByteLevel. Returns false (out unspecified) if a code point is outside the alphabet
// or text is not valid UTF-8.
bool FromByteLevel(std::string_view text, std::string* out);

}  // namespace quamba::unicode
