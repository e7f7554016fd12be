// The runtime: runs a Model's forward pass over token ids. It owns the threads, the scratch
// memory (allocated once: no allocation per token), the blocks (one per kind of layer the model
// uses, from its architecture) and the head (embedding, final norm, lm_head), and batches
// sequences: Prefill consumes a prompt of one sequence in chunks, DecodeStep advances B
// sequences by one token each in one pass. States are the caller's (Model::NewState()).
// Not thread-safe: one Runtime per thread of control.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/q8.h"
#include "model/block.h"
#include "model/int8_gemm.h"
#include "model/model.h"
#include "model/state.h"
#include "model/taps.h"

namespace quamba {

class Runtime {
 public:
  // n_threads: pool size. k: the kernel table to run on (the caller chooses the ISA).
  // max_chunk: tokens per prefill pass; max_batch: sequences per DecodeStep.
  // simulate (quantized models only): int8 GEMMs as float GEMMs over the same integer grid
  // (model/simulate.h).
  Runtime(const Model& model, int n_threads, const kernels::KernelTable& k,
          int64_t max_chunk = 256, int64_t max_batch = 16, bool simulate = false);
  ~Runtime();

  // Consumes ids (any length) for one sequence. logits: (ids.size(), vocab) when all_logits,
  // else (vocab) for the last token; may be null (state update only).
  void Prefill(SequenceState* s, std::span<const int32_t> ids, float* logits, bool all_logits);

  // One token for each of B = ids.size() sequences (B <= max_batch): logits (B, vocab).
  void DecodeStep(std::span<SequenceState* const> states, std::span<const int32_t> ids,
                  float* logits);

  // Layer by layer, for quantizers that change a layer's weights between passes (GPTQ): the
  // caller keeps one sequence's streams between calls. T <= max_chunk rows.
  // h (T, d_model) = the embedding rows of ids: layer 0's input.
  void EmbedRows(std::span<const int32_t> ids, float* h);
  // Layers [first, last) over residual (T, d_model) and h (T, d_model), in place, as BlockIo
  // describes them (first == 0: residual is set from h); s's state of those layers advances
  // and the observer sees their activations.
  void RunLayers(SequenceState* s, int first, int last, float* residual, float* h, int64_t T);

  // Observer of the prefill path's activations (nullptr: none). Not called in DecodeStep.
  void set_observer(ActivationObserver* o) { observer_ = o; }

  const Model& model() const { return model_; }
  const kernels::KernelTable& kernels() const { return k_; }
  int n_threads() const { return pool_.size(); }
  int64_t vocab_size() const { return c_.vocab_size; }
  bool simulate() const { return simulate_; }

 private:
  void Embed(std::span<const int32_t> ids);
  // Runs every layer over rows [0, T), then the optional lm_head-input observation.
  void Layers(int64_t T, SequenceState* const* states, bool per_row_states);
  // logits (n_rows, vocab) of rows[i] (rows null: rows 0..n_rows-1) of the streams.
  void Logits(const int64_t* rows, int64_t n_rows, float* logits);
  void LogitsInt8(const int64_t* rows, int64_t n_rows, float* logits);
  void ObserveLmHeadIn(int64_t T);

  const Model& model_;
  const MambaConfig& c_;
  const ModelWeights& w_;
  const bool simulate_;
  const kernels::KernelTable& k_;
  const kernels::KernelTable& q8_;
  ThreadPool pool_;
  const int64_t max_rows_;   // rows of scratch: max(max_chunk, max_batch)
  const int64_t max_chunk_;  // tokens per prefill pass (an int8 SSM state: requantised after each)
  ActivationObserver* observer_ = nullptr;
  Scratch scratch_;
  std::unique_ptr<Int8Gemm> gemm_;  // int8 GEMMs of quantized models: kernels or simulation
  std::vector<std::unique_ptr<Block>> blocks_;  // one per kind used
  std::vector<Block*> layer_block_;             // (n_layer)
  // Streams, (max_rows, width) each.
  float* residual_;  // (T, d_model) residual stream, fp32
  float* h_;         // (T, d_model) mixer output / embedding
  float* hn_;        // (T, d_model) normalised lm_head input
  float* sum_;       // (T, d_model) scratch of ObserveLmHeadIn
  int8_t* hn_q_;     // (T, d_model) int8 lm_head input
  float* row_scale_;  // (T) per-token scales of the dynamic int8 head
};

}  // namespace quamba
