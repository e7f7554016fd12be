// The quantized Mamba-1 checkpoint: what `quamba quantize` writes and every command loads.
// A directory with config.json (unchanged MambaConfig), quantization_config.json (recipe,
// parameters, calibration provenance, format version), model.safetensors (int8 weights as I8,
// scales as F32 scalars, float tensors that stay float) and tokenizer.json.
// Tensor names extend the HF ones: `<linear>.weight` (I8), `<linear>.weight_scale`,
// `<linear>.input_scale`, `<linear>.output_scale`, ... (see ForEachQuantTensor).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "format/config.h"
#include "format/tensors.h"

namespace quamba {

// 2 added `lm_head` (an int8 lm_head a version-1 reader cannot load); version-1 files are read
// as lm_head "keep". 3 added 4-bit weights (Quamba2 recipes): packed codes U8 (N, K/2) with F32
// group scales (N, K/group). Files of the 8-bit recipes are still written as version 2.
constexpr int kQuantFormatVersion = 3;
constexpr int kQuantFormatMinVersion = 1;

// keep, f16 or bf16: an embedding / lm_head mode that stores float values (not int8 or w4).
inline bool IsFloatHeadMode(const std::string& mode) {
  return mode == "keep" || mode == "f16" || mode == "bf16";
}

struct QuantConfig {
  // quamba | minmax | smoothquant | dynamic | quamba2-w8a8 | quamba2-w4a8 | quamba2-w4a16 |
  // quamba2-w4ax
  std::string recipe;
  // Weight and activation precision. 8/8: the W8A8 recipes. 4/16 (quamba2-w4a16): in_proj,
  // out_proj (and Mamba-1 x_proj) as 4-bit codes with one scale per row and group_size columns,
  // every activation float32 (no activation scales), everything else float32. 4/8
  // (quamba2-w4a8): the same 4-bit linears in the static int8 dataflow of the W8A8 recipes
  // (their activation scales as there; dt_proj int8).
  int weight_bits = 8;
  int act_bits = 8;
  int64_t group_size = 128;      // 4-bit weights: columns per scale (= GPTQ block)
  bool gptq = false;             // 4-bit weights by GPTQ (false: round-to-nearest)
  // Quamba2's residual-stream rotation (spec §2.2): embedding rows, in_proj and out_proj (both
  // sides) and lm_head rotated by Hadamard matrices, norm weights folded into the next linear.
  bool residual_hadamard = false;
  bool static_acts = true;       // static per-tensor activation scales (false: per-token dynamic)
  bool percentile_u = false;     // percentile observer for the SSM input x (= x_proj input)
  double percentile_alpha = 0.99999;
  double percentile_sigma = 0.01;  // EMA weight across calibration samples
  bool hadamard = false;         // rotate the out_proj input, H folded into W_out
  bool a16() const { return act_bits == 16; }
  // lm_head runs on an int8 input (its W8A8 or W4A8 head): the norm_f output needs a scale.
  bool LmHeadInt8Input() const { return !a16() && (lm_head == "int8" || lm_head == "w4"); }
  // quamba2-w4ax (spec §2.9): the model is W4A8 (act_bits 8) except these layers, which are
  // W4A16 (float activations over the same 4-bit in_proj / out_proj / x_proj). Sorted, unique.
  std::vector<int> a16_layers;
  // How a16_layers was chosen (provenance: "--layer-config FILE" or "--a16-layers K ..."), and
  // with --a16-layers the measured sensitivity per layer (KL divergence vs the float model on
  // held-out calibration text with that layer alone W4A8 in an otherwise W4A16 model).
  std::string layer_selection;
  std::vector<double> layer_sensitivity;
  // True when layer l runs with float activations (W4A16 model, or a W4AX A16 layer).
  bool LayerA16(int l) const {
    return a16() || std::binary_search(a16_layers.begin(), a16_layers.end(), l);
  }
  // True for the 4-bit weight of `role` (in_proj, out_proj, Mamba-1 x_proj).
  // With lm_head "w4" also the embedding and lm_head.
  bool W4(TensorRole role) const {
    if (role == TensorRole::kEmbedding) return EmbeddingMode() == "w4";
    return weight_bits == 4 &&
           (role == TensorRole::kInProj || role == TensorRole::kOutProj ||
            role == TensorRole::kXProj || (lm_head == "w4" && role == TensorRole::kLmHead));
  }
  // Mamba-2 A8 (quamba2-w8a8 / -w4a8, spec §2.3-2.5): the SSM input x scaled per (SSD group,
  // head cluster, dim group) after sort-and-cluster, m x n = x_head_clusters x x_dim_groups
  // per group (1 x 1: one scale per SSD group, no reordering); B and C one scale per SSD group
  // (bc_per_group) or one each for the whole tensor; the SSM state int8 with a scale per
  // (group, cluster, dim group, state index).
  int64_t x_head_clusters = 4, x_dim_groups = 4;
  bool bc_per_group = true;
  // The SSM state's scales per (group, cluster, dim group, n) as the official code; false: one
  // per (group, n), repeated in the same [G, m, n, N] table (--state-per-group).
  bool state_per_cluster = true;
  // The SSM state kept between calls (--ssm-state): "int8", "f32", or "" for the default of
  // files that do not say: int8 on Mamba-2 with int8 activations (its scales per sort-and-
  // cluster group and state index), float32 on Mamba-1. Mamba-1's int8 state has one static
  // scale per layer (`mixer.ssm_state_scale`) from the percentile (without percentile_u, the
  // abs-max) of |final state| over the calibration samples: Quamba2 on Mamba-1 (quamba2-spec
  // §3 item 3). Either is dequantised before each scan and requantised (round half to even)
  // after it; the scan's outputs use the unrounded state.
  std::string ssm_state;
  bool SsmStateInt8(Arch arch) const {
    if (a16() || !static_acts) return false;
    return arch == Arch::kMamba2 ? ssm_state != "f32" : ssm_state == "int8";
  }
  // What --ssm-state defaults to: int8 for the quamba2 A8 recipes and every A8 recipe on
  // Mamba-2 (the official code), float32 for Mamba-1's others.
  bool DefaultSsmStateInt8(Arch arch) const {
    return !a16() && static_acts &&
           (arch == Arch::kMamba2 || recipe.rfind("quamba2-", 0) == 0);
  }
  bool smooth = false;           // SmoothQuant per-channel smoothing
  double smooth_alpha = 0.5;
  // Precision of lm_head (and of the embedding table that feeds the first block):
  //   keep  both as in the source checkpoint (Quamba v1 on an fp32 model: fp32)
  //   f16   both float16, as the fp16 models Quamba v1 runs (default; halves lm_head's bytes)
  //   bf16  both bfloat16
  //   w4    (quamba2 4-bit recipes) both 4-bit with group scales like the linears: lm_head by
  //         GPTQ on the norm_f output (round-to-nearest with --rtn), the embedding by
  //         round-to-nearest (it has no input to measure). With int8 activations (W4A8, W4AX)
  //         the lm_head input is static per-tensor int8 as for int8 (Quamba2's W4A8 lm_head).
  //   int8  lm_head W8A8 as Quamba2's --quantize_lm_head (spec §3.5): per-tensor int8 weight,
  //         static per-tensor int8 input (the norm_f output, abs-max calibrated), fp32 logits;
  //         per-token dynamic input for the dynamic recipe. Embedding float16.
  std::string lm_head = "f16";
  // Precision of the embedding table (--embedding): "" follows lm_head as above; keep | f16 |
  // bf16; int8 (symmetric, one scale per row = token); w4 (4-bit codes, group scales, by
  // round-to-nearest). A float table and a float lm_head share one dtype.
  std::string embedding;
  std::string EmbeddingMode() const {
    if (!embedding.empty()) return embedding;
    return lm_head == "int8" ? "f16" : lm_head;
  }
  bool EmbeddingFloat() const { return IsFloatHeadMode(EmbeddingMode()); }
  // Calibration provenance.
  std::vector<std::string> calib_files;
  int64_t calib_samples = 0, calib_len = 0, calib_tokens = 0;
  std::string source_model;

