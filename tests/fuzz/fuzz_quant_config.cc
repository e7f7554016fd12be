#include <string>

#include "core/check.h"
#include "fuzz/fuzz_targets.h"
#include "format/quantized.h"

namespace quamba::fuzz {

int FuzzQuantConfig(const uint8_t* data, size_t size) {
  auto q = QuantConfig::FromJson(std::string(reinterpret_cast<const char*>(data), size),
                                 "quantization_config.json");
  if (!q.ok()) return 0;
  // What quantize writes must read back as the same settings.
  auto back = QuantConfig::FromJson(q->ToJson(), "written quantization_config.json");
  QM_CHECK(back.ok(), "%s", back.status().message().c_str());
  QM_CHECK(back->recipe == q->recipe && back->lm_head == q->lm_head &&
           back->calib_files == q->calib_files && back->source_model == q->source_model &&
           back->calib_samples == q->calib_samples);
  return 0;
}

}  // namespace quamba::fuzz
