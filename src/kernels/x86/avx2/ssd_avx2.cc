// Mamba-2 ops for avx2: the shared bodies of kernels/ssd_impl.inc, auto-vectorised with this
// folder's ISA flags.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernels.h"

namespace quamba::kernels::x86::avx2 {

#include "kernels/ssd_impl.inc"

void FillSsdTable(KernelTable* t) {
  t->ssd_scan = SsdScan;
  t->ssd_chunk = SsdChunk;
  t->gated_rms_norm = GatedRmsNorm;
}

}  // namespace quamba::kernels::x86::avx2
