// Mamba-1 language model: loading a Hugging Face directory and the float32 forward pass
// (prefill over a prompt, one-token recurrent decode for a batch of sequences).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "io/tokenizer.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/weights.h"

namespace quamba {

// Recurrent state of one sequence. Constant size, whatever its length.
struct SequenceState {
  std::vector<float> conv;  // (n_layer, d_conv-1, d_inner): the last d_conv-1 conv inputs
  std::vector<float> ssm;   // (n_layer, d_inner, d_state)
  int64_t n_tokens = 0;     // tokens consumed so far
  void Reset();
};

class MambaModel {
 public:
  // `dir` holds config.json, model.safetensors (or a sharded index) and, optionally,
  // tokenizer.json. Every tensor is checked against the config before anything runs.
  static StatusOr<std::unique_ptr<MambaModel>> Load(const std::string& dir);

  const MambaConfig& config() const { return config_; }
  const ModelWeights& weights() const { return *weights_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& dir() const { return dir_; }
  SequenceState NewState() const;

 private:
  std::string dir_;
  MambaConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// The activations at Quamba's quantization points (spec §2.3), as the float forward sees them.
enum class ActPoint : uint8_t {
  kInProjIn,    // RMSNorm output, (T, d_model)
  kInProjOut,   // xz = [x | z], (T, 2*d_inner)
  kXProjIn,     // SiLU(conv(x)) = SSM input u, (T, d_inner)
  kXProjOut,    // x_dbl = [dt_low | B | C], (T, dt_rank + 2*d_state)
  kDtProjOut,   // dt before bias/softplus, (T, d_inner)
  kOutProjIn,   // y * SiLU(z) before any rotation, (T, d_inner)
  kOutProjOut,  // mixer output, (T, d_model)
};
constexpr int kNumActPoints = 7;
const char* ActPointName(ActPoint p);  // "in_proj:input", ... (the official code's keys)

// Receives every activation of the prefill path (calibration, outlier inspection).
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: (rows, cols) with row stride ld, float32.
  virtual void Observe(int layer, ActPoint point, const float* x, int64_t rows, int64_t cols,
                       int64_t ld) = 0;
};

// Runs the forward pass with preallocated scratch buffers: no allocation per token.
// Not thread-safe (one Engine per thread of control); uses its own pool of n_threads.
class Engine {
 public:
  Engine(const MambaModel& model, int n_threads, const kernels::KernelTable& k,
         int64_t max_chunk = 256, int64_t max_batch = 16);

  // Consumes ids (any length) for one sequence. logits: (ids.size(), vocab) when all_logits,
  // else (vocab) for the last token; may be null (state update only).
  void Prefill(SequenceState* s, std::span<const int32_t> ids, float* logits, bool all_logits);

  // One token for each of B = ids.size() sequences (B <= max_batch): logits (B, vocab).
  void DecodeStep(std::span<SequenceState* const> states, std::span<const int32_t> ids,
                  float* logits);

  // Observer of the prefill path's activations (nullptr: none). Not called in DecodeStep.
  void set_observer(ActivationObserver* o) { observer_ = o; }

  const kernels::KernelTable& kernels() const { return k_; }
  int n_threads() const { return pool_.size(); }
  int64_t vocab_size() const { return c_.vocab_size; }

 private:
  // Rows [0, T) of the scratch hold T tokens (prefill chunk of one sequence, or one token of
  // each of T sequences in decode).
  void Embed(std::span<const int32_t> ids);
  void MatMul(const float* x, int64_t M, int64_t ldx, const MatrixRef& w, float* y, int64_t ldy);
  void Layer(int layer, int64_t T, SequenceState* const* states, bool per_row_states);
  void Logits(int64_t T, const int64_t* rows, int64_t n_rows, float* logits);

  const MambaModel& model_;
  const MambaConfig& c_;
  const ModelWeights& w_;
  const kernels::KernelTable& k_;
  ThreadPool pool_;
  int64_t max_rows_;
  ActivationObserver* observer_ = nullptr;
  // Scratch, (max_rows, width) each.
  std::vector<float> residual_;  // (T, d_model) residual stream, fp32
  std::vector<float> h_;         // (T, d_model) mixer output / embedding
  std::vector<float> hn_;        // (T, d_model) normalised input of the mixer / lm_head
  std::vector<float> xz_;        // (T, 2*d_inner) in_proj output [x | z]
  std::vector<float> xc_;        // (T, d_inner) conv + SiLU output = SSM input u
  std::vector<float> x_dbl_;     // (T, dt_rank + 2*d_state) x_proj output [dt_low | B | C]
  std::vector<float> dt_;        // (T, d_inner) dt_proj output (bias added in the scan)
  std::vector<float> y_;         // (T, d_inner) gated scan output
};

}  // namespace quamba
