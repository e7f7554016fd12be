// Mamba-1 as the runtime sees it: its activation taps, its kinds of block (a model may use
// different kinds in different layers), the state each kind keeps, and the factory that builds
// a block. Weights: model/weights.h. The block forwards: float_block.cc, q8_block.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "format/config.h"
#include "kernels/kernels.h"
#include "kernels/q8.h"
#include "model/block.h"
#include "model/int8_gemm.h"
#include "model/weights.h"
#include "model/state.h"

namespace quamba::mamba1 {

// The activations at Quamba's quantization points (spec §2.3), as the float forward sees them.
enum class Tap : uint8_t {
  kInProjIn,    // RMSNorm output, (T, d_model)
  kInProjOut,   // xz = [x | z], (T, 2*d_inner)
  kXProjIn,     // SiLU(conv(x)) = SSM input u, (T, d_inner)
  kXProjOut,    // x_dbl = [dt_low | B | C], (T, dt_rank + 2*d_state)
  kDtProjOut,   // dt before bias/softplus, (T, d_inner)
  kOutProjIn,   // y * SiLU(z) before any rotation, (T, d_inner)
  kOutProjOut,  // mixer output, (T, d_model)
};
constexpr int kNumTaps = 7;
const char* TapName(Tap t);  // "in_proj:input", ... (the official code's keys)

enum class BlockKind : uint8_t {
  kFloat,        // float32 compute over F32/F16/BF16 weights
  kStaticInt8,   // static W8A8 (quamba, minmax, smoothquant) with integer kernels
  kDynamicInt8,  // per-token dynamic W8A8: int8 GEMMs, float conv and scan
};
const char* BlockKindName(BlockKind k);

// State buffers of one layer: 0 = conv window (d_conv-1, d_inner), 1 = SSM state
// (d_inner, d_state) float32. The conv window is int8 for kStaticInt8 (it holds int8 inputs).
enum StateBuf : int { kConvState = 0, kSsmState = 1 };
std::vector<StateBufferSpec> StateBuffers(BlockKind kind, const MambaConfig& c);

// What a block is built with. References must outlive the block.
struct BlockEnv {
  const MambaConfig& c;
  const ModelWeights& w;
  ThreadPool& pool;
  const kernels::KernelTable& k;
  const kernels::Q8KernelTable& q8;
  Int8Gemm* gemm;  // int8 blocks: integer kernels or --simulate
  Scratch& scratch;
  int64_t max_rows;  // rows per Forward (prefill chunk or decode batch)
};
// qc: the quantization config of an int8 kind (recipe switches); null for kFloat.
std::unique_ptr<Block> MakeBlock(BlockKind kind, const BlockEnv& env, const QuantConfig* qc);

// Every int8 matrix the blocks and the int8 lm_head use (for --simulate's float copies).
std::vector<QMatrix> Int8Matrices(const ModelWeights& w);

}  // namespace quamba::mamba1
