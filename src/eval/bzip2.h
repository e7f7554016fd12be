// bzip2 decompression for evaluation data shipped compressed (HellaSwag's text form is a .bz2),
// through Debian's libbz2 (libbz2-dev).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace quamba {

// Decompresses one or more concatenated bzip2 streams (as `bzcat` does). Errors name `name`
// (the file), the byte offset of the stream and what was wrong, e.g. "x.bz2: stream at byte 0:
// expected a bzip2 header ("BZh1".."BZh9"), found ...".
StatusOr<std::string> Bzip2Decompress(std::string_view data, const std::string& name);

}  // namespace quamba
