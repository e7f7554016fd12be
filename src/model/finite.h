// Non-finite values (NaN, Inf) in a model: named when they show, as a NaN or Inf logit, rather
// than by scanning every weight at every load (a full read of the model). Commands that turn
// logits into answers (generate, eval) check their logits; quantize, which reads every weight
// anyway, scans first.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "model/model.h"

namespace quamba {

// The first float tensor (in name order) of the model's files that holds a NaN or an Inf, as an
// error "FILE: tensor "NAME": expected finite values, found nan at element I (K of N)"; OK when
// every float tensor is finite.
Status FindNonFiniteWeights(const Model& model);

// OK when logits[0, n) are all finite. Otherwise the tensor FindNonFiniteWeights names, or, with
// finite weights, "DIR: expected finite logits, found nan (at WHERE): the activations overflow".
Status CheckFiniteLogits(const Model& model, const float* logits, int64_t n,
                         const std::string& where);

}  // namespace quamba
