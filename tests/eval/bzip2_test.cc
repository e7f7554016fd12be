// bzip2 decompression (libbz2): streams made by CPython's bz2 module, concatenated streams, the
// shared HellaSwag file against `bzcat`, and corrupt or truncated input as one-line errors.
#include "eval/bzip2.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "io/mapped_file.h"
#include "test_util.h"

namespace quamba {
namespace {

using ::testing::HasSubstr;

// bz2.compress(b"a"*1000 + b"bcd"*3 + b"e"*260 + b"\n", 1)
const std::string kRuns(
    "\x42\x5a\x68\x31\x31\x41\x59\x26\x53\x59\x63\xf0\x85\xed\x00\x00\x02\xc1\x01\xa0\x10\x3e\x00"
    "\x00\x80\x00\x08\x20\x00\x21\x14\x8d\x33\x50\x83\x26\x23\x2a\x3d\xb0\x64\x35\x8c\x76\xf8\xe0"
    "\x57\xc5\xdc\x91\x4e\x14\x24\x18\xfc\x21\x7b\x40",
    58);
// bz2.compress(b"second stream\n")
const std::string kSecond(
    "\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\x84\x52\x90\x94\x00\x00\x05\xd1\x80\x00\x10\x40\x00"
    "\x2e\x03\x9c\x00\x20\x00\x22\x00\xd0\xd0\x40\xd0\x34\x05\x04\xbd\x38\x4f\x1e\x1e\x2e\xe4\x8a"
    "\x70\xa1\x21\x08\xa5\x21\x28",
    53);

std::string Runs() { return std::string(1000, 'a') + "bcdbcdbcd" + std::string(260, 'e') + "\n"; }

TEST(Bzip2, DecodesRunsAndConcatenatedStreams) {
  auto one = Bzip2Decompress(kRuns, "runs.bz2");
  ASSERT_TRUE(one.ok()) << one.status().message();
  EXPECT_EQ(*one, Runs());
  auto two = Bzip2Decompress(kRuns + kSecond, "two.bz2");
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_EQ(*two, Runs() + "second stream\n");
}

TEST(Bzip2, CorruptInputIsAnErrorNamingTheFile) {
  auto bad = Bzip2Decompress("BZx9", "x.bz2");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("x.bz2: stream at byte 0: expected a bzip2 header (\"BZh1\"..\"BZh9\"), "
                        "found \"BZx9\""));
  auto empty = Bzip2Decompress("", "e.bz2");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("found the end of the file"));
  auto cut = Bzip2Decompress(kRuns.substr(0, 40), "cut.bz2");
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(cut.status().message(), HasSubstr("cut.bz2: stream at byte 0: expected more data"));
  // Garbage after a complete stream is not a second stream.
  auto tail = Bzip2Decompress(kRuns + "junk", "tail.bz2");
  ASSERT_FALSE(tail.ok());
  EXPECT_THAT(tail.status().message(), HasSubstr("tail.bz2: stream at byte 58: expected a bzip2"));
  // A flipped bit in the payload breaks a Huffman code, the BWT origin or the CRC: an error
  // every time, never a crash or silent garbage.
  for (size_t i = 10; i < kRuns.size(); ++i) {
    std::string s = kRuns;
    s[i] ^= 0x10;
    auto r = Bzip2Decompress(s, "flip.bz2");
    if (r.ok()) {
      EXPECT_EQ(*r, Runs()) << "byte " << i;  // a flip in unused padding bits
    }
  }
  std::string crc = kRuns;
  crc[10] ^= 1;  // the stored block CRC
  auto r = Bzip2Decompress(crc, "crc.bz2");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("crc.bz2: stream at byte 0: corrupt data"));
}

TEST(Bzip2, SharedHellaswagFileMatchesBzcat) {
  const std::string path = testing::SharedData("hellaswag/hellaswag_val_full.txt.bz2");
  auto raw = ReadFileToString(path);
  ASSERT_TRUE(raw.ok()) << raw.status().message();
  auto text = Bzip2Decompress(*raw, path);
  ASSERT_TRUE(text.ok()) << text.status().message();
  // Size and FNV-1a 64 of `bzcat hellaswag_val_full.txt.bz2`.
  EXPECT_EQ(text->size(), 7770677u);
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : *text) h = (h ^ c) * 0x100000001b3ull;
  EXPECT_EQ(h, 0x530d03318e891d12ull);
  EXPECT_EQ(std::count(text->begin(), text->end(), '\n'), 60252);
}

}  // namespace
}  // namespace quamba
