// The architectures the runtime runs, as one switch: each layer of a model has a BlockKind
// (architecture x precision; a model may mix precisions layer by layer), and this file turns a
// kind into its state buffers and its Block. Adding an architecture: a folder under model/
// (its taps, its blocks, its state), a few BlockKinds, and the cases here.
#pragma once

#include <memory>
#include <vector>

#include "format/config.h"
#include "format/quantized.h"
#include "model/block.h"
#include "model/state.h"

namespace quamba {

enum class BlockKind : uint8_t {
  kMamba1Float,        // float32 compute over F32/F16/BF16 weights (also FalconMamba)
  kMamba1StaticInt8,   // static W8A8 (quamba, minmax, smoothquant) with integer kernels
  kMamba1DynamicInt8,  // per-token dynamic W8A8: int8 GEMMs, float conv and scan
  kMamba2Float,        // float32 Mamba-2: chunked SSD prefill, recurrent decode
  kMamba2StaticInt8,   // Quamba2 A8 Mamba-2: int8 GEMMs, conv and SSM state
};
const char* BlockKindName(BlockKind k);

// The state buffers one layer of this kind keeps. qc: the quantization config of an int8 kind
// (its SSM state dtype); null for float kinds.
std::vector<StateBufferSpec> StateBuffers(BlockKind kind, const MambaConfig& c,
                                          const QuantConfig* qc = nullptr);
// qc: the quantization config of an int8 kind; null for float kinds.
std::unique_ptr<Block> MakeBlock(BlockKind kind, const BlockEnv& env, const QuantConfig* qc);
// Every int8 matrix the blocks and the int8 lm_head of `w` use (for --simulate's float copies).
std::vector<QMatrix> Int8Matrices(const MambaConfig& c, const ModelWeights& w);

}  // namespace quamba
