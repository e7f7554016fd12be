// quamba inspect: a model's configuration and tensor table, after the same checks `generate`
// makes; with --calib, the activation-outlier report of src/quant/inspect.h (table on stdout,
// outliers.json and SVG plots with -o).
#include <cstdio>
#include <set>

#include "args.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "format/quantized.h"
#include "format/tensors.h"
#include "io/output_dir.h"
#include "model/runtime.h"
#include "quant/calib_data.h"
#include "quant/inspect.h"

namespace quamba::cli {

int CmdInspect(int argc, char** argv) {
  std::string model_dir, out_dir;
  bool tensors = false, quiet = false;
  std::vector<std::string> calib_files;
  int64_t calib_samples = 64, calib_len = 512, max_memory_mb = 1024;
  InspectOptions opt;
  opt.threads = DefaultThreadCount();
  Flags flags("inspect", "-m DIR [--tensors] [--calib FILE... [-o OUTDIR] [options]]");
  flags.Add("-m,--model", &model_dir, "model directory", true);
  flags.AddBool("--tensors", &tensors, "list every tensor (name, dtype, shape)");
  flags.AddList("--calib", &calib_files, "calibration text (.jsonl with a \"text\" field, or "
                "plain text; repeatable): run the float model over it and report activation "
                "outliers at every quantization point");
  flags.Add("--calib-samples", &calib_samples, "calibration samples (default 64)", 1, 1 << 20);
  flags.Add("--calib-len", &calib_len, "tokens per sample (default 512)", 2, 1 << 16);
  flags.Add("-o,--out", &out_dir, "with --calib: write outliers.json, ranges.svg, "
            "ssm_input.svg and hadamard.svg into this directory (created if missing)");
  flags.Add("--percentile", &opt.percentile_alpha, "percentile of |x| behind the quamba scale of "
            "the SSM input (as quantize; default 0.99999)", 0.5, 1.0);
  flags.Add("--max-memory", &max_memory_mb, "MiB for exact percentiles; beyond it values are "
            "subsampled (default 1024)", 1, 1 << 24);
  flags.Add("-t,--threads", &opt.threads, "threads (default: all cores)", 1, 1024);
  flags.AddBool("-q,--quiet", &quiet, "no progress bar");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  if (!out_dir.empty() && calib_files.empty())
    return UsageError(Status::Error("inspect -o: expected --calib (the outlier report needs "
                                    "calibration text), found none"));
  if (!out_dir.empty()) {  // the report's files must not land in the model or on the text
    std::vector<std::string> inputs = calib_files;
    inputs.push_back(model_dir);
    if (Status s = CheckNoOverlap(out_dir, inputs, "inspect -o"); !s.ok()) return Fail(s);
  }
  auto loaded = Model::Load(model_dir);
  if (!loaded.ok()) return Fail(loaded.status());
  const Model& m = **loaded;
  const MambaConfig& c = m.config();
  std::printf("model: %s (%s, config dialect: %s)\n", model_dir.c_str(),
              c.mixer_rms ? "falcon_mamba" : ArchName(c.arch), c.dialect.c_str());
  if (c.arch == Arch::kMamba2) {
    std::printf("  n_layer %lld, d_model %lld, d_inner %lld = %lld heads x %lld, groups %lld, "
                "d_state %lld, d_conv %lld, dt_limit [%g, %g], vocab %lld, eps %g, tied %s\n",
                (long long)c.n_layer, (long long)c.d_model, (long long)c.d_inner,
                (long long)c.nheads, (long long)c.headdim, (long long)c.ngroups,
                (long long)c.d_state, (long long)c.d_conv, c.dt_limit_min, c.dt_limit_max,
                (long long)c.vocab_size, c.norm_eps, c.tie_embeddings ? "yes" : "no");
  } else {
    std::printf("  n_layer %lld, d_model %lld, d_inner %lld, d_state %lld, d_conv %lld, dt_rank "
                "%lld, vocab %lld, eps %g, tied %s%s\n",
                (long long)c.n_layer, (long long)c.d_model, (long long)c.d_inner,
                (long long)c.d_state, (long long)c.d_conv, (long long)c.dt_rank,
                (long long)c.vocab_size, c.norm_eps, c.tie_embeddings ? "yes" : "no",
                c.mixer_rms ? StrFormat(", mixer_rms_eps %g", c.mixer_rms_eps).c_str() : "");
  }
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
  if (tensors) {
    // The architecture's tensor list (format/tensors.h; for a quantized model the list derived
    // from it, format/quantized.h), with each entry's role and how quantization treats it.
    std::printf("  %-52s %-5s %-16s %-14s %s\n", "tensor", "dtype", "shape", "role",
                "quantization");
    std::set<std::string> listed;
    auto row = [&](const std::string& name, const TensorSpec& src, const char* quant) {
      const TensorView* t = st.Find(name);
      for (const std::string& alt : AlternativeNames(src))
        if (t == nullptr && (t = st.Find(alt)) != nullptr) listed.insert(alt);
      listed.insert(name);
      std::printf("  %-52s %-5s %-16s %-14s %s\n", name.c_str(), t ? DTypeName(t->dtype) : "-",
                  t ? ShapeString(t->shape).c_str() : "(absent)", TensorRoleName(src.role),
                  quant);
    };
    if (m.quantized()) {
      // What is stored: a quantized tensor, a scale or table beside one, or a float tensor
      // (everything W4A16 and W4AX's A16 layers keep float; norms; dt_bias).
      auto stored = [](const QTensorSpec& q) -> std::string {
        if (q.name != q.source->name) return "scale / table";
        if (q.dtype == DType::kU8) return "4-bit + group scales";
        if (q.dtype == DType::kI8 || q.source->quant == QuantKind::kHead)
          return QuantKindName(q.source->quant);
        return "float";
      };
      ForEachQuantTensor(c, m.quant_config(), m.weights().embedding.dtype,
                         [&](const QTensorSpec& q) { row(q.name, *q.source, stored(q).c_str()); });
    } else {
      ForEachTensor(c, [&](const TensorSpec& t) { row(t.name, t, QuantKindName(t.quant)); });
    }
    for (const auto& [name, t] : st.tensors())
      if (!listed.count(name))
        std::printf("  %-52s %-5s %-16s %s\n", name.c_str(), DTypeName(t.dtype),
                    ShapeString(t.shape).c_str(), "(not used by the model)");
  }
  if (calib_files.empty()) return 0;

  if (m.tokenizer() == nullptr)
    return Fail(Status::Error(StrFormat("%s/tokenizer.json: expected a tokenizer (needed to read "
                                        "calibration text), found no such file",
                                        model_dir.c_str())));
  std::fflush(stdout);
  const double t0 = NowSeconds();
  std::vector<std::string> used_files;
  auto samples = LoadCalibrationSamples(calib_files, *m.tokenizer(), calib_samples, calib_len,
                                        &used_files);
  if (!samples.ok()) return Fail(samples.status());
  opt.progress = !quiet;
  opt.max_memory_bytes = max_memory_mb << 20;
  auto report = InspectActivations(m, *samples, opt);
  if (!report.ok()) return Fail(report.status());
  report->calib_files = used_files;
  std::printf("\n%s", OutliersTable(*report).c_str());
  if (out_dir.empty()) {
    std::fprintf(stderr, "inspect: %.1f s; no -o: table only (-o DIR writes outliers.json and "
                 "plots)\n", NowSeconds() - t0);
    return 0;
  }
  std::vector<std::string> written;
  if (Status s = WriteInspectReport(*report, out_dir, &written); !s.ok()) return Fail(s);
  std::fprintf(stderr, "inspect: %.1f s; wrote", NowSeconds() - t0);
  for (const std::string& w : written) std::fprintf(stderr, " %s", w.c_str());
  std::fprintf(stderr, "\n");
  return 0;
}

}  // namespace quamba::cli
