#include "kernels/q8.h"
namespace quamba::kernels::x86::avx2 {
void FillQ8Table(Q8KernelTable* t) { (void)t; }
}
