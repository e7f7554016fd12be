// A block is one kind of layer of an architecture (Mamba-1 float, static int8, dynamic int8...).
// The runtime creates one Block per kind its model's layers use (a model can mix kinds layer by
// layer), hands it scratch memory, threads and kernels at construction, and calls Forward for
// each layer of that kind. A block owns no state: the per-sequence recurrent state is in the
// SequenceState, laid out as the block described (StateBuffers).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "format/config.h"
#include "kernels/kernels.h"
#include "kernels/q8.h"
#include "model/int8_gemm.h"
#include "model/state.h"
#include "model/taps.h"

namespace quamba {

// Rows [0, T) of the runtime's streams, for one layer.
struct BlockIo {
  int64_t T = 0;
  // Prefill: T consecutive tokens of states[0]. Decode (per_row_states): row t is one token of
  // sequence states[t].
  SequenceState* const* states = nullptr;
  bool per_row_states = false;
  float* residual = nullptr;  // (T, d_model) the residual stream, fp32
  // (T, d_model): in, the previous layer's mixer output (to add to the residual; ignored for
  // layer 0, whose residual already holds the embedding); out, this layer's mixer output.
  float* h = nullptr;
  ActivationObserver* observer = nullptr;  // prefill only; may be null
};

class Block {
 public:
  virtual ~Block() = default;
  // residual += h (layer > 0); h = mixer(norm(residual)); states of the rows updated.
  virtual void Forward(int layer, const BlockIo& io) = 0;
};

struct ModelWeights;
class Scratch;

// What a block is built with. References must outlive the block.
struct BlockEnv {
  const MambaConfig& c;
  const ModelWeights& w;
  ThreadPool& pool;
  const kernels::KernelTable& k;
  const kernels::KernelTable& q8;
  Int8Gemm* gemm;  // int8 blocks: integer kernels or --simulate
  Scratch& scratch;
  int64_t max_rows;  // rows per Forward (prefill chunk or decode batch)
};

// Scratch memory owned by the runtime, handed out to blocks at construction (no allocation in
// the forward pass). Buffers stay valid for the runtime's lifetime.
class Scratch {
 public:
  template <typename T>
  T* Alloc(int64_t n) {
    bufs_.emplace_back(static_cast<size_t>(n) * sizeof(T) + 64, 0);
    uint8_t* p = bufs_.back().data();
    p += (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;  // 64-byte aligned
    return reinterpret_cast<T*>(p);
  }
  size_t bytes() const {
    size_t b = 0;
    for (const auto& v : bufs_) b += v.size();
    return b;
  }

 private:
  std::vector<std::vector<uint8_t>> bufs_;
};

}  // namespace quamba
