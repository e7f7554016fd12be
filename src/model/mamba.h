// Mamba-1 language model: loading a Hugging Face directory and the float32 forward pass
// (prefill over a prompt, one-token recurrent decode for a batch of sequences).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "io/tokenizer.h"
#include "kernels/kernels.h"
#include "kernels/q8.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/qmodel.h"

namespace quamba {

// Recurrent state of one sequence. Constant size, whatever its length.
struct SequenceState {
  std::vector<float> conv;  // (n_layer, d_conv-1, d_inner): the last d_conv-1 conv inputs
  std::vector<int8_t> conv_q;  // (n_layer, d_conv-1, d_inner): same, int8 (static W8A8 models)
  std::vector<float> ssm;   // (n_layer, d_inner, d_state)
  int64_t n_tokens = 0;     // tokens consumed so far
  void Reset();
};

class MambaModel {
 public:
  // `dir` holds config.json, model.safetensors (or a sharded index) and, optionally,
  // tokenizer.json; a quantized model also quantization_config.json. Every tensor is checked
  // against the config before anything runs.
  static StatusOr<std::unique_ptr<MambaModel>> Load(const std::string& dir);

  const MambaConfig& config() const { return config_; }
  bool quantized() const { return qweights_ != nullptr; }
  // Float weights (QM_CHECKs !quantized()) / quantized weights (QM_CHECKs quantized()).
  const ModelWeights& weights() const;
  const QuantizedWeights& qweights() const;
  const TensorStore& store() const;
  uint64_t file_bytes() const;       // bytes of the tensors the model uses, as stored
  // What one decode step (batch 1) must stream from memory: every weight it uses except the
  // embedding table (one row per token) unless that table is also lm_head (tied float head).
  uint64_t DecodeWeightBytes() const;
  // Recurrent state of one sequence (conv + SSM): a decode step reads and writes it.
  uint64_t StateBytes() const;
  // The stored tensors behind DecodeWeightBytes(), in name order (to measure how fast this
  // machine reads exactly this kind of memory; see `quamba bench`).
  std::vector<std::span<const uint8_t>> DecodeWeightSpans() const;
  std::string recipe() const;        // "fp" or the quantization recipe
  std::string weight_type() const;   // "F32", "BF16", "I8", ...
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& dir() const { return dir_; }
  SequenceState NewState() const;

 private:
  // The embedding table, and whether decode streams it whole (it is also the float lm_head).
  const MatrixRef& embedding_table() const;
  bool embedding_is_lm_head() const;

  std::string dir_;
  MambaConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<QuantizedWeights> qweights_;
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
  // The lm_head input norm_f(residual) (rows, d_model), when WantsLmHeadIn(): computed by
  // Prefill after the last layer whether or not logits are asked for.
  virtual bool WantsLmHeadIn() const { return false; }
  virtual void ObserveLmHeadIn(const float* /*x*/, int64_t /*rows*/, int64_t /*cols*/,
                               int64_t /*ld*/) {}
};

// How fast this machine reads what one decode step of `model` streams, in GB/s (1e9 bytes/s):
// the best of `passes` reads of DecodeWeightSpans() with k.sum_u64, split into pool.size()
// contiguous byte ranges (one per thread). The ceiling `quamba bench` measures decode against.
double ReadDecodeBytesGBps(const MambaModel& model, ThreadPool& pool,
                           const kernels::KernelTable& k, int passes);

// Runs the forward pass with preallocated scratch buffers: no allocation per token.
// Not thread-safe (one Engine per thread of control); uses its own pool of n_threads.
class Engine {
 public:
  // `simulate` (quantized models only): run the same quantization points as float
  // quantize-dequantize with float kernels, for ablations (spec: "fake quant").
  Engine(const MambaModel& model, int n_threads, const kernels::KernelTable& k,
         int64_t max_chunk = 256, int64_t max_batch = 16, bool simulate = false);

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
  // Static W8A8 (quamba, minmax, smoothquant) with int8 kernels (mamba_q8.cc).
  void LayerQ8(int layer, int64_t T, SequenceState* const* states, bool per_row_states);
  // Per-token dynamic W8A8: int8 GEMMs, float conv and scan (mamba_q8.cc).
  void LayerDynamic(int layer, int64_t T, SequenceState* const* states, bool per_row_states);
  // Float conv (xz_ -> xc_) and scan (-> y_) shared by the float, dynamic and simulated layers.
  void ConvF32(int layer, int64_t T, SequenceState* const* states, bool per_row_states,
               const float* w, const float* b);
  void ScanF32(int layer, int64_t T, SequenceState* const* states, bool per_row_states,
               const float* dt_bias, const float* A, const float* D);
  // Quantizes rows of x dynamically (per token) into q, scales into row_scale_.
  void QuantizeRowsDynamic(const float* x, int64_t T, int64_t C, int64_t ldx, int8_t* q);
  void GemmS8(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
              const float* a, int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy);
  // GemmS8 of the --simulate mode: a float GEMM over the integer grid (mamba_q8.cc).
  void GemmSim(const int8_t* x, int64_t M, int64_t K, int64_t ldx, const QMatrix& w,
               const float* a, int64_t a_stride, float b, int8_t* y8, float* yf, int64_t ldy);
  void Logits(int64_t T, const int64_t* rows, int64_t n_rows, float* logits);
  // Int8 lm_head (mamba_q8.cc): rows as Logits.
  void LogitsQ8(const int64_t* rows, int64_t n_rows, float* logits);
  void ObserveLmHeadIn(int64_t T);

  const MambaModel& model_;
  const MambaConfig& c_;
  const ModelWeights* w_ = nullptr;        // float model
  const QuantizedWeights* qw_ = nullptr;   // quantized model
  MatrixRef embedding_, lm_head_;
  const float* norm_f_ = nullptr;
  bool simulate_ = false;
  const kernels::KernelTable& k_;
  const kernels::KernelTable& q8_;  // = k_ (the int8 entries share the table)
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
  // Quantized models only.
  std::vector<int8_t> hn_q_;     // (T, d_model) int8 in_proj input
  std::vector<int8_t> xz_q_;     // (T, 2*d_inner) int8 [x | z]
  std::vector<int8_t> u_q_;      // (T, d_inner) int8 SSM input u
  std::vector<int8_t> u_qs_;     // (T, d_inner) int8 smoothed x_proj input (SmoothQuant)
  std::vector<int8_t> x_dbl_q_;  // (T, dt_rank + 2*d_state) int8 [dt_low | B | C]
  std::vector<int8_t> dt_q_;     // (T, d_inner) int8 dt
  std::vector<int8_t> y_q_;      // (T, d_inner) int8 out_proj input
  std::vector<float> row_scale_;  // (T) per-token scales (dynamic recipe)
  std::vector<float> row_scale2_;  // (T)
  // --simulate only: every int8 weight as float grid values (q, not s*q), keyed by its int8
  // data; x (max_rows, max K) and int8-output accumulators (max_rows, 2*d_inner) as floats.
  std::unordered_map<const int8_t*, std::vector<float>> sim_weights_;
  std::vector<float> sim_x_, sim_acc_;
};

}  // namespace quamba
