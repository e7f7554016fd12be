// Calibration text -> token samples. Quamba calibrates on the first 512 Pile-validation
// documents, each truncated to 512 tokens, one at a time (spec §2.2); here:
//  - .jsonl files: one JSON object per line with a "text" field; each document is one sample,
//    truncated to calib_len tokens (documents of fewer than 2 tokens are skipped);
//  - any other file: plain text, tokenized as one stream and cut into consecutive samples of
//    calib_len tokens (a shorter tail is dropped).
// Files are read in the order given until n_samples samples exist; every file must exist, and
// `used_files` (if not null) receives those that gave samples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <functional>

#include "core/status.h"
#include "io/tokenizer.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/taps.h"

namespace quamba {

StatusOr<std::vector<std::vector<int32_t>>> LoadCalibrationSamples(
    const std::vector<std::string>& files, const Tokenizer& tok, int64_t n_samples,
    int64_t calib_len, std::vector<std::string>* used_files = nullptr);

// Prefills every sample from a new (zero) state with `obs` watching, each sample in one chunk
// (an observer sees a sample whole, as upstream's batch-1 calibration), under a progress bar
// named `label` when `progress`; after_sample, if set, sees each sample's final state.
void PrefillSamples(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                    const kernels::KernelTable& k, int threads, ActivationObserver* obs,
                    const char* label, bool progress,
                    const std::function<void(SequenceState&)>& after_sample = {});

}  // namespace quamba
