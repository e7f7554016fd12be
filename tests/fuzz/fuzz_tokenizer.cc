#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_targets.h"
#include "io/tokenizer.h"

namespace quamba::fuzz {

int FuzzTokenizer(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tok = Tokenizer::FromJson(text, "tokenizer.json");
  if (!tok.ok()) return 0;
  for (std::string_view s : {std::string_view("Hello world, it's 2024!  \n\t<|endoftext|>"),
                             std::string_view("\xff\xfe caf\xc3\xa9 \xef\xac\x81x"),
                             text.substr(0, 64)}) {
    const std::vector<int32_t> ids = tok->Encode(s);
    (void)tok->Decode(ids);
    for (int32_t id : ids) (void)tok->DecodeToken(id);
  }
  (void)tok->DecodeToken(-1);
  (void)tok->DecodeToken(tok->vocab_size());
  return 0;
}

}  // namespace quamba::fuzz
