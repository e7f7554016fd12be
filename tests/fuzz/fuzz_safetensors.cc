#include <string>

#include "fuzz/fuzz_targets.h"
#include "io/safetensors.h"
#include "format/tensor_check.h"
#include "model/weights.h"
#include "format/quantized.h"

namespace quamba::fuzz {

int FuzzSafetensors(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto st = TensorStore::FromBytes("model.safetensors", bytes);
  if (!st.ok()) return 0;
  // Every byte a tensor claims must be inside the buffer (ASan sees an overrun).
  volatile uint8_t sink = 0;
  for (const auto& [name, t] : (*st)->tensors())
    for (uint64_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
  MambaConfig c;
  c.n_layer = 1;
  c.d_model = 8;
  c.d_inner = 16;
  c.dt_rank = 1;
  c.d_state = 4;
  c.vocab_size = 16;
  c.dialect = "hf";
  // As Model::Load: the tensor set first, then the binder (which may allocate).
  if (CheckTensorSet(c, **st, nullptr, "m").ok()) (void)BindFloatWeights(c, std::move(st).value());
  for (const char* recipe : {"minmax", "smoothquant", "dynamic"}) {
    auto q = QuantConfig::ForRecipe(recipe);
    auto again = TensorStore::FromBytes("model.safetensors", bytes);
    if (!q.ok() || !again.ok()) continue;
    (void)CheckTensorSet(c, **again, &*q, "m");  // reported, but bind anyway: more to cover
    (void)BindQuantizedWeights(c, *q, std::move(again).value());
  }
  return 0;
}

}  // namespace quamba::fuzz
