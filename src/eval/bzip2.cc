#include "eval/bzip2.h"

#include <array>
#include <cstdint>
#include <vector>

namespace quamba {
namespace {

constexpr int kMaxCodeLen = 20;  // bzip2 Huffman codes are 1..20 bits
constexpr int kGroupSize = 50;   // symbols decoded with one selector
constexpr int kMaxAlpha = 258;   // 256 MTF values + RUNA/RUNB - 1 + EOB
constexpr uint64_t kBlockMagic = 0x314159265359ull;
constexpr uint64_t kEndMagic = 0x177245385090ull;

// MSB-first bit reader. Reading past the end yields zero bits and sets `eof`; callers check it
// where a truncated stream would otherwise be misread.
class BitReader {
 public:
  explicit BitReader(std::string_view s, size_t byte = 0) : s_(s), byte_(byte) {}
  uint32_t Get(int k) {  // 1 <= k <= 32
    while (n_ < k) {
      acc_ = (acc_ << 8) | (byte_ < s_.size() ? static_cast<uint8_t>(s_[byte_]) : 0);
      if (byte_ >= s_.size()) eof_ = true;
      ++byte_;
      n_ += 8;
    }
    n_ -= k;
    return static_cast<uint32_t>((acc_ >> n_) & ((uint64_t{1} << k) - 1));
  }
  // Byte offset of the next unread whole byte (after dropping the partial byte).
  size_t AlignedByte() const { return byte_ - n_ / 8; }
  bool eof() const { return eof_; }

 private:
  std::string_view s_;
  size_t byte_;
  uint64_t acc_ = 0;
  int n_ = 0;
  bool eof_ = false;
};

// bzip2's CRC: CRC-32 with polynomial 0x04C11DB7, MSB first (not the zlib bit order).
const std::array<uint32_t, 256>& CrcTable() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> r{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i << 24;
      for (int k = 0; k < 8; ++k) c = (c & 0x80000000u) ? (c << 1) ^ 0x04C11DB7u : (c << 1);
      r[i] = c;
    }
    return r;
  }();
  return t;
}

// Canonical Huffman decoding table of one coding group (codes assigned in order of length,
// then symbol index, as the encoder does).
struct HuffTable {
  int min_len = 0, max_len = 0;
  std::array<int32_t, kMaxCodeLen + 2> limit{}, base{};
  std::array<uint16_t, kMaxAlpha> perm{};

  void Build(const uint8_t* len, int alpha) {
    min_len = kMaxCodeLen;
    max_len = 0;
    for (int i = 0; i < alpha; ++i) {
      min_len = std::min<int>(min_len, len[i]);
      max_len = std::max<int>(max_len, len[i]);
    }
    int p = 0;
    for (int l = min_len; l <= max_len; ++l)
      for (int s = 0; s < alpha; ++s)
        if (len[s] == l) perm[p++] = static_cast<uint16_t>(s);
    std::array<int32_t, kMaxCodeLen + 2> count{};  // count[l + 1] = symbols of length l
    for (int s = 0; s < alpha; ++s) ++count[len[s] + 1];
    for (int l = 1; l < kMaxCodeLen + 2; ++l) count[l] += count[l - 1];  // symbols shorter than l
    int32_t code = 0;
    for (int l = min_len; l <= max_len; ++l) {
      const int32_t n_l = count[l + 1] - count[l];
      base[l] = code - count[l];  // code - base = index into perm
      code += n_l;
      limit[l] = code - 1;  // largest code of length l (-1 + first when none)
      code <<= 1;
    }
  }

  // Returns the symbol, or -1 on an invalid code.
  int Decode(BitReader& br) const {
    int l = min_len;
    int32_t v = static_cast<int32_t>(br.Get(l));
    while (true) {
      if (v <= limit[l]) {
        const int32_t idx = v - base[l];
        return idx >= 0 && idx < kMaxAlpha ? perm[idx] : -1;
      }
      if (++l > max_len) return -1;
      v = (v << 1) | static_cast<int32_t>(br.Get(1));
    }
  }
};

class Decoder {
 public:
  Decoder(std::string_view in, const std::string& name) : in_(in), name_(name) {}

