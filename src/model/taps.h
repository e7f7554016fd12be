// Activation taps: the points where the prefill path shows its float activations to an observer
// (calibration, outlier inspection). They are part of the model's public interface; each
// architecture numbers its own taps (mamba1::Tap in model/mamba1/mamba1.h) and names them as the
// official quantization code keys them ("in_proj:input", ...).
#pragma once

#include <cstdint>

namespace quamba {

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: (rows, cols) float32 with row stride ld, at tap `tap` (the architecture's enum) of `layer`.
  virtual void Observe(int layer, int tap, const float* x, int64_t rows, int64_t cols,
                       int64_t ld) = 0;
  // The lm_head input norm_f(residual) (rows, d_model), when WantsLmHeadIn(): computed by
  // Prefill after the last layer whether or not logits are asked for.
  virtual bool WantsLmHeadIn() const { return false; }
  virtual void ObserveLmHeadIn(const float* /*x*/, int64_t /*rows*/, int64_t /*cols*/,
                               int64_t /*ld*/) {}
};

}  // namespace quamba
