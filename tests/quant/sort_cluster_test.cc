// Tests of Quamba2's sort-and-cluster of x (quant/sort_cluster.h, spec §2.3): the permutations and
// group sizes are well formed, the dim groups are the brute-force optimal segmentation, the head
// clusters match a naive Ward written here, planted profile shapes are recovered, and bad input is
// an error naming what was expected.
#include "quant/sort_cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace quamba {
namespace {

using Partition = std::vector<std::vector<int32_t>>;

// Random statistics, every value in (0, scale]: log-uniform with a per-head scale and shape
// exponent, so heads differ in both magnitude and profile shape.
std::vector<float> RandomStat(std::mt19937& rng, int64_t nheads, int64_t headdim) {
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<float> stat(nheads * headdim);
  for (int64_t h = 0; h < nheads; ++h) {
    const double scale = std::exp(4 * unif(rng) - 2), power = 0.5 + 3 * unif(rng);
    for (int64_t p = 0; p < headdim; ++p) {
      stat[h * headdim + p] = static_cast<float>(scale * (1e-3 + std::pow(unif(rng), power)));
    }
  }
  return stat;
}

// Steps 1-2 written independently: head h's statistics sorted ascending, divided by their L2 norm.
std::vector<double> UnitProfile(const std::vector<float>& stat, int64_t h, int64_t headdim) {
  std::vector<double> v(stat.begin() + h * headdim, stat.begin() + (h + 1) * headdim);
  std::sort(v.begin(), v.end());
  double norm2 = 0;
  for (double x : v) norm2 += x * x;
  if (norm2 > 0) {
    for (double& x : v) x /= std::sqrt(norm2);
  }
  return v;
}

// The clusters of SSD group g as sets of old heads local to the group, in the result's order.
Partition ClustersOf(const XClusters& xc, int64_t g) {
  const int64_t hg = xc.nheads / xc.ngroups;
  Partition out;
  int64_t j = g * hg;
  for (int64_t k = 0; k < xc.m; ++k) {
    out.emplace_back();
    for (int32_t i = 0; i < xc.head_groups[g * xc.m + k]; ++i) {
      out.back().push_back(static_cast<int32_t>(xc.head_index[j++] - g * hg));
    }
  }
  return out;
}

// Naive Ward: every step recomputes each pair's merge cost |A||B|/(|A|+|B|) ||mean_A - mean_B||^2
// from the member sets; ties to the smallest (min A, min B). Clusters ordered by smallest member.
Partition NaiveWard(const std::vector<std::vector<double>>& pts, int64_t m) {
  Partition cs;
  for (size_t i = 0; i < pts.size(); ++i) cs.push_back({static_cast<int32_t>(i)});
  auto mean = [&](const std::vector<int32_t>& c) {
    std::vector<double> mu(pts[0].size(), 0.0);
    for (int32_t i : c) {
      for (size_t t = 0; t < mu.size(); ++t) mu[t] += pts[i][t] / c.size();
    }
    return mu;
  };
  while (static_cast<int64_t>(cs.size()) > m) {
    double best = std::numeric_limits<double>::infinity();
    std::pair<int32_t, int32_t> key{0, 0};
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < cs.size(); ++i) {
      for (size_t j = 0; j < cs.size(); ++j) {
        if (i == j) continue;
        const std::vector<double> a = mean(cs[i]), b = mean(cs[j]);
        double d2 = 0;
        for (size_t t = 0; t < a.size(); ++t) d2 += (a[t] - b[t]) * (a[t] - b[t]);
        const double na = cs[i].size(), nb = cs[j].size(), cost = na * nb / (na + nb) * d2;
        const std::pair<int32_t, int32_t> k{cs[i][0], cs[j][0]};  // members kept sorted
        if (k.first < k.second && (cost < best || (cost == best && k < key))) {
          best = cost, key = k, bi = i, bj = j;
        }
      }
    }
    cs[bi].insert(cs[bi].end(), cs[bj].begin(), cs[bj].end());
    std::sort(cs[bi].begin(), cs[bi].end());
    cs.erase(cs.begin() + bj);
  }
  std::sort(cs.begin(), cs.end());
  return cs;
}

// Two-pass cost of splitting rows (P x s, row-major) into runs of `sizes`: sum of squared distances
// of each row to its run's mean.
double SegmentationCost(const std::vector<double>& t, int64_t s,
                        const std::vector<int64_t>& sizes) {
  double total = 0;
  int64_t r0 = 0;
  for (int64_t len : sizes) {
    for (int64_t j = 0; j < s; ++j) {
      double mu = 0;
      for (int64_t r = r0; r < r0 + len; ++r) mu += t[r * s + j];
      mu /= len;
      for (int64_t r = r0; r < r0 + len; ++r) total += (t[r * s + j] - mu) * (t[r * s + j] - mu);
    }
    r0 += len;
  }
  return total;
}