  StatusOr<std::string> Run() {
    std::string out;
    size_t pos = 0;
    int stream = 0;
    while (pos < in_.size()) {
      // Concatenated streams (pbzip2, `cat a.bz2 b.bz2`) follow byte-aligned; trailing zero
      // padding after the last one is tolerated, as bzip2 does.
      if (stream > 0 && in_.substr(pos).find_first_not_of('\0') == std::string_view::npos) break;
      QM_RETURN_IF_ERROR(Stream(&pos, &out));
      ++stream;
    }
    if (stream == 0)
      return Err("expected a bzip2 stream (\"BZh1\"..\"BZh9\"), found an empty file");
    return out;
  }

 private:
  Status Err(const std::string& what) const {
    return Status::Error(StrFormat("%s: %s", name_.c_str(), what.c_str()));
  }

  Status Stream(size_t* pos, std::string* out) {
    const std::string_view h = in_.substr(*pos, 4);
    if (h.size() < 4 || h.substr(0, 3) != "BZh" || h[3] < '1' || h[3] > '9')
      return Err(
          StrFormat("byte %zu: expected a bzip2 stream header (\"BZh1\"..\"BZh9\"), found "
                    "\"%s\"",
                    *pos, std::string(h).c_str()));
    max_block_ = (h[3] - '0') * 100000;
    BitReader br(in_, *pos + 4);
    uint32_t combined = 0;
    while (true) {
      const uint64_t magic = (uint64_t{br.Get(24)} << 24) | br.Get(24);
      if (magic == kEndMagic) {
        const uint32_t want = br.Get(32);
        if (br.eof()) return Err("expected a stream CRC, found the end of the file");
        if (want != combined)
          return Err(StrFormat("expected stream CRC 0x%08x, found 0x%08x", want, combined));
        break;
      }
      if (magic != kBlockMagic || br.eof())
        return Err(StrFormat("block %d: expected a block header (0x314159265359), found 0x%012llx",
                             block_ + 1, static_cast<unsigned long long>(magic)));
      ++block_;
      const uint32_t want = br.Get(32);
      uint32_t crc = 0;
      QM_RETURN_IF_ERROR(Block(br, out, &crc));
      if (crc != want)
        return Err(
            StrFormat("block %d: expected block CRC 0x%08x, found 0x%08x", block_, want, crc));
      combined = ((combined << 1) | (combined >> 31)) ^ crc;
    }
    *pos = br.AlignedByte();
    return Status::Ok();
  }

  Status Block(BitReader& br, std::string* out, uint32_t* crc_out) {
    auto bad = [&](const char* what) { return Err(StrFormat("block %d: %s", block_, what)); };
    if (br.Get(1)) return bad("expected a non-randomised block, found the randomised flag set");
    const uint32_t orig_ptr = br.Get(24);

    // Symbol map: which byte values occur in the block.
    std::array<uint8_t, 256> seq_to_unseq{};
    int n_in_use = 0;
    const uint32_t used16 = br.Get(16);
    for (int i = 0; i < 16; ++i)
      if (used16 & (0x8000u >> i))
        for (int j = 0; j < 16; ++j)
          if (br.Get(1)) seq_to_unseq[n_in_use++] = static_cast<uint8_t>(i * 16 + j);
    if (n_in_use == 0) return bad("expected at least one byte value in use, found none");
    const int alpha = n_in_use + 2;

    const int n_groups = static_cast<int>(br.Get(3));
    if (n_groups < 2 || n_groups > 6) return bad("expected 2..6 Huffman groups");
    const int n_selectors = static_cast<int>(br.Get(15));
    if (n_selectors < 1) return bad("expected at least one selector, found 0");
    std::vector<uint8_t> selectors(n_selectors);
    std::array<uint8_t, 6> mtf_groups = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < n_selectors; ++i) {
      int j = 0;
      while (br.Get(1)) {
        if (++j >= n_groups) return bad("expected a selector below the group count");
      }
      const uint8_t v = mtf_groups[j];
      for (; j > 0; --j) mtf_groups[j] = mtf_groups[j - 1];
      mtf_groups[0] = v;
      selectors[i] = v;
    }

