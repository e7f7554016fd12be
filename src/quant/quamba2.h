// Quamba2's recipes (quamba2-spec §2): quamba2-w4a16 on Mamba-1, FalconMamba and Mamba-2 (here);
// quamba2-w8a8 and quamba2-w4a8 on Mamba-1 (the int8 path of quantizer.cc, with the working
// model and RunGptq of this file). The steps, in the official order (§2.1): the residual-stream rotation with the norm
// weights folded out (§2.2), then GPTQ of in_proj and out_proj layer by layer, each layer's
// Hessians measured with the layers before it already quantized (§2.7); Mamba-1 x_proj by
// round-to-nearest on the same grid.
#pragma once

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "format/quantized.h"
#include "io/output_dir.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quant/gptq.h"
#include "quant/quantizer.h"
#include "quant/sort_cluster.h"

namespace quamba {

// A float32 copy of a float model, in memory, that the recipe changes as it goes. The matrices it
// quantizes are owned and writable through these pointers (row-major, as in the checkpoint).
struct WorkingModel {
  std::unique_ptr<Model> model;
  ModelWeights* weights = nullptr;  // model's weights, writable (the recipe edits them)
  std::unique_ptr<Model> base;      // a copy whose small tensors model shares, if any
  float* embedding = nullptr;  // (vocab, d_model)
  float* lm_head = nullptr;    // (vocab, d_model); == embedding when tied and not rotated
  struct Layer {
    float* in_proj = nullptr;   // (N_in, d_model)
    float* out_proj = nullptr;  // (d_model, d_inner)
    float* x_proj = nullptr;    // Mamba-1 (dt_rank + 2 d_state, d_inner); null for Mamba-2
  };
  std::vector<Layer> layers;
};

// The copy of `src` (a float model) with, when `rotate`, the residual stream rotated (spec §2.2):
//   embedding rows e <- H_dm e;
//   per layer W_in <- W_in diag(w_norm) H_dm^T, w_norm <- 1;
//             W_out <- H_dm W_out H_di^T, with the online y <- H_di y before out_proj;
//   lm_head <- W_lm diag(w_norm_f) H_dm^T, w_norm_f <- 1 (untied from the embedding).
// Its logits equal src's up to float rounding (RMSNorm commutes with an orthogonal H once its
// weight is folded out). Other tensors are shared with src, which must outlive the copy.
// Error: d_model or d_inner not a Hadamard size (2^k, 12 2^k, 40 2^k).
StatusOr<WorkingModel> MakeWorkingModel(const Model& src, const kernels::KernelTable& k,
                                        bool rotate);

// 4-bit codes of one layer's matrices.
struct LayerCodes {
  W4Weights in_proj, out_proj, x_proj;  // x_proj: Mamba-1 only
};

// --lm-head w4: the 4-bit embedding and lm_head.
struct HeadCodes {
  W4Weights embedding, lm_head;
};

// GPTQ layer by layer (spec §2.7): per layer one pass over the samples with float weights
// collects both Hessians (out_proj's after the online Hadamard when qc.hadamard), GPTQ quantizes
// in_proj and out_proj (Mamba-1 x_proj by round-to-nearest), the dequantized values replace
// wm's, and a second pass with the quantized layer makes the next layer's inputs. With
// qc.lm_head "w4" also lm_head on the norm_f output. codes: n_layer entries.
Status RunGptq(WorkingModel& wm, const std::vector<std::vector<int32_t>>& samples,
               const QuantConfig& qc, const kernels::KernelTable& k, const QuantizeOptions& opt,
               std::vector<LayerCodes>* codes, HeadCodes* head);

// --embedding int8: the table (rows, cols) as int8 with one symmetric scale per row (token).
struct Int8Table {
  std::vector<int8_t> q;      // (rows, cols)
  std::vector<float> scales;  // (rows)
};
Int8Table QuantizeTableInt8(const float* v, int64_t rows, int64_t cols);

// The dtype of a quantized file's float head tensors (ForEachQuantTensor's embedding_dtype):
// the lm_head's float mode, else the table's; "keep" = the source table's dtype `source`.
DType HeadFloatDType(const QuantConfig& qc, DType source);

// Packs codes 0..15 (rows, cols), one per byte, two per byte along K (kernels::kS4Group layout:
// low nibble = even column). cols even.
std::vector<uint8_t> PackS4(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols);

// v[j] <- old v[idx[j]] for runs of `width` elements (rows of a matrix, or scalars).
template <typename T>
void Permute(T* v, const std::vector<int32_t>& idx, int64_t width) {
  std::vector<T> old(v, v + idx.size() * width);
  for (size_t j = 0; j < idx.size(); ++j)
    std::memcpy(v + j * width, old.data() + idx[j] * width, width * sizeof(T));
}

// Tensors being written, owning their bytes until WriteQuantizedOutput.
class TensorSink {
 public:
  template <typename T>
  void Put(std::string name, DType dtype, const std::vector<T>& v, std::vector<int64_t> shape) {
    bytes_.emplace_back(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(bytes_.back().data(), v.data(), v.size() * sizeof(T));
    tensors_.push_back({std::move(name), dtype, std::move(shape), bytes_.back().data(), nullptr});
  }
  // The 4-bit matrix `spec` (N, K): codes packed two per byte U8 (N, K/2) and the group scales
  // F32 (N, K/group) as `<base>.weight_scale`.
  void PutS4(const TensorSpec& spec, const W4Weights& q);
  std::vector<TensorToWrite>& tensors() { return tensors_; }

 private:
  std::deque<std::vector<uint8_t>> bytes_;
  std::vector<TensorToWrite> tensors_;
};

// quamba2-w8a8 / -w4a8 on Mamba-2 (spec §2.1-2.3): the sort-and-cluster statistic of x on the
// float model (per sample the mean |x_c| over tokens, the max over samples), the clusters per
// layer (qc.x_head_clusters x qc.x_dim_groups; 1 x 1: one group per SSD group, no reordering),
// a float copy reordered by them (in_proj z / x / dt rows, conv x channels, A / D / dt_bias,
// the gated-norm weight, out_proj columns: logits unchanged up to rounding), then rotated as
// MakeWorkingModel with qc.residual_hadamard. clusters: n_layer entries.
StatusOr<WorkingModel> MakeMamba2WorkingModel(const Model& model,
                                              const std::vector<std::vector<int32_t>>& samples,
                                              const QuantConfig& qc,
                                              const kernels::KernelTable& k,
                                              const QuantizeOptions& opt,
                                              std::vector<XClusters>* clusters);

// Abs-max statistics of one Mamba-2 layer at the A8 quantization points (spec §2.4).
struct Mamba2LayerCalib {
  float in_proj_in = 0;
  float in_proj_out[5] = {};  // slices z, x, B, C, dt_raw
  std::vector<float> x;       // (G*m*n) conv output x per scale row (XClusters::Row)
  std::vector<float> B, C;    // (G) conv output B, C per SSD group
  std::vector<float> state;   // (G*m*n, d_state) final SSM states of the samples
  float out_proj_in = 0;      // after the online Hadamard when qc.hadamard
};
struct Mamba2Calib {
  std::vector<Mamba2LayerCalib> layers;
  float lm_head_in = 0;  // norm_f output (lm_head int8)
};
// Runs the float working model over the samples (one chunk each) and gathers the statistics.
StatusOr<Mamba2Calib> CalibrateMamba2(const Model& fm, const QuantConfig& qc,
                                      const std::vector<XClusters>& clusters,
                                      const std::vector<std::vector<int32_t>>& samples,
                                      const kernels::KernelTable& k, int threads, bool progress);

// The quantized tensors of Mamba-2 layer tensor `spec` (ForEachQuantTensor's Mamba-2 A8 list)
// from the working model, the source checkpoint (A_log, D, dt_bias and the gated-norm weight,
// permuted exactly), the calibration, the clusters and (4-bit) the codes.
void PutMamba2LayerTensors(const TensorSpec& spec, const WorkingModel& wm,
                           const TensorStore& src, const Mamba2LayerCalib& cal,
                           const XClusters& cl, const LayerCodes& codes, const QuantConfig& qc,
                           TensorSink* sink);

// Layer tensor `spec` of a float-activation layer (W4A16, or an A16 layer of W4AX; the list of
// ForEachQuantTensor): in_proj / out_proj / Mamba-1 x_proj as 4-bit codes and group scales, the
// norm weight from the working model (ones after the rotation), every other tensor float32
// from the source checkpoint (conv1d.bias zeros where absent). cl (Mamba-2 W4AX, whose working
// model is in sort-and-cluster order): the conv x channels, A_log / D / dt_bias and the gated
// norm permuted to that order; null: as stored.
void PutA16LayerTensor(const TensorSpec& spec, const WorkingModel& wm, const TensorStore& src,
                       const LayerCodes& codes, const QuantConfig& qc, const XClusters* cl,
                       TensorSink* sink);

// quamba2-w4ax (spec §2.9). "W4A8" / "W4A16" per layer from the official
// hybrid_blocks_config.json format (a JSON list of n_layer strings): the A16 layers.
StatusOr<std::vector<int>> ReadLayerConfig(const std::string& file, int64_t n_layer);
// The layer of a tensor name "backbone.layers.<l>.…", -1 for the others.
int TensorLayer(const std::string& name);
// A W4AX model's tensors: a8 (every tensor as W4A8) with the layer tensors of a16_layers taken
// from a16 (every layer's tensors as W4A16) instead.
std::vector<TensorToWrite> SelectW4AXTensors(const std::vector<TensorToWrite>& a8,
                                             const std::vector<TensorToWrite>& a16,
                                             const std::vector<int>& a16_layers);
// Per layer l, the mean per-token KL divergence KL(float || candidate) over `held_out` of the
// candidate with layer l alone W4A8 and every other layer W4A16 (spec §2.9, our design): each
// candidate is written to `scratch` (removed after) and loaded as any quantized model.
// all_a16: the same measure of the model with every layer W4A16 (the floor of the others).
StatusOr<std::vector<double>> MeasureLayerSensitivity(
    const Model& model, const QuantConfig& qc, DType emb_dtype,
    const std::vector<TensorToWrite>& a8, const std::vector<TensorToWrite>& a16,
    const std::vector<std::vector<int32_t>>& held_out, const std::string& scratch,
    const kernels::KernelTable& k, int threads, bool progress, double* all_a16);
// The k layers of highest sensitivity (ties: the lower layer), sorted.
std::vector<int> MostSensitiveLayers(const std::vector<double>& sensitivity, int64_t k);

// The 4-bit recipes behind QuantizeModel (qc.weight_bits == 4; options checked there).
Status QuantizeW4(const Model& model, const QuantizeOptions& opt, QuantConfig qc,
                  const kernels::KernelTable& k, OutputDir& out);

}  // namespace quamba