// Minimal cost over all segmentations of P rows into n non-empty runs, by enumeration.
double BruteForceCost(const std::vector<double>& t, int64_t P, int64_t s, int64_t n) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<int64_t> sizes;
  std::function<void(int64_t)> rec = [&](int64_t left) {
    const int64_t runs_left = n - static_cast<int64_t>(sizes.size());
    if (runs_left == 1) {
      sizes.push_back(left);
      best = std::min(best, SegmentationCost(t, s, sizes));
      sizes.pop_back();
      return;
    }
    for (int64_t len = 1; len <= left - (runs_left - 1); ++len) {
      sizes.push_back(len);
      rec(left - len);
      sizes.pop_back();
    }
  };
  rec(P);
  return best;
}

TEST(SortClusterTest, PermutationsAndGroupSizesAreValid) {
  struct Case {
    int64_t nheads, headdim, ngroups, m, n;
    bool ties;  // draw statistics from a few values (exercise the stable tie order) + a zero head
  };
  std::mt19937 rng(1234);
  for (const Case& cs :
       {Case{16, 32, 2, 4, 4, false}, Case{24, 16, 3, 3, 2, false}, Case{8, 64, 1, 4, 4, false},
        Case{12, 8, 2, 4, 4, true}, Case{6, 5, 1, 2, 5, true}}) {
    SCOPED_TRACE(testing::Message() << "nheads " << cs.nheads << " headdim " << cs.headdim
                                    << " ngroups " << cs.ngroups << " m " << cs.m << " n " << cs.n);
    const int64_t C = cs.nheads * cs.headdim, P = cs.headdim, hg = cs.nheads / cs.ngroups;
    std::vector<float> stat = RandomStat(rng, cs.nheads, P);
    if (cs.ties) {
      for (float& v : stat) v = static_cast<float>(std::floor(v * 3));
      std::fill(stat.begin(), stat.begin() + P, 0.0f);  // head 0: zero norm
      stat[P] = 1.0f;                                   // ... but not all zeros overall
    }
    StatusOr<XClusters> r = SortAndCluster(stat, cs.nheads, P, cs.ngroups, cs.m, cs.n);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const XClusters& xc = *r;
    ASSERT_EQ(xc.channel_index.size(), static_cast<size_t>(C));
    ASSERT_EQ(xc.head_index.size(), static_cast<size_t>(cs.nheads));
    ASSERT_EQ(xc.head_groups.size(), static_cast<size_t>(cs.ngroups * cs.m));
    ASSERT_EQ(xc.channel_groups.size(), static_cast<size_t>(cs.ngroups * cs.m * cs.n));

    std::vector<int32_t> sorted = xc.channel_index;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(sorted[c], c) << "channel_index not a permutation";
    sorted = xc.head_index;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t h = 0; h < cs.nheads; ++h) ASSERT_EQ(sorted[h], h) << "head_index not a perm.";
    for (int64_t h = 0; h < cs.nheads; ++h) {
      const int32_t old_h = xc.head_index[h];
      EXPECT_EQ(old_h / hg, h / hg) << "new head " << h << " left its SSD group";
      for (int64_t p = 0; p < P; ++p) {
        const int32_t old_c = xc.channel_index[h * P + p];
        EXPECT_EQ(old_c / P, old_h) << "new channel " << h * P + p << " left its head";
        if (p > 0) {  // ascending statistic, ties by old position
          const int32_t prev = xc.channel_index[h * P + p - 1];
          EXPECT_TRUE(stat[prev] < stat[old_c] || (stat[prev] == stat[old_c] && prev < old_c))
              << "new head " << h << " position " << p;
        }
      }
    }
    for (int64_t g = 0; g < cs.ngroups; ++g) {
      int64_t heads = 0;
      for (int64_t k = 0; k < cs.m; ++k) {
        EXPECT_GE(xc.head_groups[g * cs.m + k], 1);
        heads += xc.head_groups[g * cs.m + k];
        int64_t dims = 0;
        for (int64_t d = 0; d < cs.n; ++d) {
          EXPECT_GE(xc.channel_groups[(g * cs.m + k) * cs.n + d], 1);
          dims += xc.channel_groups[(g * cs.m + k) * cs.n + d];
        }
        EXPECT_EQ(dims, P);
      }
      EXPECT_EQ(heads, hg);
      // Clusters are numbered by their smallest old head, and each lists its heads ascending.
      const Partition clusters = ClustersOf(xc, g);
      for (int64_t k = 0; k < cs.m; ++k) {
        EXPECT_TRUE(std::is_sorted(clusters[k].begin(), clusters[k].end()));
        if (k > 0) {
          EXPECT_LT(clusters[k - 1][0], clusters[k][0]);
        }
      }
    }
    // Rows() == Row(), and Row() matches a walk over the runs of head and channel groups.
    const std::vector<int32_t> rows = xc.Rows();
    ASSERT_EQ(rows.size(), static_cast<size_t>(C));
    for (int64_t g = 0, h = 0; g < cs.ngroups; ++g) {
      for (int64_t k = 0; k < cs.m; ++k) {
        for (int32_t i = 0; i < xc.head_groups[g * cs.m + k]; ++i, ++h) {
          for (int64_t d = 0, p = 0; d < cs.n; ++d) {
            for (int32_t q = 0; q < xc.channel_groups[(g * cs.m + k) * cs.n + d]; ++q, ++p) {
              const int64_t c = h * P + p;
              EXPECT_EQ(xc.Row(c), (g * cs.m + k) * cs.n + d) << "channel " << c;
              EXPECT_EQ(rows[c], xc.Row(c)) << "channel " << c;
            }
          }
        }
      }
    }
  }
}

