// Fills the avx512 entries of the kernel table; entries left alone keep the lower ISA's kernel.
#include "kernels/kernels.h"

namespace quamba::kernels::x86::avx512 {

void FillTable(KernelTable* t) { (void)t; }

}  // namespace quamba::kernels::x86::avx512
