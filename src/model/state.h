// Recurrent state of one sequence: constant size, whatever its length. Its layout is described by
// the architecture's blocks (each layer lists its buffers: a Mamba-1 layer has a conv window and
// an SSM state, in the dtypes its block keeps them); SequenceState is one contiguous allocation
// cut by that layout, so copying a state (forking a sequence in `eval`) is one memcpy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"

namespace quamba {

// One buffer of one layer's state.
struct StateBufferSpec {
  const char* name;  // "conv", "ssm", ...
  DType dtype;
  int64_t elems;
};

class StateLayout {
 public:
  // Appends layer `layers()`'s buffers; returns its index.
  int AddLayer(std::vector<StateBufferSpec> buffers);
  int layers() const { return static_cast<int>(specs_.size()); }
  const StateBufferSpec& spec(int layer, int buf) const { return specs_[layer][buf]; }
  int buffers(int layer) const { return static_cast<int>(specs_[layer].size()); }
  size_t offset(int layer, int buf) const { return offsets_[layer][buf]; }
  size_t bytes() const { return bytes_; }

 private:
  std::vector<std::vector<StateBufferSpec>> specs_;
  std::vector<std::vector<size_t>> offsets_;  // byte offsets, 64-byte aligned
  size_t bytes_ = 0;
};

class SequenceState {
 public:
  SequenceState() = default;  // empty: no layout (assign a Model::NewState() before use)
  explicit SequenceState(const StateLayout* layout);

  // Buffer `buf` of `layer` as T.
  template <typename T>
  T* Get(int layer, int buf) {
    QM_DCHECK(layout_ != nullptr && sizeof(T) == DTypeSize(layout_->spec(layer, buf).dtype));
    return reinterpret_cast<T*>(reinterpret_cast<uint8_t*>(words_.data()) +
                                layout_->offset(layer, buf));
  }
  void Reset();  // zeros (a new sequence), n_tokens = 0
  const StateLayout* layout() const { return layout_; }
  size_t bytes() const { return layout_ ? layout_->bytes() : 0; }
  // The whole state as bytes() raw bytes (to save it to a file and load it back).
  uint8_t* data() { return reinterpret_cast<uint8_t*>(words_.data()); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(words_.data()); }
  // Same layout and the same bytes (n_tokens not compared).
  bool SameContents(const SequenceState& o) const {
    return layout_ == o.layout_ && words_ == o.words_;
  }

  int64_t n_tokens = 0;  // tokens consumed so far

 private:
  const StateLayout* layout_ = nullptr;
  std::vector<uint64_t> words_;  // the buffers, 8-byte aligned storage
};

}  // namespace quamba
