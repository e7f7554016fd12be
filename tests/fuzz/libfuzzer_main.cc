// The libFuzzer entry point of one target, chosen at build time (-DQM_FUZZ_TARGET=FuzzName).
#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return quamba::fuzz::QM_FUZZ_TARGET(data, size);
}
