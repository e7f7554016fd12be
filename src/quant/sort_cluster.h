// Sort-and-cluster of the Mamba-2 SSM input x (Quamba2, spec §2.3). Per SSD group: the channels of
// each head are sorted by their calibration statistic, heads are clustered by the shape of their
// L2-normalised sorted profile (Ward), and each head cluster's sorted positions are cut into
// contiguous dim groups. Each (SSD group, head cluster, dim group) gets one x scale: G*m*n rows.
// Permutations never leave an SSD group, so the grouped norm and the B/C sharing are unchanged.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace quamba {

struct XClusters {
  int64_t ngroups = 0, m = 0, n = 0;  // SSD groups, head clusters per group, dim groups per cluster
  int64_t nheads = 0, headdim = 0;
  std::vector<int32_t> channel_index;  // (nheads*headdim): new channel j <- old channel_index[j]
  std::vector<int32_t> head_index;     // (nheads): new head j <- old head head_index[j]
  // (ngroups, m): heads in each cluster; in the new order a cluster is a run of consecutive heads.
  std::vector<int32_t> head_groups;
  // (ngroups, m, n): positions p (within a head) in each dim group; a group is a run of p.
  std::vector<int32_t> channel_groups;

  // Scale row of NEW channel c = h*headdim + p: (g*m + k)*n + d, with g = h / (nheads/ngroups), k
  // the cluster holding head h, d the dim group holding position p within cluster k.
  int64_t Row(int64_t c) const;
  // Row(c) for every channel, (nheads*headdim).
  std::vector<int32_t> Rows() const;
};

// stat: (nheads*headdim) per old channel, non-negative (max over calibration samples of the mean
// |x_c| over tokens). Ward linkage on the profiles is exact (float64, ties to the pair of smallest
// member heads); dim groups are the exact optimal contiguous segmentation (dynamic programming,
// ties to the earliest split points) in place of the official KMeans, as the spec allows. Clusters
// are numbered by their smallest old head. Errors when nheads % ngroups != 0, nheads/ngroups < m,
// headdim < n, the stat size is wrong, or a stat is negative or non-finite.
StatusOr<XClusters> SortAndCluster(const std::vector<float>& stat, int64_t nheads, int64_t headdim,
                                   int64_t ngroups, int64_t m = 4, int64_t n = 4);

}  // namespace quamba
