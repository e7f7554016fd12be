// libFuzzer targets for the readers of untrusted files. Each takes one input and returns 0; a
// crash, a sanitizer report or a QM_CHECK abort is a finding. They are built twice: as libFuzzer
// binaries (-DQM_FUZZ=ON with clang; libfuzzer_main.cc, scripts/fuzz.sh) and into quamba_tests,
// where FuzzCorpusTest replays every file of tests/fuzz/corpus/<target>/ (so a crash once found
// stays a regression test in both the Release and the ASan+UBSan ctest runs).
//
// To add a target: write `int FuzzName(const uint8_t*, size_t)` in tests/fuzz/fuzz_name.cc,
// declare it here, list it in kFuzzTargets below and in QM_FUZZ_TARGETS (CMakeLists.txt), and
// give it seeds in tests/fuzz/corpus/name/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quamba::fuzz {

// A safetensors file; if it parses, every tensor's bytes are read, then it is bound as a float
// and as a quantized checkpoint of a tiny config (1 layer, d_model 8, vocab 16).
int FuzzSafetensors(const uint8_t* data, size_t size);
// config.json; if it parses, ToHfJson() must parse back to the same sizes.
int FuzzConfig(const uint8_t* data, size_t size);
// tokenizer.json; if it parses, a few texts are encoded and decoded.
int FuzzTokenizer(const uint8_t* data, size_t size);
// quantization_config.json; if it parses, ToJson() must parse back to the same settings.
int FuzzQuantConfig(const uint8_t* data, size_t size);
// An eval task's files: byte 0 picks the task and layout, the rest is the data file, then (after
// a line "=====") the labels file; loaded docs are aggregated with dummy scores.
int FuzzEvalTasks(const uint8_t* data, size_t size);
// A POST body of `quamba serve`: byte 0 picks /v1/completions (even) or /v1/chat/completions
// (odd), the rest is parsed and checked as the server does; accepted requests are answered.
int FuzzServeRequest(const uint8_t* data, size_t size);

struct FuzzTarget {
  const char* name;  // the corpus folder
  int (*run)(const uint8_t*, size_t);
};
inline constexpr FuzzTarget kFuzzTargets[] = {
    {"safetensors", FuzzSafetensors}, {"config", FuzzConfig},
    {"tokenizer", FuzzTokenizer},     {"quant_config", FuzzQuantConfig},
    {"eval_tasks", FuzzEvalTasks},    {"serve_request", FuzzServeRequest},
};

}  // namespace quamba::fuzz
