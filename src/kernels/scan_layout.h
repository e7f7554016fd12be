// Where each channel of a selective scan finds its parameters, so that Mamba-1 and Mamba-2 are
// two uses of one scan (ScanArgs in kernels.h, ScanS8Args in q8.h). Channel c < d_inner (state
// row c of the (d_inner, d_state) state) at step t reads
//   A[c, n]      = A[(c / a_group) * a_ld + n * a_n_stride]
//   B[t, c, n]   = B[t * ld_bc + (c / bc_group) * bc_ld + n]      (C the same, from C)
//   delta[t, c]  = delta[t * ld_delta + c / dt_group],  delta_bias[c / dt_group]
//   D[c]         = D[c / d_group]
// The defaults are Mamba-1: A (d_inner, d_state) per channel and state, B and C (L, d_state)
// shared by every channel, delta / delta_bias / D per channel. Mamba-2 (Mamba2()): channel
// c = h * headdim + p of head h; scalar A, dt, dt_bias and D per head; B and C per SSD group
// g = h / (nheads / ngroups), each (L, ngroups, d_state).
//
// The float64 oracles and the generic kernels handle every layout. The SIMD kernels run the
// Mamba-1 layout on their vector path and hand any other layout to the generic kernel: a fast
// Mamba-2 step comes with the Mamba-2 issue.
#pragma once

#include <cstdint>
#include <limits>

namespace quamba::kernels {

struct ScanLayout {
  int64_t a_group = 1;     // channels sharing one A row
  int64_t a_ld = 0;        // A row stride; 0 means d_state (a dense (d_inner, d_state) A)
  int64_t a_n_stride = 1;  // A step per state index n; 0: one A for all n (scalar per group)
  int64_t bc_group = std::numeric_limits<int64_t>::max();  // channels sharing one B/C group
  int64_t bc_ld = 0;       // offset between consecutive B/C groups within a row
  int64_t dt_group = 1;    // channels sharing one delta and delta_bias
  int64_t d_group = 1;     // channels sharing one D

  // d_inner = nheads * headdim channels, ngroups B/C groups (nheads % ngroups == 0).
  static ScanLayout Mamba2(int64_t headdim, int64_t nheads, int64_t ngroups, int64_t d_state) {
    ScanLayout l;
    l.a_group = headdim;
    l.a_ld = 1;
    l.a_n_stride = 0;
    l.bc_group = headdim * (nheads / ngroups);
    l.bc_ld = d_state;
    l.dt_group = headdim;
    l.d_group = headdim;
    return l;
  }
  // A's row stride with the 0 default resolved.
  int64_t ALd(int64_t d_state) const { return a_ld != 0 ? a_ld : d_state; }
  // The addressing of the defaults (what the SIMD vector paths implement).
  bool IsMamba1(int64_t d_inner, int64_t d_state) const {
    return a_group == 1 && ALd(d_state) == d_state && a_n_stride == 1 && bc_group >= d_inner &&
           dt_group == 1 && d_group == 1;
  }
};

}  // namespace quamba::kernels
