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
  double percentile_alpha = 0.99999;
  // Ablations of the quamba recipe (the paper's ablation table): no out_proj-input Hadamard
  // rotation; abs-max instead of the percentile clip for the SSM input x.
  bool no_hadamard = false;
  bool no_clip = false;
  std::string lm_head = "f16";  // keep | f16 | bf16 | int8 (QuantConfig::lm_head)
  bool force = false;  // replace an earlier quantize output (io/output_dir.h)
  bool progress = true;
  // Lines about the output folder (leftover temporary folders removed or left alone).
  std::function<void(const std::string&)> on_note;
};

// Per-layer statistics gathered by calibration (all abs-max style, over all samples).
struct LayerActStats {
  float in_proj_in = 0, in_proj_out = 0, x_proj_in = 0, x_proj_in_pct = 0, x_proj_out = 0,
        dt_proj_out = 0, out_proj_in = 0, out_proj_in_had = 0;
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

}  // namespace quamba
