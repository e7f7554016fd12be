// Mamba-1 weights as the blocks use them: views into the mapped checkpoint (matrices in their
// stored dtype) plus small owned float tensors (converted or derived at load). Bound from a
// checked TensorStore by walking the format's tensor lists (format/tensors.h for float
// checkpoints, format/quantized.h for quantized ones).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "format/config.h"
#include "format/quantized.h"
#include "io/safetensors.h"
#include "model/matrix.h"

namespace quamba {

// A float layer. Mamba-1 and Mamba-2 share the fields they have in common; shapes per arch.
struct LayerWeights {
  const float* norm = nullptr;     // (d_model)
  MatrixRef in_proj;               // M1 (2*d_inner, d_model); M2 (d_in_proj, d_model)
  const float* conv_w = nullptr;   // (d_conv, C): transposed from (C, 1, d_conv); C = d_inner
                                   // (M1) or conv_dim (M2)
  const float* conv_b = nullptr;   // (C); zeros when the model has no conv bias
  MatrixRef x_proj;                // M1 (dt_rank + 2*d_state, d_inner)
  MatrixRef dt_proj;               // M1 (d_inner, dt_rank)
  const float* dt_bias = nullptr;  // M1 (d_inner); M2 (nheads)
  const float* A = nullptr;        // = -exp(A_log) in fp32: M1 (d_inner, d_state); M2 (nheads)
  const float* D = nullptr;        // M1 (d_inner); M2 (nheads)
  const float* norm_gated = nullptr;  // M2 (d_inner): grouped gated RMSNorm weight
  MatrixRef out_proj;              // (d_model, d_inner)
  // Quamba2 W4A16: y <- H_{d_inner} y before out_proj (the online Hadamard whose transpose is
  // folded into out_proj's columns).
  bool out_proj_hadamard = false;
};

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
  float s_ssm_state = 0;              // [12] int8 SSM state scale (SsmStateInt8); 0: float32
  const float* out_proj_smooth_inv = nullptr;  // (d_inner) SmoothQuant: 1/s, y * this
  float s_o = 0;                      // [13] out_proj input scale (after the Hadamard rotation)
  QMatrix out_proj;                   // [14] (d_model, d_inner) = quant(W_out H^T)

  // Mamba-2 (quamba2-spec §2.5, its step numbers). Shared with Mamba-1: norm, s_in, in_proj
  // (d_in_proj, d_model) with in_proj.col the per-slice epilogue factors, conv_w (d_conv,
  // conv_dim), conv_b (conv_dim), dt_bias / A / D (nheads, float), s_o, out_proj.
  float s_z = 0;                           // [2] scale of the z slice; s_dt: of dt_raw
  const float* conv_scale_acc = nullptr;   // [4] (conv_dim) fl(s_w[slice] * s_in[slice])
  const float* conv_bias_f = nullptr;      // [4] (conv_dim) fl(s_b[slice] * b_q)
  const float* xbc_scale = nullptr;        // [4] (conv_dim) conv output scale per channel
  const float* xbc_inv_scale = nullptr;    //     (conv_dim) 1 / xbc_scale
  const int32_t* state_row = nullptr;      // [6-7] (d_inner) row of state_scale per channel
  const float* state_scale = nullptr;      //     (rows, d_state) int8 SSM state scales
  const float* state_inv_scale = nullptr;  //     (rows, d_state) 1 / state_scale
  const float* norm_gated = nullptr;       // [8] (d_inner) gated RMSNorm weight
};

// Weights of the whole model, float or quantized (one of `layers` / `qlayers` is filled).
struct ModelWeights {
  MatrixRef embedding;            // (vocab, d_model), float
  MatrixRef lm_head;              // (vocab, d_model) float head; == embedding when tied
  QMatrix lm_head_q;  // int8 head (lm_head "int8"), or 4-bit with int8 input ("w4", W4A8)
  float s_lm_head_in = 0;         // its static input scale (static recipes)
  const float* norm_f = nullptr;  // (d_model)
  std::vector<LayerWeights> layers;    // float models
  std::vector<QLayerWeights> qlayers;  // quantized models
  uint64_t file_bytes = 0;  // bytes of the tensors the model uses, as stored

  std::unique_ptr<TensorStore> store;            // keeps the mapping alive
  std::vector<std::vector<float>> owned_floats;  // converted / derived small tensors
  std::vector<std::vector<int8_t>> owned_int8;
  std::vector<std::vector<int32_t>> owned_int32;
  std::vector<std::unique_ptr<uint8_t[]>> owned_bytes;  // realigned matrices (rare)
  // Mapped 4-bit codes -> their kS4Rows16 copy in owned_bytes (what the kernels stream).
  std::map<const void*, std::span<const uint8_t>> rows16_copies;
};

// Binds every tensor of a float checkpoint to `c`, checking presence, dtype (F32/F16/BF16) and
// shape. Accepts mamba_ssm names (backbone.embedding.weight) as well as HF ones.
StatusOr<std::unique_ptr<ModelWeights>> BindFloatWeights(const MambaConfig& c,
                                                         std::unique_ptr<TensorStore> store);
// Binds a quantized checkpoint (format/quantized.h) under `qc`; every tensor is checked first.
StatusOr<std::unique_ptr<ModelWeights>> BindQuantizedWeights(const MambaConfig& c,
                                                             const QuantConfig& qc,
                                                             std::unique_ptr<TensorStore> store);

}  // namespace quamba
