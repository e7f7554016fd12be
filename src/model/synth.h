// Randomly initialised Mamba-1 / Mamba-2 checkpoints at real shapes, initialised as mamba_ssm does
// (mamba_simple.py Mamba.__init__, mixer_seq_simple.py _init_weights), in HF layout.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/status.h"
#include "format/config.h"
#include "io/tokenizer.h"  // ByteLevelTokenizerJson, used with synth

namespace quamba {

// Fills n_layer/d_model of a named shape (mamba-130m ... mamba-2.8b; mamba2-130m, -370m, -780m,
// -1.3b, -2.7b with the Mamba-2 defaults); false if unknown.
bool SynthShape(const std::string& name, MambaConfig* c);
// Mamba-2 with the Mamba2.__init__ defaults (headdim 64, d_state 128, 1 group, d_conv 4).
void SetMamba2Defaults(MambaConfig* c);

// Bytes of the tensors WriteSynthCheckpoint writes for `c` (d_inner, dt_rank derived if zero).
double SynthCheckpointBytes(MambaConfig c, DType dtype);

// Writes dir/config.json and dir/model.safetensors (tied embeddings, no lm_head tensor) for `c`
// (d_inner, dt_rank derived if zero) with weights of dtype f32/f16/bf16, a tensor chunk at a time
// (bounded memory). Deterministic in seed. A checkpoint larger than the free space of dir's
// filesystem is refused before anything is written.
Status WriteSynthCheckpoint(MambaConfig c, DType dtype, uint64_t seed, const std::string& dir);

}  // namespace quamba
