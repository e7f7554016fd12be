#include "model/state.h"

#include <algorithm>

namespace quamba {

int StateLayout::AddLayer(std::vector<StateBufferSpec> buffers) {
  std::vector<size_t> off;
  for (const StateBufferSpec& b : buffers) {
    off.push_back(bytes_);
    const size_t n = static_cast<size_t>(b.elems) * DTypeSize(b.dtype);
    bytes_ += (n + 63) / 64 * 64;  // each buffer 64-byte aligned relative to the start
  }
  specs_.push_back(std::move(buffers));
  offsets_.push_back(std::move(off));
  return layers() - 1;
}

SequenceState::SequenceState(const StateLayout* layout)
    : layout_(layout), words_((layout->bytes() + 7) / 8, 0) {}

void SequenceState::Reset() {
  std::fill(words_.begin(), words_.end(), 0);
  n_tokens = 0;
}

}  // namespace quamba
