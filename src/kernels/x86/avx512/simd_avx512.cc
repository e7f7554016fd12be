// The width-generic kernel bodies of src/kernels/simd/ compiled for AVX-512 (16 lanes).
//
// One definition rule: the bodies are #included inside namespace quamba::kernels::x86::avx512
// after this ISA's vector traits `Vec` (vec_avx512.h), so each is a distinct x86::avx512::...
// entity compiled only with this file's flags; simd_avx2.cc explains why that is safe.
// GCC 12 warns about the deliberately undefined lanes inside its own AVX-512 intrinsics
// (GCC bug 105593); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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
#include "kernels/x86/avx512/avx512_kernels.h"
#include "kernels/x86/avx512/vec_avx512.h"

namespace quamba::kernels::x86::avx512 {

#include "kernels/simd/conv.inc"
#include "kernels/simd/hadamard.inc"
#include "kernels/simd/norm.inc"
#include "kernels/simd/quantize.inc"
#include "kernels/simd/scan.inc"

}  // namespace quamba::kernels::x86::avx512
