// Portable Mamba-2 ops: the shared bodies of kernels/ssd_impl.inc at the baseline ISA.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernels.h"

namespace quamba::kernels::generic {

#include "kernels/ssd_impl.inc"

void FillSsdTable(KernelTable* t) {
  t->ssd_scan = SsdScan;
  t->ssd_chunk = SsdChunk;
  t->gated_rms_norm = GatedRmsNorm;
}

}  // namespace quamba::kernels::generic
