#include <string>

#include "core/check.h"
#include "fuzz/fuzz_targets.h"
#include "format/config.h"

namespace quamba::fuzz {

int FuzzConfig(const uint8_t* data, size_t size) {
  auto c = MambaConfig::FromJson(std::string(reinterpret_cast<const char*>(data), size),
                                 "config.json");
  if (!c.ok()) return 0;
  // What synth and quantize write must read back as the same model.
  auto back = MambaConfig::FromJson(c->ToHfJson(), "written config.json");
  QM_CHECK(back.ok(), "%s", back.status().message().c_str());
  QM_CHECK(back->d_model == c->d_model && back->n_layer == c->n_layer &&
           back->d_inner == c->d_inner && back->d_state == c->d_state &&
           back->d_conv == c->d_conv && back->dt_rank == c->dt_rank &&
           back->vocab_size == c->vocab_size && back->tie_embeddings == c->tie_embeddings &&
           back->eos_token_id == c->eos_token_id);
  return 0;
}

}  // namespace quamba::fuzz
