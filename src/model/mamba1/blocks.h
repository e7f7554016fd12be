// The Mamba-1 block implementations (internal to model/mamba1/). Each step of the float forward
// quotes the upstream line it implements (transformers/models/mamba/modeling_mamba.py
// MambaMixer.slow_forward, mamba_ssm/modules/mamba_simple.py Mamba.forward / Mamba.step).
#pragma once

#include "model/mamba1/mamba1.h"

namespace quamba::mamba1 {

// Float scratch and the float conv / scan shared by the float, dynamic and static blocks.
class BlockBase : public Block {
 protected:
  explicit BlockBase(const BlockEnv& env);
  // Channels [cb, ce) of xc_ = SiLU(conv1d(xz_[:, :d_inner])) with float weights; float conv
  // states carried. On the calling thread.
  void ConvF32(int layer, const BlockIo& io, const float* w, const float* b, int64_t cb,
               int64_t ce);
  // Channels [cb, ce) of y_ = selective_scan(u = xc_, delta = dt_, B, C from x_dbl_, z from
  // xz_), float inputs. On the calling thread.
  void ScanF32(int layer, const BlockIo& io, const float* dt_bias, const float* A,
               const float* D, int64_t cb, int64_t ce);
  // Runs f(b, e) over rows [0, T): inline for the few rows of a decode step (a row op of
  // d_model elements is cheaper than waking the pool), split across threads otherwise.
  template <typename F>
  void ForRows(int64_t T, F&& f) {
    if (T <= kInlineRows) {
      f(int64_t{0}, T);
    } else {
      pool_.ParallelRange(T, 1, f);
    }
  }
  // One parallel region over the d_inner channels, 64-aligned (every GEMM tile boundary): a
  // block fuses the step that makes a channel's inputs with the per-channel step that uses
  // them (in_proj rows + conv; dt_proj rows + scan), halving the fork-joins of a decode step.
  template <typename F>
  void ForChannels(F&& f) {
    pool_.ParallelRange(di_, 64, f);
  }
  static constexpr int64_t kInlineRows = 4;
  // FalconMamba: x_dbl rows' dt_low, B and C each through a weightless RMSNorm (in place).
  void MixerRmsNorm(int64_t T);
  int64_t n_seq(const BlockIo& io) const { return io.per_row_states ? io.T : 1; }
  int64_t seq_len(const BlockIo& io) const { return io.per_row_states ? 1 : io.T; }

  const MambaConfig& c_;
  const ModelWeights& w_;
  ThreadPool& pool_;
  const kernels::KernelTable& k_;
  const kernels::KernelTable& q8_;
  const int64_t dm_, di_, ds_, R_, n_dbl_;  // d_model, d_inner, d_state, dt_rank, R + 2 ds
  const float eps_;
  // Scratch, (max_rows, width) each.
  float* hn_;     // (T, d_model) normalised mixer input
  float* xz_;     // (T, 2*d_inner) in_proj output [x | z]
  float* xc_;     // (T, d_inner) conv + SiLU output = SSM input u
  float* x_dbl_;  // (T, dt_rank + 2*d_state) x_proj output [dt_low | B | C]
  float* dt_;     // (T, d_inner) dt_proj output (bias added in the scan)
  float* y_;      // (T, d_inner) gated scan output
  float* ones_;   // (max(dt_rank, d_state)) weights of FalconMamba's weightless norms
  float* tmp_;    // (max(dt_rank, d_state)) their input
};

class FloatBlock final : public BlockBase {
 public:
  explicit FloatBlock(const BlockEnv& env) : BlockBase(env) {}
  void Forward(int layer, const BlockIo& io) override;

 private:
  void MatMul(const float* x, int64_t M, int64_t ldx, const MatrixRef& w, float* y, int64_t ldy);
  // Output columns [nb, ne) only, on the calling thread.
  void MatMulRange(const float* x, int64_t M, int64_t ldx, const MatrixRef& w, float* y,
                   int64_t ldy, int64_t nb, int64_t ne);
};

// Int8 scratch shared by the static and dynamic int8 blocks.
class Int8BlockBase : public BlockBase {
 protected:
  explicit Int8BlockBase(const BlockEnv& env);
  Int8Gemm& gemm_;
  int8_t* hn_q_;     // (T, d_model) int8 in_proj input
  int8_t* xz_q_;     // (T, 2*d_inner) int8 [x | z]
  int8_t* u_q_;      // (T, d_inner) int8 SSM input u
  int8_t* u_qs_;     // (T, d_inner) int8 smoothed x_proj input (SmoothQuant)
  int8_t* x_dbl_q_;  // (T, dt_rank + 2*d_state) int8 [dt_low | B | C]
  int8_t* dt_q_;     // (T, d_inner) int8 dt
  int8_t* y_q_;      // (T, d_inner) int8 out_proj input
  float* row_scale_;  // (T) per-token scales (dynamic recipe)
};

// Static W8A8 (quamba, minmax, smoothquant) with int8 kernels (Quamba spec §2.3).
class StaticInt8Block final : public Int8BlockBase {
 public:
  // int8_state: the SSM state is kept int8 (QuantConfig::SsmStateInt8).
  StaticInt8Block(const BlockEnv& env, bool smooth, bool hadamard, bool int8_state);
  void Forward(int layer, const BlockIo& io) override;

 private:
  const bool smooth_, hadamard_;
  float* state_f_ = nullptr;  // (d_inner, d_state) one sequence's dequantised int8 SSM state
};

// Per-token dynamic W8A8: int8 GEMMs, float conv and scan.
class DynamicInt8Block final : public Int8BlockBase {
 public:
  explicit DynamicInt8Block(const BlockEnv& env) : Int8BlockBase(env) {}
  void Forward(int layer, const BlockIo& io) override;

 private:
  // Quantizes rows of x dynamically (per token) into q, scales into row_scale_.
  void QuantizeRowsDynamic(const float* x, int64_t T, int64_t C, int64_t ldx, int8_t* q);
};

}  // namespace quamba::mamba1
