// quamba inspect: a model's configuration and tensor table, after the same checks `generate`
// makes.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "model/mamba.h"

namespace quamba::cli {

int CmdInspect(int argc, char** argv) {
  std::string model_dir;
  bool tensors = false;
  Flags flags("inspect", "-m DIR [--tensors]");
  flags.Add("-m,--model", &model_dir, "model directory", true);
  flags.AddBool("--tensors", &tensors, "list every tensor (name, dtype, shape)");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  auto loaded = MambaModel::Load(model_dir);
  if (!loaded.ok()) return Fail(loaded.status());
  const MambaModel& m = **loaded;
  const MambaConfig& c = m.config();
  std::printf("model: %s (config dialect: %s)\n", model_dir.c_str(), c.dialect.c_str());
  std::printf("  n_layer %lld, d_model %lld, d_inner %lld, d_state %lld, d_conv %lld, dt_rank "
              "%lld, vocab %lld, eps %g, tied %s\n",
              (long long)c.n_layer, (long long)c.d_model, (long long)c.d_inner,
              (long long)c.d_state, (long long)c.d_conv, (long long)c.dt_rank,
              (long long)c.vocab_size, c.norm_eps, c.tie_embeddings ? "yes" : "no");
  const TensorStore& st = m.store();
  int64_t params = 0;
  for (const auto& [name, t] : st.tensors()) params += t.numel();
  std::printf("  tensors: %zu, parameters: %lld, bytes: %llu, weights %s, recipe %s\n",
              st.tensors().size(), (long long)params, (unsigned long long)st.total_bytes(),
              m.weight_type().c_str(), m.recipe().c_str());
  if (m.tokenizer())
    std::printf("  tokenizer: %d ids, eos %d\n", m.tokenizer()->vocab_size(),
                m.tokenizer()->eos_id());
  for (const auto& [k, v] : st.metadata()) std::printf("  metadata %s = %s\n", k.c_str(), v.c_str());
  if (tensors)
    for (const auto& [name, t] : st.tensors())
      std::printf("  %-48s %-5s %s\n", name.c_str(), DTypeName(t.dtype),
                  ShapeString(t.shape).c_str());
  return 0;
}

}  // namespace quamba::cli
