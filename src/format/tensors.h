// The tensors of a Mamba-1 LM: one list (ForEachTensor) serves loading, checking, `synth` and
// writing, as gemma.cpp's ForEachTensor does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "format/config.h"

namespace quamba {

// What a checkpoint tensor is, for whoever walks the list.
enum class TensorRole : uint8_t {
  kEmbedding,  // backbone.embeddings.weight (vocab, d_model)
  kNormF,      // backbone.norm_f.weight (d_model)
  kLmHead,     // lm_head.weight (vocab, d_model); optional when tied
  kNorm,       // layers.i.norm.weight (d_model)
  kInProj,     // mixer.in_proj.weight (2*d_inner, d_model)
  kConvW,      // mixer.conv1d.weight (d_inner, 1, d_conv)
  kConvB,      // mixer.conv1d.bias (d_inner); optional when !use_conv_bias
  kXProj,      // mixer.x_proj.weight (dt_rank + 2*d_state, d_inner)
  kDtProjW,    // mixer.dt_proj.weight (d_inner, dt_rank)
  kDtProjB,    // mixer.dt_proj.bias (d_inner)
  kALog,       // mixer.A_log (d_inner, d_state)
  kD,          // mixer.D (d_inner)
  kOutProj,    // mixer.out_proj.weight (d_model, d_inner)
};

struct TensorSpec {
  std::string name;  // HF transformers name
  std::vector<int64_t> shape;
  TensorRole role;
  int layer;       // -1 for non-layer tensors
  bool matrix;     // a linear-layer weight (used in its stored dtype by the matmul kernels)
  bool optional;   // may be absent from a checkpoint
};

// Calls f(const TensorSpec&) for every tensor of the model, in a fixed order.
template <typename F>
void ForEachTensor(const MambaConfig& c, F&& f) {
  const int64_t dm = c.d_model, di = c.d_inner, ds = c.d_state, r = c.dt_rank;
  f(TensorSpec{"backbone.embeddings.weight", {c.vocab_size, dm}, TensorRole::kEmbedding, -1,
               true, false});
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    f(TensorSpec{p + "norm.weight", {dm}, TensorRole::kNorm, i, false, false});
    f(TensorSpec{p + "mixer.in_proj.weight", {2 * di, dm}, TensorRole::kInProj, i, true, false});
    f(TensorSpec{p + "mixer.conv1d.weight", {di, 1, c.d_conv}, TensorRole::kConvW, i, false,
                 false});
    f(TensorSpec{p + "mixer.conv1d.bias", {di}, TensorRole::kConvB, i, false,
                 !c.use_conv_bias});
    f(TensorSpec{p + "mixer.x_proj.weight", {r + 2 * ds, di}, TensorRole::kXProj, i, true, false});
    f(TensorSpec{p + "mixer.dt_proj.weight", {di, r}, TensorRole::kDtProjW, i, true, false});
    f(TensorSpec{p + "mixer.dt_proj.bias", {di}, TensorRole::kDtProjB, i, false, false});
    f(TensorSpec{p + "mixer.A_log", {di, ds}, TensorRole::kALog, i, false, false});
    f(TensorSpec{p + "mixer.D", {di}, TensorRole::kD, i, false, false});
    f(TensorSpec{p + "mixer.out_proj.weight", {dm, di}, TensorRole::kOutProj, i, true, false});
  }
  f(TensorSpec{"backbone.norm_f.weight", {dm}, TensorRole::kNormF, -1, false, false});
  f(TensorSpec{"lm_head.weight", {c.vocab_size, dm}, TensorRole::kLmHead, -1, true,
               c.tie_embeddings});
}

// A matrix used in place: stored dtype, row-major (N, K).
struct MatrixRef {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
};

struct LayerWeights {
  const float* norm = nullptr;     // (d_model)
  MatrixRef in_proj;               // (2*d_inner, d_model)
  const float* conv_w = nullptr;   // (d_conv, d_inner): transposed from (d_inner, 1, d_conv)
  const float* conv_b = nullptr;   // (d_inner); zeros when the model has no conv bias
  MatrixRef x_proj;                // (dt_rank + 2*d_state, d_inner)
  MatrixRef dt_proj;               // (d_inner, dt_rank)
  const float* dt_bias = nullptr;  // (d_inner)
  const float* A = nullptr;        // (d_inner, d_state) = -exp(A_log), computed at load in fp32
  const float* D = nullptr;        // (d_inner)
  MatrixRef out_proj;              // (d_model, d_inner)
};

struct ModelWeights {
  MatrixRef embedding;  // (vocab, d_model)
  MatrixRef lm_head;    // (vocab, d_model); == embedding when tied
  const float* norm_f = nullptr;  // (d_model)
  std::vector<LayerWeights> layers;
  uint64_t file_bytes = 0;  // bytes of the tensors the model uses, as stored

  DType in_proj_dtype() const { return layers.empty() ? embedding.dtype : layers[0].in_proj.dtype; }

  std::unique_ptr<TensorStore> store;            // keeps the mapping alive
  std::vector<std::vector<float>> owned_floats;  // converted / derived small tensors
  std::vector<std::unique_ptr<uint8_t[]>> owned_bytes;  // realigned matrices (rare)
};

// Binds every tensor of `store` to `c`, checking presence, dtype (F32/F16/BF16) and shape.
// Accepts mamba_ssm names (backbone.embedding.weight) as well as HF ones.
StatusOr<std::unique_ptr<ModelWeights>> BindWeights(const MambaConfig& c,
                                                    std::unique_ptr<TensorStore> store);

}  // namespace quamba