// The dim groups of each head cluster reach the brute-force minimal within-group sum of squares.
TEST(SortClusterTest, DimGroupsAreOptimalSegmentations) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t P = 8 + trial % 5, n = 3 + trial % 2, m = 1 + trial % 3, nheads = 5;
    SCOPED_TRACE(testing::Message() << "trial " << trial << " P " << P << " n " << n << " m " << m);
    const std::vector<float> stat = RandomStat(rng, nheads, P);
    StatusOr<XClusters> r = SortAndCluster(stat, nheads, P, 1, m, n);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const Partition clusters = ClustersOf(*r, 0);
    for (int64_t k = 0; k < m; ++k) {
      const int64_t s = static_cast<int64_t>(clusters[k].size());
      std::vector<double> t(P * s);  // rows: sorted positions; columns: the cluster's heads
      for (int64_t i = 0; i < s; ++i) {
        const std::vector<double> u = UnitProfile(stat, clusters[k][i], P);
        for (int64_t p = 0; p < P; ++p) t[p * s + i] = u[p];
      }
      const std::vector<int64_t> sizes(r->channel_groups.begin() + k * n,
                                       r->channel_groups.begin() + (k + 1) * n);
      const double got = SegmentationCost(t, s, sizes), want = BruteForceCost(t, P, s, n);
      EXPECT_NEAR(got, want, 1e-12 * want) << "cluster " << k;
    }
  }
}

// Ties go to the earliest split points: identical rows (all costs 0) give runs 1, 1, ..., P-n+1.
TEST(SortClusterTest, SegmentationTiesTakeEarliestSplits) {
  // headdim 16: u_h = 1/4 exactly, so every cost is exactly 0.
  const std::vector<float> stat(4 * 16, 2.5f);
  StatusOr<XClusters> r = SortAndCluster(stat, 4, 16, 1, 2, 4);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->channel_groups, (std::vector<int32_t>{1, 1, 1, 13, 1, 1, 1, 13}));
  EXPECT_EQ(r->head_groups, (std::vector<int32_t>{3, 1}));  // ties merge (0,1), then (0,2)
}

TEST(SortClusterTest, HeadClustersMatchNaiveWard) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t hg = 8 + trial % 5, ngroups = 1 + trial % 2, m = 2 + trial % 3, P = 16;
    SCOPED_TRACE(testing::Message() << "trial " << trial << " H/G " << hg << " m " << m);
    const std::vector<float> stat = RandomStat(rng, hg * ngroups, P);
    StatusOr<XClusters> r = SortAndCluster(stat, hg * ngroups, P, ngroups, m, 1);
    ASSERT_TRUE(r.ok()) << r.status().message();
    for (int64_t g = 0; g < ngroups; ++g) {
      std::vector<std::vector<double>> pts;
      for (int64_t h = 0; h < hg; ++h) pts.push_back(UnitProfile(stat, g * hg + h, P));
      EXPECT_EQ(ClustersOf(*r, g), NaiveWard(pts, m)) << "group " << g;
    }
  }
}

