// The tensor set of a checkpoint against its config, before anything is bound or allocated:
// the file must hold exactly the config's layers (more would be dropped silently; for fewer, the
// binder would first allocate and name every layer the config claims: 16777216 of them took
// 14 s and 2.9 GB), and only tensors the model uses (one it does not means the config and the
// weights disagree, e.g. a dynamic-recipe config over static weights).
#pragma once

#include <string>

#include "core/status.h"
#include "io/safetensors.h"
#include "format/config.h"
#include "format/quantized.h"

namespace quamba {

// `qc`: the quantization config of a quantized checkpoint, or nullptr for a float one. `dir`
// names config.json in messages.
Status CheckTensorSet(const MambaConfig& c, const TensorStore& st, const QuantConfig* qc,
                      const std::string& dir);

}  // namespace quamba
