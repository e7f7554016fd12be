// `quamba quantize`: calibrate a float Mamba-1 model on text and write a quantized checkpoint
// (format/quantized.h) for one of the recipes: quamba (spec §2), minmax, smoothquant, dynamic.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "format/quantized.h"
#include "kernels/kernels.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace quamba {

struct QuantizeOptions {
  std::string recipe = "quamba";
  std::vector<std::string> calib_files;
  int64_t calib_samples = 512;
  int64_t calib_len = 512;
  int threads = 1;
  // Kernels for calibration and the Hadamard fold; null: kernels::DefaultKernels().
  const kernels::KernelTable* kernels = nullptr;
  // Percentile of |x| behind the SSM input scale; 0: the recipe's default (quamba 0.99999;
  // quamba2-w8a8/-w4a8 0.9995, or 0.99999 for models of d_model <= 768 as upstream advises
  // "for smaller model like 130m").
  double percentile_alpha = 0;
  // Ablations of the quamba recipe (the paper's ablation table): no out_proj-input Hadamard
  // rotation; abs-max instead of the percentile clip for the SSM input x.
  bool no_hadamard = false;
  bool no_clip = false;
  // Ablation of the 4-bit recipes: round-to-nearest instead of GPTQ. (--no-hadamard ablates
  // the quamba2 recipes' residual and out_proj rotations.)
  bool rtn = false;
  // Ablations of the Mamba-2 A8 recipes: one x scale per SSD group instead of sort-and-cluster's
  // 4 x 4; one B and one C scale for all SSD groups instead of one per group.
  bool no_sort_cluster = false;
  bool no_bc_groups = false;
  // Mamba-2 A8: the int8 SSM state scaled per (SSD group, state index) instead of per
  // (group, head cluster, dim group, state index) (docs/quantization.md: better on our model).
  bool state_per_group = false;
  std::string lm_head = "f16";  // keep | f16 | bf16 | int8 | w4 (QuantConfig::lm_head)
  // keep | f16 | bf16 | int8 | w4, or "" to follow lm_head (QuantConfig::embedding).
  std::string embedding;
  // The SSM state int8 or f32 (static int8-activation recipes); "" = the recipe's default
  // (QuantConfig::DefaultSsmStateInt8: int8 for quamba2-w8a8 / -w4a8 / -w4ax and on Mamba-2,
  // f32 for Mamba-1's others). QuantConfig::ssm_state.
  std::string ssm_state;
  // quamba2-w4ax (exactly one of the two): the official per-layer JSON (a list of "W4A8" /
  // "W4A16", one per layer), or the number of layers to keep A16, chosen by measured
  // sensitivity on sens_samples held-out windows of the calibration text (the windows after
  // the calibration samples).
  std::string layer_config;
  int64_t a16_layers = -1;
  int64_t sens_samples = 2;
  bool force = false;  // replace an earlier quantize output (io/output_dir.h)
  bool progress = true;
  // Lines about the output folder (leftover temporary folders removed or left alone).
  std::function<void(const std::string&)> on_note;
};

// Per-layer statistics gathered by calibration (all abs-max style, over all samples).
struct LayerActStats {
  float in_proj_in = 0, in_proj_out = 0, x_proj_in = 0, x_proj_in_pct = 0, x_proj_out = 0,
        dt_proj_out = 0, out_proj_in = 0, out_proj_in_had = 0;
  // |final SSM state| over the samples (QuantConfig::SsmStateInt8): the percentile observer's
  // EMA with percentile_u, else the abs-max.
  float ssm_state = 0;
  int64_t pct_samples = 0;
  // Per-channel abs-max (SmoothQuant only).
  std::vector<float> in_proj_in_ch, x_proj_in_ch, out_proj_in_ch;
};

struct CalibStats {
  std::vector<LayerActStats> layers;
  float lm_head_in = 0;  // abs-max of norm_f's output (observed when qc.lm_head == "int8")
};

// Runs the float model over the samples and returns the statistics.
StatusOr<CalibStats> Calibrate(const Model& model, const QuantConfig& qc,
                               const std::vector<std::vector<int32_t>>& samples,
                               const kernels::KernelTable& k, int threads, bool progress);

// Quantizes `model` into `out_dir`: written to a temporary folder, then renamed into place, with
// the rules of io/output_dir.h (no overlap with the model or the calibration files; --force
// replaces only an earlier quantize output; missing parents are created).
Status QuantizeModel(const Model& model, const QuantizeOptions& opt,
                     const std::string& out_dir);

// For the recipes' files (quant/quamba2.cc):
// A source tensor as float32, whatever its stored dtype (F32/F16/BF16).
std::vector<float> ReadTensorAsFloats(const TensorStore& st, const std::string& name);
// Checks out_tensors against ForEachQuantTensor(c, qc, emb_dtype) (a mismatch is a bug) and
// writes model.safetensors, config.json, quantization_config.json and tokenizer.json into the
// existing folder `dir`.
Status WriteQuantizedFiles(const Model& model, const QuantConfig& qc, DType emb_dtype,
                           std::vector<TensorToWrite> out_tensors, const std::string& dir);
// WriteQuantizedFiles into out's temporary folder, then commits it.
Status WriteQuantizedOutput(const Model& model, const QuantConfig& qc, DType emb_dtype,
                            std::vector<TensorToWrite> out_tensors, OutputDir& out);

}  // namespace quamba