// Heads drawn from 4 distinct profile shapes (random magnitude, shuffled channels, 1% noise) are
// clustered by shape.
TEST(SortClusterTest, RecoversPlantedShapes) {
  std::mt19937 rng(2024);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  const std::vector<std::function<double(double)>> shapes = {
      [](double) { return 1.0; },                    // flat
      [](double x) { return 0.1 + x; },              // linear
      [](double x) { return x < 0.9 ? 0.2 : 5.0; },  // a few outlier channels
      [](double x) { return std::exp(6 * x); }};     // exponential
  const int64_t ngroups = 2, hg = 12, P = 32;
  std::vector<float> stat(ngroups * hg * P);
  std::vector<int> shape_of(ngroups * hg);
  for (int64_t g = 0; g < ngroups; ++g) {
    std::vector<int> labels(hg);
    for (int64_t h = 0; h < hg; ++h) labels[h] = h % 4;
    std::shuffle(labels.begin(), labels.end(), rng);
    for (int64_t h = 0; h < hg; ++h) {
      const int64_t head = g * hg + h;
      shape_of[head] = labels[h];
      std::vector<int> perm(P);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      const double scale = std::exp(4 * unif(rng) - 2);
      for (int64_t p = 0; p < P; ++p) {
        const double v = shapes[labels[h]](perm[p] / (P - 1.0)) * (1 + 0.01 * (2 * unif(rng) - 1));
        stat[head * P + p] = static_cast<float>(scale * v);
      }
    }
  }
  StatusOr<XClusters> r = SortAndCluster(stat, ngroups * hg, P, ngroups);
  ASSERT_TRUE(r.ok()) << r.status().message();
  for (int64_t g = 0; g < ngroups; ++g) {
    for (const std::vector<int32_t>& cluster : ClustersOf(*r, g)) {
      ASSERT_EQ(cluster.size(), 3u) << "group " << g;
      for (int32_t h : cluster) EXPECT_EQ(shape_of[g * hg + h], shape_of[g * hg + cluster[0]]);
    }
  }
}

TEST(SortClusterTest, SingleClusterAndSingleDimGroup) {
  std::mt19937 rng(5);
  const int64_t nheads = 6, P = 8, ngroups = 3;
  StatusOr<XClusters> r = SortAndCluster(RandomStat(rng, nheads, P), nheads, P, ngroups, 1, 1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->head_groups, (std::vector<int32_t>{2, 2, 2}));
  EXPECT_EQ(r->channel_groups, (std::vector<int32_t>{8, 8, 8}));
  EXPECT_EQ(r->head_index, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  const std::vector<int32_t> rows = r->Rows();
  for (int64_t c = 0; c < nheads * P; ++c) EXPECT_EQ(rows[c], c / (2 * P)) << "channel " << c;
}

TEST(SortClusterTest, BadInputIsAnError) {
  std::mt19937 rng(11);
  const std::vector<float> stat = RandomStat(rng, 8, 8);
  auto expect_error = [](const StatusOr<XClusters>& r, const char* needle) {
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  expect_error(SortAndCluster(stat, 8, 8, 3), "nheads: expected a multiple of ngroups = 3");
  expect_error(SortAndCluster(stat, 8, 8, 4), "expected at least m = 4, found 2");
  expect_error(SortAndCluster(stat, 8, 8, 1, 4, 9), "headdim: expected at least n = 9, found 8");
  expect_error(SortAndCluster(stat, 8, 4, 1),
               "stat: expected nheads*headdim = 32 values, found 64");
  expect_error(SortAndCluster(stat, 8, 8, 1, 0, 4), "expected nheads, headdim, ngroups, m, n >= 1");
  std::vector<float> bad = stat;
  bad[13] = -0.5f;
  expect_error(SortAndCluster(bad, 8, 8, 1), "stat[13]: expected a finite value >= 0, found -0.5");
  bad[13] = std::numeric_limits<float>::quiet_NaN();
  expect_error(SortAndCluster(bad, 8, 8, 1), "stat[13]: expected a finite value >= 0, found nan");
  bad[13] = std::numeric_limits<float>::infinity();
  expect_error(SortAndCluster(bad, 8, 8, 1), "stat[13]: expected a finite value >= 0");
}

TEST(SortClusterTest, Deterministic) {
  std::mt19937 rng(99);
  const std::vector<float> stat = RandomStat(rng, 32, 24);
  StatusOr<XClusters> a = SortAndCluster(stat, 32, 24, 2), b = SortAndCluster(stat, 32, 24, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->channel_index, b->channel_index);
  EXPECT_EQ(a->head_index, b->head_index);
  EXPECT_EQ(a->head_groups, b->head_groups);
  EXPECT_EQ(a->channel_groups, b->channel_groups);
  EXPECT_EQ(a->Rows(), b->Rows());
}

}  // namespace
}  // namespace quamba
