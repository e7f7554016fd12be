// Mamba-1 as the runtime sees it: its activation taps, the state a layer keeps, and its blocks
// (float, static int8, dynamic int8; model/arch.h chooses per layer). Weights: model/weights.h. The block forwards: float_block.cc, q8_block.cc.
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
#include "format/quantized.h"
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

// State buffers of one layer: 0 = conv window (d_conv-1, d_inner), 1 = SSM state
// (d_inner, d_state). The conv window is int8 for kStaticInt8 (it holds int8 inputs); the SSM
// state float32, or int8 where the model has QuantConfig::SsmStateInt8.
enum StateBuf : int { kConvState = 0, kSsmState = 1 };
// `int8_conv`: the conv window holds int8 inputs (static int8 blocks); `int8_ssm`: the SSM
// state is int8 codes of the layer's s_ssm_state.
std::vector<StateBufferSpec> StateBuffers(const MambaConfig& c, bool int8_conv, bool int8_ssm);

std::unique_ptr<Block> MakeFloatBlock(const BlockEnv& env);
// qc: the recipe's switches (SmoothQuant, Hadamard).
std::unique_ptr<Block> MakeStaticInt8Block(const BlockEnv& env, const QuantConfig& qc);
std::unique_ptr<Block> MakeDynamicInt8Block(const BlockEnv& env);

// Every int8 matrix the blocks and the int8 lm_head use (for --simulate's float copies).
std::vector<QMatrix> Int8Matrices(const ModelWeights& w);

}  // namespace quamba::mamba1
