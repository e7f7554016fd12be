// Helpers shared by the int8 backends (generic and x86); not part of the op API. Declarations
// only: this header is included by ISA-flagged translation units, and an inline function here
// could be emitted with AVX-512 code and kept by the linker for every caller (the ODR trap
// x86/x86_common.h describes).
#pragma once

#include <cstdint>

namespace quamba::kernels::q8 {

// Per-thread scratch, 64-byte aligned, grown on first use and kept for the thread's life.
// Contents unspecified; valid until the next call with the same slot on the same thread.
// kA..kC: the int8 GEMMs and row ops; kD, kE: kernels that call an int8 GEMM per block (the
// W4A8 prefill's per-group panels) and must keep their buffers across that call.
enum class Q8Slot : int { kA = 0, kB = 1, kC = 2, kD = 3, kE = 4 };
void* Scratch(Q8Slot slot, int64_t bytes);

}  // namespace quamba::kernels::q8
