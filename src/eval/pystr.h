// Python str semantics on UTF-8 text, for building prompts byte-for-byte as lm-evaluation-
// harness and HF datasets do: str.strip(), str.isspace(), len() (code points, not bytes),
// str.capitalize(), str.replace(). Invalid UTF-8 bytes count as one code point each.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace quamba::pystr {

// Python 3's str.isspace() for one code point.
bool IsSpace(char32_t c);
// str.strip() / str.rstrip() with no argument: Unicode whitespace from both ends / the end.
std::string_view Strip(std::string_view s);
std::string_view RStrip(std::string_view s);
// len(s): number of code points.
int64_t Len(std::string_view s);
// s.capitalize(): first code point title-cased, the rest lower-cased (Python >= 3.8).
std::string Capitalize(std::string_view s);
// s.replace(from, to): every non-overlapping occurrence, left to right.
std::string Replace(std::string_view s, std::string_view from, std::string_view to);

}  // namespace quamba::pystr
