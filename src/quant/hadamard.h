// Online Hadamard rotation of Quamba (spec §2.4): the transform applied to activations at run
// time and its fusion into the following linear layer's weight. H_n = (H_K (x) H_{2^k}) / sqrt(n)
// for n = 2^k, 12 * 2^k, 40 * 2^k with upstream's H_12 / H_40 (kernels/q8.h HadamardFactor), so
// it is orthogonal (H H^T = I) and weights fused upstream are compatible.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/kernels.h"

namespace quamba {

// OK when n is 2^k, 12 * 2^k or 40 * 2^k (k >= 0); else a one-line error naming n.
Status CheckHadamardSize(int64_t n);

// x (rows, n), row stride ld: each row x_r <- H_n x_r, in place, with the kernels of `k`.
Status HadamardTransformRows(const kernels::KernelTable& k, float* x, int64_t rows, int64_t n,
                             int64_t ld);

// W (N, n) row-major, in place: W <- W H_n^T, so that W' (H_n x) = W x for every x. (Row r of
// W H^T is H w_r: the transform applied to each row.)
Status FoldHadamardIntoWeight(const kernels::KernelTable& k, float* W, int64_t N, int64_t n);

}  // namespace quamba