    std::array<HuffTable, 6> tables;
    std::array<uint8_t, kMaxAlpha> len{};
    for (int t = 0; t < n_groups; ++t) {
      int cur = static_cast<int>(br.Get(5));
      for (int s = 0; s < alpha; ++s) {
        while (true) {
          if (cur < 1 || cur > kMaxCodeLen) return bad("expected code lengths in 1..20");
          if (!br.Get(1)) break;
          cur += br.Get(1) ? -1 : 1;
        }
        len[s] = static_cast<uint8_t>(cur);
      }
      tables[t].Build(len.data(), alpha);
    }
    if (br.eof()) return bad("expected block tables, found the end of the file");

    // Huffman -> RUNA/RUNB run lengths and move-to-front indices -> the BWT's last column.
    tt_.assign(max_block_, 0);
    std::array<int32_t, 256> counts{};
    std::array<uint8_t, 256> mtf;
    for (int i = 0; i < 256; ++i) mtf[i] = static_cast<uint8_t>(i);
    const int eob = n_in_use + 1;
    int64_t n = 0, run = 0, run_bit = 1;
    int group = -1, left = 0;
    while (true) {
      if (left == 0) {
        if (++group >= n_selectors)
          return bad(
              "expected the end-of-block symbol, ran out of "
              "selectors");
        left = kGroupSize;
      }
      --left;
      const int sym = tables[selectors[group]].Decode(br);
      if (sym < 0 || sym > eob || br.eof()) return bad("expected a valid Huffman code");
      if (sym <= 1) {  // RUNA / RUNB: bijective base-2 digits of a run of the front byte
        run += (sym == 0 ? 1 : 2) * run_bit;
        run_bit <<= 1;
        if (run > max_block_) return bad("expected a run within the block size");
        continue;
      }
      if (run > 0) {
        if (n + run > max_block_) return bad("expected at most the declared block size");
        const uint8_t b = seq_to_unseq[mtf[0]];
        counts[b] += static_cast<int32_t>(run);
        for (; run > 0; --run) tt_[n++] = b;
        run_bit = 1;
      }
      if (sym == eob) break;
      int j = sym - 1;
      const uint8_t v = mtf[j];
      for (; j > 0; --j) mtf[j] = mtf[j - 1];
      mtf[0] = v;
      if (n >= max_block_) return bad("expected at most the declared block size");
      const uint8_t b = seq_to_unseq[v];
      ++counts[b];
      tt_[n++] = b;
    }
    if (orig_ptr >= n) return bad("expected the BWT origin inside the block");

    // Inverse BWT: low byte of tt[i] is the last-column byte, high bits link to the next row.
    std::array<int32_t, 256> cf{};
    for (int i = 1; i < 256; ++i) cf[i] = cf[i - 1] + counts[i - 1];
    for (int64_t i = 0; i < n; ++i) tt_[cf[tt_[i] & 0xff]++] |= static_cast<uint32_t>(i) << 8;

    // Undo the initial RLE (4 equal bytes then a count of further copies) while computing the CRC.
    const auto& crc_tab = CrcTable();
    uint32_t crc = 0xffffffffu;
    auto emit = [&](uint8_t b) {
      out->push_back(static_cast<char>(b));
      crc = (crc << 8) ^ crc_tab[(crc >> 24) ^ b];
    };
    uint32_t p = tt_[orig_ptr] >> 8;
    int last = -1, same = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t e = tt_[p];
      const uint8_t b = static_cast<uint8_t>(e & 0xff);
      p = e >> 8;
      if (same == 4) {
        for (int k = 0; k < b; ++k) emit(static_cast<uint8_t>(last));
        same = 0;
        continue;
      }
      emit(b);
      if (b == last) {
        ++same;
      } else {
        last = b;
        same = 1;
      }
    }
    *crc_out = ~crc;
    return Status::Ok();
  }

  std::string_view in_;
  const std::string& name_;
  int64_t max_block_ = 0;
  int block_ = 0;
  std::vector<uint32_t> tt_;
};

}  // namespace

StatusOr<std::string> Bzip2Decompress(std::string_view data, const std::string& name) {
  return Decoder(data, name).Run();
}

}  // namespace quamba