  std::string ToJson() const;
  static StatusOr<QuantConfig> FromJson(const std::string& text, const std::string& file);
  // The settings a recipe name stands for; error for an unknown name.
  static StatusOr<QuantConfig> ForRecipe(const std::string& recipe);
};

// OK for an lm_head mode; else the error "<field>: expected keep, f16, bf16 or int8, found
// "<mode>"". int8 needs int8 activations (!a16); w4 a 4-bit recipe (w4).
Status CheckLmHeadMode(const std::string& field, const std::string& mode, bool a16 = false,
                       bool w4 = false);

// OK for an embedding mode (keep, f16, bf16, int8, w4) that goes with `lm_head` (a float table
// and a float lm_head share one dtype); else a one-line error naming `field`.
Status CheckEmbeddingMode(const std::string& field, const std::string& mode,
                          const std::string& lm_head);

// Every recipe name, for help text and errors.
inline constexpr const char* kRecipeNames =
    "quamba, minmax, smoothquant, dynamic, quamba2-w8a8, quamba2-w4a8, quamba2-w4a16 or "
    "quamba2-w4ax";

// One tensor of a quantized checkpoint: derived from a float TensorSpec (`source`) by its
// QuantKind and ActScales under a QuantConfig.
struct QTensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // {} for a scalar scale
  bool optional;               // may be absent (a tied lm_head)
  const TensorSpec* source;    // the float tensor it comes from
};

// Calls f(const QTensorSpec&) for every tensor of the quantized checkpoint of `c` under `qc`,
// derived from ForEachTensor(c): the list the quantizer writes and the loader checks.
// embedding_dtype: the dtype of the float head tensors (a float embedding table, a float
// lm_head; both have it).
void ForEachQuantTensor(const MambaConfig& c, const QuantConfig& qc, DType embedding_dtype,
                        const std::function<void(const QTensorSpec&)>& f);

}  // namespace quamba
