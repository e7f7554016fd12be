#include "eval/bzip2.h"

#include <bzlib.h>

#include <climits>
#include <cstring>

namespace quamba {
namespace {

// bzip2's stream header: "BZh" then the block size '1'..'9'.
bool HasHeader(std::string_view s) {
  return s.size() >= 4 && s[0] == 'B' && s[1] == 'Z' && s[2] == 'h' && s[3] >= '1' && s[3] <= '9';
}

std::string Printable(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 4)) {
    const unsigned char u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? std::string(1, c) : StrFormat("\\x%02x", u);
  }
  return out + "\"";
}

}  // namespace

StatusOr<std::string> Bzip2Decompress(std::string_view data, const std::string& name) {
  std::string out;
  size_t pos = 0;
  char buf[1 << 16];
  // One stream per iteration; bzcat accepts concatenated streams, so do we.
  do {
    const std::string_view rest = data.substr(pos);
    if (!HasHeader(rest))
      return Status::Error(StrFormat("%s: stream at byte %zu: expected a bzip2 header "
                                     "(\"BZh1\"..\"BZh9\"), found %s", name.c_str(), pos,
                                     rest.empty() ? "the end of the file"
                                                  : Printable(rest).c_str()));
    bz_stream bz;
    std::memset(&bz, 0, sizeof bz);
    if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK)
      return Status::Error(StrFormat("%s: cannot initialise the bzip2 decoder", name.c_str()));
    // The decoder takes at most UINT_MAX bytes at a time; it keeps the position itself.
    size_t fed = 0;
    int rc = BZ_OK;
    while (rc == BZ_OK) {
      if (bz.avail_in == 0 && fed < rest.size()) {
        const size_t n = std::min<size_t>(rest.size() - fed, UINT_MAX);
        bz.next_in = const_cast<char*>(rest.data() + fed);
        bz.avail_in = static_cast<unsigned>(n);
        fed += n;
      }
      bz.next_out = buf;
      bz.avail_out = sizeof buf;
      rc = BZ2_bzDecompress(&bz);
      out.append(buf, sizeof buf - bz.avail_out);
      if (rc == BZ_OK && bz.avail_in == 0 && fed == rest.size() && bz.avail_out != 0) {
        BZ2_bzDecompressEnd(&bz);
        return Status::Error(StrFormat("%s: stream at byte %zu: expected more data, found the "
                                       "end of the file (truncated)", name.c_str(), pos));
      }
    }
    const size_t consumed = fed - bz.avail_in;
    BZ2_bzDecompressEnd(&bz);
    if (rc != BZ_STREAM_END)
      return Status::Error(StrFormat(
          "%s: stream at byte %zu: %s", name.c_str(), pos,
          rc == BZ_DATA_ERROR        ? "corrupt data (a block or stream CRC, or a code, does "
                                       "not check out)"
          : rc == BZ_DATA_ERROR_MAGIC ? "bad stream header"
          : rc == BZ_MEM_ERROR        ? "out of memory"
                                      : "decoder error"));
    pos += consumed;
  } while (pos < data.size());
  return out;
}

}  // namespace quamba
