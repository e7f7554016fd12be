// Helpers shared by the x86 kernel translation units. This header and x86_common.cc are compiled
// for the baseline ISA (no -mavx*), so nothing here may be an inline function whose code would
// differ between ISAs: an inline function emitted by an AVX-512 TU could be the copy the linker
// keeps for every caller (the ODR trap that crashes AVX2-only CPUs).
#pragma once

#include <cstdint>

namespace quamba::kernels::x86 {

// Per-thread scratch buffers, 64-byte aligned, grown on first use and kept for the thread's
// life (the "allocation-free except a per-thread scratch buffer" rule of kernels.h).
enum class ScratchSlot : int { kPackedW = 0, kPackedX = 1 };
constexpr int kNumScratchSlots = 2;
// Returns a buffer of at least n_floats floats; contents are unspecified. The pointer is valid
// until the next call with the same slot on the same thread.
float* Scratch(ScratchSlot slot, int64_t n_floats);

// Test hooks for the SIMD elementwise approximations (each ISA's vmath), applied to a row:
// y (n) = f(x (n)). Only call the ones whose ISA IsaSupported() reports.
namespace avx2 {
void ExpRow(const float* x, int64_t n, float* y);
void Exp2NonPositiveRow(const float* x, int64_t n, float* y);  // 2^x, the scan's exp
void SoftplusRow(const float* x, int64_t n, float* y);
void SiluRow(const float* x, int64_t n, float* y);
}  // namespace avx2
namespace avx512 {
void ExpRow(const float* x, int64_t n, float* y);
void Exp2NonPositiveRow(const float* x, int64_t n, float* y);  // 2^x, the scan's exp
void SoftplusRow(const float* x, int64_t n, float* y);
void SiluRow(const float* x, int64_t n, float* y);
}  // namespace avx512

}  // namespace quamba::kernels::x86
