#include "quant/sort_cluster.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace quamba {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Ward agglomerative clustering of `points` into m clusters. Each step merges the pair (A, B)
// with the smallest increase of the within-cluster sum of squares,
// |A||B|/(|A|+|B|) ||mean_A - mean_B||^2, recomputed from the clusters' sums (at most H/G points,
// so O(c^3 P) is nothing).
// Returns each cluster's members (ascending), clusters ordered by smallest member.
std::vector<std::vector<int32_t>> WardClusters(const std::vector<std::vector<double>>& points,
                                               int64_t m) {
  struct Cluster {
    std::vector<int32_t> members;
    std::vector<double> sum;
  };
  std::vector<Cluster> cs;
  for (size_t i = 0; i < points.size(); ++i) cs.push_back({{static_cast<int32_t>(i)}, points[i]});
  // cs stays ordered by smallest member (merging j > i into i keeps i's), so scanning pairs i < j
  // with a strict `<` breaks cost ties by (smallest member of A, smallest member of B).
  while (static_cast<int64_t>(cs.size()) > m) {
    double best = kInf;
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < cs.size(); ++i) {
      for (size_t j = i + 1; j < cs.size(); ++j) {
        const double na = cs[i].members.size(), nb = cs[j].members.size();
        double d2 = 0;
        for (size_t t = 0; t < cs[i].sum.size(); ++t) {
          const double diff = cs[i].sum[t] / na - cs[j].sum[t] / nb;
          d2 += diff * diff;
        }
        const double cost = na * nb / (na + nb) * d2;
        if (cost < best) {
          best = cost;
          bi = i;
          bj = j;
        }
      }
    }
    QM_CHECK(bj > bi, "no Ward merge found among %zu clusters", cs.size());
    Cluster& a = cs[bi];
    const Cluster& b = cs[bj];
    a.members.insert(a.members.end(), b.members.begin(), b.members.end());
    std::sort(a.members.begin(), a.members.end());
    for (size_t t = 0; t < a.sum.size(); ++t) a.sum[t] += b.sum[t];
    cs.erase(cs.begin() + bj);
  }
  std::vector<std::vector<int32_t>> out;
  for (Cluster& c : cs) out.push_back(std::move(c.members));
  return out;
}

// Sizes of the optimal split of rows 0..P-1 of t (P x s, row-major) into n contiguous non-empty
// segments, minimising sum over segments of sum_r ||t_r - mean||^2, with ties to the
// lexicographically earliest split points.
std::vector<int32_t> OptimalSegments(std::vector<double> t, int64_t P, int64_t s, int64_t n) {
  // The cost is shift-invariant: centring the columns first shrinks the cancellation in the
  // prefix-sum form cost(a, b) = sum_{a<=r<b} ||t_r||^2 - ||sum_{a<=r<b} t_r||^2 / (b - a).
  for (int64_t j = 0; j < s; ++j) {
    double mean = 0;
    for (int64_t r = 0; r < P; ++r) mean += t[r * s + j];
    mean /= P;
    for (int64_t r = 0; r < P; ++r) t[r * s + j] -= mean;
  }
  std::vector<double> sq(P + 1, 0.0), sum((P + 1) * s, 0.0);  // prefix sums over rows
  for (int64_t r = 0; r < P; ++r) {
    sq[r + 1] = sq[r];
    for (int64_t j = 0; j < s; ++j) {
      sq[r + 1] += t[r * s + j] * t[r * s + j];
      sum[(r + 1) * s + j] = sum[r * s + j] + t[r * s + j];
    }
  }
  auto cost = [&](int64_t a, int64_t b) {
    double c = sq[b] - sq[a];
    for (int64_t j = 0; j < s; ++j) {
      const double d = sum[b * s + j] - sum[a * s + j];
      c -= d * d / static_cast<double>(b - a);
    }
    return c;
  };
  // best[d][a]: minimal cost of rows [a, P) in d segments; next[d][a]: the smallest end b of the
  // first segment attaining it. Suffix form, so walking forward from a = 0 takes the earliest
  // optimal split at every step.
  std::vector<double> best((n + 1) * (P + 1), kInf);
  std::vector<int64_t> next((n + 1) * (P + 1), -1);
  best[P] = 0;  // d = 0, a = P
  for (int64_t d = 1; d <= n; ++d) {
    for (int64_t a = 0; a + d <= P; ++a) {
      for (int64_t b = a + 1; b + (d - 1) <= P; ++b) {
        const double c = cost(a, b) + best[(d - 1) * (P + 1) + b];
        if (c < best[d * (P + 1) + a]) {
          best[d * (P + 1) + a] = c;
          next[d * (P + 1) + a] = b;
        }
      }
    }
  }
  std::vector<int32_t> sizes;
  for (int64_t d = n, a = 0; d >= 1; --d) {
    const int64_t b = next[d * (P + 1) + a];
    QM_CHECK(b > a, "no segmentation of rows [%lld, %lld) into %lld", (long long)a, (long long)P,
             (long long)d);
    sizes.push_back(static_cast<int32_t>(b - a));
    a = b;
  }
  return sizes;
}

}  // namespace

