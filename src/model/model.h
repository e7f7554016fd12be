// A loaded language model: configuration, weights (float or quantized), tokenizer, and what the
// runtime needs to run it (the block kind of every layer, the state layout). Architecture-
// agnostic to its users; today's architecture is Mamba-1 (model/mamba1/).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "format/config.h"
#include "format/quantized.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "kernels/kernels.h"
#include "model/arch.h"
#include "model/weights.h"
#include "model/state.h"

namespace quamba {

class Model {
 public:
  // `dir` holds config.json, model.safetensors (or a sharded index) and, optionally,
  // tokenizer.json; a quantized model also quantization_config.json. Every tensor is checked
  // against the config before anything runs.
  static StatusOr<std::unique_ptr<Model>> Load(const std::string& dir);
  // A float model over weights built in memory (quantizers: a rotated or fake-quantized copy of
  // a loaded model). No tokenizer, no directory; w->store may be null.
  static std::unique_ptr<Model> FromWeights(const MambaConfig& c,
                                            std::unique_ptr<ModelWeights> w);

  const MambaConfig& config() const { return config_; }
  bool quantized() const { return qc_.has_value(); }
  const QuantConfig& quant_config() const;  // QM_CHECKs quantized()
  const ModelWeights& weights() const { return *weights_; }
  const TensorStore& store() const { return *weights_->store; }
  // The block kind of each layer (a model may mix kinds).
  BlockKind layer_kind(int layer) const { return layer_kinds_[layer]; }
  const StateLayout& state_layout() const { return state_layout_; }
  SequenceState NewState() const { return SequenceState(&state_layout_); }

  uint64_t file_bytes() const { return weights_->file_bytes; }  // tensors used, as stored
  // What one decode step (batch 1) must stream from memory: every weight it uses except the
  // embedding table (one row per token) unless that table is also lm_head (tied float head).
  uint64_t DecodeWeightBytes() const;
  // Recurrent state of one sequence (conv + SSM): a decode step reads and writes it.
  uint64_t StateBytes() const { return state_layout_.bytes(); }
  // The stored tensors behind DecodeWeightBytes(), in name order (to measure how fast this
  // machine reads exactly this kind of memory; see `quamba bench`).
  std::vector<std::span<const uint8_t>> DecodeWeightSpans() const;
  std::string recipe() const;       // "fp" or the quantization recipe
  std::string weight_type() const;  // "F32", "BF16", "I8 (W8A8 static, lm_head F16)", ...
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& dir() const { return dir_; }

 private:
  bool embedding_is_lm_head() const;

  std::string dir_;
  MambaConfig config_;
  std::optional<QuantConfig> qc_;
  std::unique_ptr<ModelWeights> weights_;
  std::vector<BlockKind> layer_kinds_;
  StateLayout state_layout_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// How fast this machine reads what one decode step of `model` streams, in GB/s (1e9 bytes/s):
// the best of `passes` reads of DecodeWeightSpans() with k.sum_u64, split into pool.size()
// contiguous byte ranges (one per thread). The ceiling `quamba bench` measures decode against.
double ReadDecodeBytesGBps(const Model& model, ThreadPool& pool, const kernels::KernelTable& k,
                           int passes);

}  // namespace quamba
