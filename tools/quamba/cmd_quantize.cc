// quamba quantize: calibrate on text and write a W8A8 or W4A16 model directory.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "core/thread_pool.h"
#include "quant/quantizer.h"

namespace quamba::cli {

int CmdQuantize(int argc, char** argv) {
  std::string model_dir, out_dir;
  QuantizeOptions opt;
  opt.threads = DefaultThreadCount();
  bool quiet = false;
  Flags flags("quantize", "-m DIR -o OUT --recipe R --calib FILE... [options]");
  flags.Add("-m,--model", &model_dir, "float model directory", true);
  flags.Add("-o,--out", &out_dir, "output directory, created with its parents (must not exist "
            "unless --force)", true);
  flags.Add("--recipe", &opt.recipe, "quamba | minmax | smoothquant | dynamic | quamba2-w8a8 | "
            "quamba2-w4a8 | quamba2-w4a16 | quamba2-w4ax (default quamba)");
  flags.AddList("--calib", &opt.calib_files, "calibration text: .jsonl with a \"text\" field, or "
                "plain text (repeatable; not needed for dynamic)");
  flags.Add("--calib-samples", &opt.calib_samples, "calibration samples (default 512; "
            "quamba2-*: 128, as Quamba2's GPTQ)", 1, 1 << 20);
  flags.Add("--calib-len", &opt.calib_len, "tokens per sample (default 512; quamba2-*: 1024)", 2,
            1 << 16);
  flags.Add("--percentile", &opt.percentile_alpha, "percentile of |x| for the SSM input scale "
            "(quamba: default 0.99999; quamba2-w8a8/w4a8: 0.9995, or 0.99999 when d_model <= "
            "768 as upstream advises for small models)", 0.5, 1.0);
  flags.AddBool("--no-hadamard", &opt.no_hadamard, "ablation (quamba, quamba2-*): no Hadamard "
                "rotation of the out_proj input (quamba2: nor of the residual stream)");
  flags.AddBool("--rtn", &opt.rtn, "ablation (quamba2-w4*): round-to-nearest 4-bit weights "
                "instead of GPTQ (no calibration)");
  flags.AddBool("--no-sort-cluster", &opt.no_sort_cluster, "ablation (quamba2-w8a8/w4a8 on "
                "Mamba-2): one SSM-input scale per SSD group instead of sort-and-cluster's 4 x 4");
  flags.AddBool("--no-bc-groups", &opt.no_bc_groups, "ablation (quamba2-w8a8/w4a8 on Mamba-2): "
                "one B and one C scale instead of one per SSD group");
  flags.AddBool("--state-per-group", &opt.state_per_group, "quamba2-w8a8/w4a8 on Mamba-2: the "
                "int8 SSM state scaled per (SSD group, state) instead of per sort-and-cluster "
                "group and state (better on the reference model)");
  flags.AddBool("--no-clip", &opt.no_clip, "ablation (quamba): abs-max instead of the "
                "percentile clip for the SSM input x");
  flags.Add("--lm-head", &opt.lm_head, "embedding + lm_head precision: f16 (default, as "
            "Quamba v1's fp16 models), bf16, keep (as the source), int8 (lm_head W8A8, Quamba2), "
            "w4 (quamba2-w4*: both 4-bit, lm_head by GPTQ; W4A8 / W4AX: int8 lm_head input)");
  flags.Add("--embedding", &opt.embedding, "embedding table precision: keep, f16, bf16 (the "
            "float type of a float lm_head), int8 (one scale per row) or w4 (4-bit, group "
            "scales); default: as --lm-head (f16 with an int8 head)");
  flags.Add("--ssm-state", &opt.ssm_state, "SSM state kept between calls (int8-activation "
            "recipes): int8 (static scales from the calibration's final states; default for "
            "quamba2-w8a8/w4a8/w4ax and on Mamba-2) or f32 (default for Mamba-1's other "
            "recipes; 4x the state bytes, no requantisation error in decode)");
  flags.Add("--layer-config", &opt.layer_config, "quamba2-w4ax: the per-layer precision, a JSON "
            "list of \"W4A8\" / \"W4A16\" per layer (the official hybrid_blocks_config.json)");
  flags.Add("--a16-layers", &opt.a16_layers, "quamba2-w4ax: keep K layers W4A16, those whose "
            "W4A8 version alone moves the output most (KL divergence from the float model on "
            "held-out calibration text); the rest W4A8", 0, 1 << 20);
  flags.Add("--sens-samples", &opt.sens_samples, "quamba2-w4ax --a16-layers: held-out windows "
            "of --calib-len tokens, taken after the calibration samples (default 2)", 1, 1 << 16);
  flags.Add("-t,--threads", &opt.threads, "threads (default: all cores)", 1, 1024);
  flags.AddBool("--force", &opt.force, "replace an earlier quantize output at -o (only one that "
                "holds nothing else)");
  flags.AddBool("-q,--quiet", &quiet, "no progress bar");
  if (Status s = flags.Parse(argc, argv, 2); !s.ok()) return UsageError(s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  opt.progress = !quiet;
  const bool quamba2 = opt.recipe.rfind("quamba2-", 0) == 0;
  if (quamba2 && !flags.given("--calib-samples")) opt.calib_samples = 128;
  if (quamba2 && !flags.given("--calib-len")) opt.calib_len = 1024;
  opt.on_note = [](const std::string& n) { std::fprintf(stderr, "quantize: %s\n", n.c_str()); };
  if (Status s = CheckLmHeadMode("quantize --lm-head", opt.lm_head,
                                 opt.recipe == "quamba2-w4a16",
                                 opt.recipe.rfind("quamba2-w4", 0) == 0);
      !s.ok())
    return UsageError(s);
  if (opt.no_hadamard && opt.recipe != "quamba" && !quamba2)
    return UsageError(Status::Error(StrFormat("quantize --no-hadamard: expected --recipe quamba "
                                              "or quamba2-*, found %s", opt.recipe.c_str())));
  if (opt.no_clip && opt.recipe != "quamba")
    return UsageError(Status::Error(StrFormat("quantize --no-clip: expected --recipe quamba, "
                                              "found %s", opt.recipe.c_str())));
  const bool w4 = opt.recipe.rfind("quamba2-w4", 0) == 0;
  if (opt.rtn && !w4)
    return UsageError(Status::Error(StrFormat("quantize --rtn: expected --recipe quamba2-w4*, "
                                              "found %s", opt.recipe.c_str())));
  // Everything calibrates but the dynamic recipe and W4A16 by round-to-nearest.
  if (opt.recipe != "dynamic" && !(opt.recipe == "quamba2-w4a16" && opt.rtn) &&
      opt.calib_files.empty())
    return UsageError(Status::Error(StrFormat("quantize --calib: expected calibration text for "
                                              "recipe %s, found none", opt.recipe.c_str())));
  const double t0 = NowSeconds();
  auto loaded = Model::Load(model_dir);
  if (!loaded.ok()) return Fail(loaded.status());
  if (Status s = QuantizeModel(**loaded, opt, out_dir); !s.ok()) return Fail(s);
  std::fprintf(stderr, "quantize: wrote %s (recipe %s) in %.1f s\n", out_dir.c_str(),
               opt.recipe.c_str(), NowSeconds() - t0);
  return 0;
}

}  // namespace quamba::cli
