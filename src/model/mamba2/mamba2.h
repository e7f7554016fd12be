// Mamba-2 as the runtime sees it: its activation taps, the state a layer keeps, and its blocks
// (float today). quamba2-spec §1.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "format/config.h"
#include "format/quantized.h"
#include "model/block.h"
#include "model/state.h"

namespace quamba::mamba2 {

// The activations of the float forward (prefill path), in order.
enum class Tap : uint8_t {
  kInProjIn,    // RMSNorm output, (T, d_model)
  kInProjOut,   // zxbcdt = [z | x | B | C | dt_raw], (T, d_in_proj)
  kConvOut,     // SiLU(conv(xBC)) = [x | B | C], (T, conv_dim): the SSM input x and B, C
  kSsdOut,      // SSD output y before the D skip and the gated norm, (T, d_inner)
  kOutProjIn,   // gated-norm output, (T, d_inner)
  kOutProjOut,  // mixer output, (T, d_model)
};
constexpr int kNumTaps = 6;
const char* TapName(Tap t);  // "in_proj:input", ...

// State buffers of one layer: 0 = conv window (d_conv-1, conv_dim), 1 = SSM state
// (nheads, headdim, d_state) with d_state contiguous; float32, or int8 in the static int8
// block (int8 conv inputs; the state at its [G, m, n, N] scales unless --ssm-state f32).
enum StateBuf : int { kConvState = 0, kSsmState = 1 };
std::vector<StateBufferSpec> StateBuffers(const MambaConfig& c, bool int8_conv, bool int8_ssm);

std::unique_ptr<Block> MakeFloatBlock(const BlockEnv& env);
// Quamba2 A8 (quamba2-w8a8 / -w4a8): model/mamba2/q8_block.cc.
std::unique_ptr<Block> MakeStaticInt8Block(const BlockEnv& env, const QuantConfig& qc);

// Prefill chunks of at most this many tokens run the recurrent SSD scan (the same arithmetic as
// decode steps); longer ones the chunked SSD in chunks of ChunkLength().
constexpr int64_t kRecurrentMaxTokens = 16;
// The SSD chunk length this engine uses on CPU (the config's chunk_size is a GPU kernel
// parameter): 64 (spec §1.6); QUAMBA_SSD_CHUNK (16..256) overrides it for tuning.
int64_t ChunkLength();

// Steps the float and int8 blocks share, on float buffers of T rows: xbc (T, conv_dim) =
// [x | B | C] after the conv, dt (T, lddt) raw dt, y (T, d_inner).
// y rows [row0, row0 + seq_len) = SSD of one sequence's seq_len tokens, heads [hb, he), from
// and into state (nheads, headdim, d_state): chunked SSD in chunks of ChunkLength(), or the
// recurrent scan (the decode step's arithmetic).
void SsdRows(const kernels::KernelTable& k, const MambaConfig& c, const float* dt_bias,
             const float* A, float* state, bool chunked, int64_t row0, int64_t seq_len,
             const float* xbc, const float* dt, int64_t lddt, float* y, int64_t hb, int64_t he);
// Arguments of y <- RMSNormGated(y + D x, z) over T rows (mamba_ssm's grouped norm, eps 1e-5), in place; x
// from xbc, z (T, ldz).
kernels::GatedNormArgs InPlaceGatedNormArgs(const MambaConfig& c, float* y, const float* xbc,
                                        const float* z, int64_t ldz, const float* D,
                                        const float* w, int64_t T);

}  // namespace quamba::mamba2
