#include "kernels/q8.h"
namespace quamba::kernels::x86::avx512 {
void FillQ8Table(Q8KernelTable* t) { (void)t; }
}
