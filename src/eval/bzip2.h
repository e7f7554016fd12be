// bzip2 decompression for evaluation data shipped compressed (HellaSwag's text form is a .bz2).
// A small self-contained decoder so the library needs no libbz2: Huffman + MTF/RLE2 + inverse
// BWT + RLE1, with the block and stream CRCs checked. Randomised blocks (never written by
// bzip2 >= 0.9.5) are rejected.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace quamba {

// Decompresses one or more concatenated bzip2 streams. Errors name `name` (the file) and what
// was wrong: "x.bz2: block 3: expected block CRC 0x1234abcd, found 0x...".
StatusOr<std::string> Bzip2Decompress(std::string_view data, const std::string& name);

}  // namespace quamba
