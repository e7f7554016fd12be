// The quantized Mamba-1 checkpoint: what `quamba quantize` writes and every command loads.
// A directory with config.json (unchanged MambaConfig), quantization_config.json (recipe,
// parameters, calibration provenance, format version), model.safetensors (int8 weights as I8,
// scales as F32 scalars, float tensors that stay float) and tokenizer.json.
// Tensor names extend the HF ones: `<linear>.weight` (I8), `<linear>.weight_scale`,
// `<linear>.input_scale`, `<linear>.output_scale`, ... (see ForEachQuantTensor).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"
#include "format/config.h"
#include "format/tensors.h"

namespace quamba {

// 2 added `lm_head` (an int8 lm_head a version-1 reader cannot load); version-1 files are read
// as lm_head "keep".
constexpr int kQuantFormatVersion = 2;
constexpr int kQuantFormatMinVersion = 1;

struct QuantConfig {
  std::string recipe;            // quamba | minmax | smoothquant | dynamic
  bool static_acts = true;       // static per-tensor activation scales (false: per-token dynamic)
  bool percentile_u = false;     // percentile observer for the SSM input x (= x_proj input)
  double percentile_alpha = 0.99999;
  double percentile_sigma = 0.01;  // EMA weight across calibration samples
  bool hadamard = false;         // rotate the out_proj input, H folded into W_out
  bool smooth = false;           // SmoothQuant per-channel smoothing
  double smooth_alpha = 0.5;
  // Precision of lm_head (and of the embedding table that feeds the first block):
  //   keep  both as in the source checkpoint (Quamba v1 on an fp32 model: fp32)
  //   f16   both float16, as the fp16 models Quamba v1 runs (default; halves lm_head's bytes)
  //   bf16  both bfloat16
  //   int8  lm_head W8A8 as Quamba2's --quantize_lm_head (spec §3.5): per-tensor int8 weight,
  //         static per-tensor int8 input (the norm_f output, abs-max calibrated), fp32 logits;
  //         per-token dynamic input for the dynamic recipe. Embedding float16.
  std::string lm_head = "f16";
  // Calibration provenance.
  std::vector<std::string> calib_files;
  int64_t calib_samples = 0, calib_len = 0, calib_tokens = 0;
  std::string source_model;

  std::string ToJson() const;
  static StatusOr<QuantConfig> FromJson(const std::string& text, const std::string& file);
  // The settings a recipe name stands for; error for an unknown name.
  static StatusOr<QuantConfig> ForRecipe(const std::string& recipe);
};

// An int8 matrix (N, K) row-major with one symmetric scale: W ~= scale * q.
struct QMatrix {
  const int8_t* q = nullptr;
  int64_t rows = 0, cols = 0;
  float scale = 0;
};

// OK for an lm_head mode (keep, f16, bf16, int8); else the error "<field>: expected keep, f16,
// bf16 or int8, found "<mode>"".
Status CheckLmHeadMode(const std::string& field, const std::string& mode);

// Per-layer int8 weights and static activation scales (spec §2.3 numbering in brackets).
struct QLayerWeights {
  const float* norm = nullptr;        // (d_model); SmoothQuant: divided by the in_proj smoothing
  float s_in = 0;                     // [1] in_proj input scale
  QMatrix in_proj;                    // [2] (2*d_inner, d_model)
  float s_xz = 0;                     // [3][11] in_proj output scale, shared by x and z
  const int8_t* conv_w = nullptr;     // [4] (d_conv, d_inner), transposed from (d_inner, 1, d_conv)
  float s_conv_w = 0;
  const int8_t* conv_b = nullptr;     // [4] (d_inner)
  float s_conv_b = 0;
  const float* conv_w_f = nullptr;    // (d_conv, d_inner) dequantised (dynamic recipe, simulation)
  const float* conv_b_f = nullptr;    // (d_inner) dequantised
  float s_u = 0;                      // [5] conv+SiLU output = SSM input u = x_proj input
  const float* x_proj_smooth_inv = nullptr;  // (d_inner) SmoothQuant: 1/s, x_proj input * this
  float s_u_smooth = 0;               // scale of u / x_proj_smooth (SmoothQuant only)
  QMatrix x_proj;                     // [6] (dt_rank + 2*d_state, d_inner)
  float s_xdbl = 0;                   // [7] x_proj output scale (dt_low, B, C)
  QMatrix dt_proj;                    // [8] (d_inner, dt_rank)
  float s_dt = 0;                     // [9] dt_proj output scale
  const float* dt_bias = nullptr;     // [10] (d_inner), dequantised from int8
  const float* A = nullptr;           // [10] (d_inner, d_state) = -exp(dequantised int8 A_log)
  const float* D = nullptr;           // [10] (d_inner), dequantised from int8
  const float* out_proj_smooth_inv = nullptr;  // (d_inner) SmoothQuant: 1/s, y * this
  float s_o = 0;                      // [13] out_proj input scale (after the Hadamard rotation)
  QMatrix out_proj;                   // [14] (d_model, d_inner) = quant(W_out H^T)
};

struct QuantizedWeights {
  QuantConfig qc;
  MatrixRef embedding;  // float (F32/F16/BF16)
  MatrixRef lm_head;    // float lm_head (qc.lm_head != "int8"); == embedding when tied
  QMatrix lm_head_q;    // int8 lm_head (qc.lm_head == "int8")
  float s_lm_head_in = 0;  // its static input scale (static recipes)
  const float* norm_f = nullptr;
  std::vector<QLayerWeights> layers;
  uint64_t file_bytes = 0;
  std::unique_ptr<TensorStore> store;
  std::vector<std::vector<float>> owned_floats;
  std::vector<std::vector<int8_t>> owned_int8;
};

// Names, dtypes and shapes of a quantized checkpoint's tensors, in a fixed order: serves the
// writer and the loader. f(name, dtype, shape, optional).
struct QTensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  bool optional;
};
void ForEachQuantTensor(const MambaConfig& c, const QuantConfig& qc, DType embedding_dtype,
                        const std::function<void(const QTensorSpec&)>& f);

StatusOr<std::unique_ptr<QuantizedWeights>> BindQuantizedWeights(
    const MambaConfig& c, const QuantConfig& qc, std::unique_ptr<TensorStore> store);

}  // namespace quamba
