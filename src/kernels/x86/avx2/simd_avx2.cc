// The width-generic kernel bodies of src/kernels/simd/ compiled for AVX2 + FMA (8 lanes).
//
// One definition rule: each body is #included below inside namespace
// quamba::kernels::x86::avx2, after this ISA's vector traits `Vec` (vec_avx2.h). Every function it
// defines (the kernels and their helpers, templates included) is therefore a distinct entity
// named x86::avx2::..., compiled only with this file's flags; the avx512 copy is
// x86::avx512::... in simd_avx512.cc. No inline function or template instantiation is shared
// between the two ISAs, so the linker can never keep one ISA's copy for the other's callers (the
// trap x86_common.h describes). Helpers the bodies use from shared headers are either
// declarations (q8::Scratch) or have internal linkage (q8_rowops.h's anonymous namespace).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/check.h"
#include "kernels/generic/generic.h"
#include "kernels/generic/q8_generic.h"
#include "kernels/kernels.h"
#include "kernels/q8_internal.h"
#include "kernels/q8_rowops.h"
#include "kernels/x86/avx2/avx2_kernels.h"
#include "kernels/x86/avx2/vec_avx2.h"

namespace quamba::kernels::x86::avx2 {

#include "kernels/simd/conv.inc"
#include "kernels/simd/hadamard.inc"
#include "kernels/simd/norm.inc"
#include "kernels/simd/quantize.inc"
#include "kernels/simd/scan.inc"

}  // namespace quamba::kernels::x86::avx2
