// Float64 oracles of the Mamba-2 ops (kernels/ssd.h): the token recurrence, straight from its
// definition, and the grouped gated RMSNorm. Tests only.
#pragma once

#include <cstdint>

#include "kernels/ssd.h"

namespace quamba::kernels::ref {

// The SSD recurrence of kernels/ssd.h over heads [h_begin, h_end) in double: reads a's inputs,
// uses `state` (H, P, N) double in/out instead of a.state and writes y (L, H*P) stride a.ldy in
// double instead of a.y.
void SsdRecurrence(const SsdArgs& a, int64_t h_begin, int64_t h_end, double* state, double* y);

// GatedNormArgs of kernels/ssd.h in double: out (L, C) stride a.ldo.
void GatedRmsNorm(const GatedNormArgs& a, int64_t row_begin, int64_t row_end, double* out);

}  // namespace quamba::kernels::ref