StatusOr<XClusters> SortAndCluster(const std::vector<float>& stat, int64_t nheads, int64_t headdim,
                                   int64_t ngroups, int64_t m, int64_t n) {
  using ll = long long;
  if (nheads < 1 || headdim < 1 || ngroups < 1 || m < 1 || n < 1) {
    return Status::Error(StrFormat(
        "sort-and-cluster: expected nheads, headdim, ngroups, m, n >= 1, found %lld, %lld, %lld, "
        "%lld, %lld",
        ll(nheads), ll(headdim), ll(ngroups), ll(m), ll(n)));
  }
  if (headdim > std::numeric_limits<int32_t>::max() / nheads) {  // int32 channel indices
    return Status::Error(
        StrFormat("sort-and-cluster: nheads*headdim: expected < 2^31, found %lld*%lld", ll(nheads),
                  ll(headdim)));
  }
  if (nheads % ngroups != 0) {
    return Status::Error(
        StrFormat("sort-and-cluster: nheads: expected a multiple of ngroups = %lld, found %lld",
                  ll(ngroups), ll(nheads)));
  }
  const int64_t hg = nheads / ngroups, P = headdim;
  if (hg < m) {
    return Status::Error(StrFormat(
        "sort-and-cluster: heads per SSD group (nheads/ngroups): expected at least m = %lld, "
        "found %lld",
        ll(m), ll(hg)));
  }
  if (P < n) {
    return Status::Error(StrFormat(
        "sort-and-cluster: headdim: expected at least n = %lld, found %lld", ll(n), ll(P)));
  }
  if (static_cast<int64_t>(stat.size()) != nheads * P) {
    return Status::Error(
        StrFormat("sort-and-cluster: stat: expected nheads*headdim = %lld values, found %zu",
                  ll(nheads * P), stat.size()));
  }
  for (size_t c = 0; c < stat.size(); ++c) {
    if (!std::isfinite(stat[c]) || stat[c] < 0) {
      return Status::Error(
          StrFormat("sort-and-cluster: stat[%zu]: expected a finite value >= 0, found %g", c,
                    static_cast<double>(stat[c])));
    }
  }

  // Steps 1-2: per head, ascending order pi_h (stable: ties by old position) and the unit profile
  // u_h = v_h / ||v_h||_2 (zeros when v_h = 0), so clustering compares shapes, not magnitudes.
  std::vector<std::vector<int32_t>> order(nheads, std::vector<int32_t>(P));
  std::vector<std::vector<double>> u(nheads, std::vector<double>(P));
  for (int64_t h = 0; h < nheads; ++h) {
    const float* v = stat.data() + h * P;
    std::iota(order[h].begin(), order[h].end(), 0);
    std::stable_sort(order[h].begin(), order[h].end(),
                     [v](int32_t a, int32_t b) { return v[a] < v[b]; });
    double norm2 = 0;
    for (int64_t p = 0; p < P; ++p) {
      u[h][p] = v[order[h][p]];
      norm2 += u[h][p] * u[h][p];
    }
    if (norm2 > 0) {
      for (double& x : u[h]) x /= std::sqrt(norm2);
    }
  }

  XClusters xc;
  xc.ngroups = ngroups;
  xc.m = m;
  xc.n = n;
  xc.nheads = nheads;
  xc.headdim = P;
  for (int64_t g = 0; g < ngroups; ++g) {
    // Step 3: Ward on the group's profiles. Steps 4-5: per cluster, new heads and channels in
    // order, and the dim groups of the rows T_r = (u_h[r] for h in the cluster).
    const std::vector<std::vector<double>> ug(u.begin() + g * hg, u.begin() + (g + 1) * hg);
    for (const std::vector<int32_t>& members : WardClusters(ug, m)) {
      const int64_t s = static_cast<int64_t>(members.size());
      xc.head_groups.push_back(static_cast<int32_t>(s));
      std::vector<double> t(P * s);
      for (int64_t i = 0; i < s; ++i) {
        const int64_t h = g * hg + members[i];
        xc.head_index.push_back(static_cast<int32_t>(h));
        for (int64_t p = 0; p < P; ++p) {
          xc.channel_index.push_back(static_cast<int32_t>(h * P + order[h][p]));
          t[p * s + i] = u[h][p];
        }
      }
      const std::vector<int32_t> sizes = OptimalSegments(std::move(t), P, s, n);
      xc.channel_groups.insert(xc.channel_groups.end(), sizes.begin(), sizes.end());
    }
  }
  return xc;
}

int64_t XClusters::Row(int64_t c) const {
  QM_CHECK(c >= 0 && c < nheads * headdim, "channel %lld outside [0, %lld)", (long long)c,
           (long long)(nheads * headdim));
  QM_CHECK((int64_t)head_groups.size() == ngroups * m &&
               (int64_t)channel_groups.size() == ngroups * m * n,
           "group sizes: %zu and %zu entries for %lld groups, m = %lld, n = %lld",
           head_groups.size(), channel_groups.size(), (long long)ngroups, (long long)m,
           (long long)n);
  const int64_t h = c / headdim, p = c % headdim, hg = nheads / ngroups, g = h / hg;
  // Walk the runs: cluster k holds new heads [first, first + head_groups[g][k]) of group g.
  int64_t k = 0, first = g * hg;
  while (k < m && h >= first + head_groups[g * m + k]) first += head_groups[g * m + k++];
  QM_CHECK(k < m, "head %lld beyond the clusters of group %lld", (long long)h, (long long)g);
  const int32_t* sizes = &channel_groups[(g * m + k) * n];
  int64_t d = 0;
  for (first = 0; d < n && p >= first + sizes[d]; ++d) first += sizes[d];
  QM_CHECK(d < n, "position %lld beyond the dim groups of cluster %lld", (long long)p,
           (long long)k);
  return (g * m + k) * n + d;
}

std::vector<int32_t> XClusters::Rows() const {
  std::vector<int32_t> rows(nheads * headdim);
  for (int64_t c = 0; c < nheads * headdim; ++c) rows[c] = static_cast<int32_t>(Row(c));
  return rows;
}

}  // namespace quamba
