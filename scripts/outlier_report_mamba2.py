#!/usr/bin/python3
"""Mamba-2 part of scripts/outlier_report.py (called by it when config.json has model_type
"mamba2"; can also be run directly with the same arguments).

Data: the calibration text (/work/shared/data/calibration, two public-domain novels), each book
tokenized as one stream with the model's tokenizer. Half A = --calib-windows consecutive
256-token windows of pg1342-0.txt, half B = as many windows of pg1661-0.txt, both starting at
10 % of the book's tokens (past the front matter); every window starts from a zero state.
Statistics are taken on half A; "persistence" compares half A with half B; int8 errors use
scales calibrated on half A and are measured on half B (held out).

Per layer (quamba2-spec.md section 7 and 2.3/2.4):
  * x after conv+SiLU: per-channel absmax, Spearman rank correlation of the per-channel maxima
    of half A vs half B (channel persistence); int8 MSE with one per-tensor absmax scale, with a
    per-tensor percentile scale (p99.95 of |x|, Quamba's 0.9995), and with the Quamba2 4x4
    sort-and-cluster scales [G,4,4] (statistic: per-window mean |x_c|, max over windows;
    channels sorted within each head, heads clustered (Ward, on L2-normalised sorted profiles)
    into 4 clusters per SSD group, then 4 contiguous channel groups per head cluster by an
    exact 1-D dynamic programme, the engine version of spec 2.3);
  * B and C after conv+SiLU: absmax per SSD group and per (group, state), the largest state's
    absmax over the median state's, persistence of the per-(group, state) maxima, int8 MSE per
    group vs per tensor;
  * dt_raw (in_proj dt slice, before bias/softplus), dt after softplus, z: max, p99.9, kurtosis;
  * SSD output y (before the gated norm): max, p99.9, kurtosis;
  * out_proj input (gated-norm output) before and after an orthonormal Hadamard of size d_inner:
    max, p99.9, max/p99.9, kurtosis, per-tensor int8 MSE relative to the mean square;
  * final SSM state of each window [H,P,N]: absmax, median over (h,p,n) of the per-element
    absmax, per-group absmax; int8 MSE with scales [G,4,4,N] (head clusters and channel groups
    of x, per state n) vs one per-tensor scale (on half B, and in sample on half A).
outliers.json also keeps, per layer, the per-channel x maxima and the clustering statistic
[d_inner], the head clusters and channel groups found (x_head_clusters: per (group, cluster) the
heads; x_dim_group [H][P]: channel group of each original channel), the 4x4 scales x 127
(x_scales_4x4, index g*16 + cluster*4 + dim group) and the final-state absmax per (head, state)
[H][N], so the C++ sort-and-cluster can be compared with this one.
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import math
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_hf import model_from_dir  # noqa: E402
from train_bpe import Tokenizer  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BOOKS = ("pg1342-0.txt", "pg1661-0.txt")


def quantile_abs(x, q):
    a = x.abs().flatten()
    k = max(1, min(a.numel(), int(math.ceil(q * a.numel()))))
    return a.kthvalue(k).values.item()


def kurtosis(x):
    x = x.double().flatten()
    d = x - x.mean()
    v = (d * d).mean()
    return ((d ** 4).mean() / (v * v)).item()


def fwht(x):
    """Orthonormal Walsh-Hadamard transform along the last dim (power of two)."""
    n = x.shape[-1]
    y = x.reshape(-1, n).clone()
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        y = torch.stack((y[:, :, 0, :] + y[:, :, 1, :], y[:, :, 0, :] - y[:, :, 1, :]), dim=2)
        h *= 2
    return y.reshape(x.shape) / math.sqrt(n)


def spearman(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    ra = torch.empty_like(a)
    ra[a.argsort()] = torch.arange(a.numel(), dtype=torch.float64)
    rb = torch.empty_like(b)
    rb[b.argsort()] = torch.arange(b.numel(), dtype=torch.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    return (ra @ rb / (ra.norm() * rb.norm())).item()


def q8_mse(x, scale):
    """Symmetric int8 (RoundS8) fake quantisation error; scale broadcasts against x."""
    q = torch.clamp(torch.round(x / scale), -128, 127)
    return ((q * scale - x) ** 2).mean().item()


def ward_clusters(U, k):
    """Agglomerative Ward clustering of the rows of U into k clusters; labels numbered by each
    cluster's smallest row index (deterministic)."""
    clusters = [[i] for i in range(U.shape[0])]
    while len(clusters) > k:
        best = None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                a, b = clusters[i], clusters[j]
                d = U[a].mean(0) - U[b].mean(0)
                cost = len(a) * len(b) / (len(a) + len(b)) * float(d @ d)
                if best is None or cost < best[0]:
                    best = (cost, i, j)
        _, i, j = best
        clusters[i] = clusters[i] + clusters[j]
        del clusters[j]
    clusters.sort(key=min)
    labels = [0] * U.shape[0]
    for c, members in enumerate(clusters):
        for m in members:
            labels[m] = c
    return labels


def contiguous_segments(T, k):
    """Optimal split of the rows of T (in order) into k contiguous non-empty segments minimising
    the total within-segment sum of squared distances to the segment mean. Returns segment id per row."""
    n = T.shape[0]
    T = T.double()
    cs = torch.cat([torch.zeros(1, T.shape[1], dtype=torch.float64), T.cumsum(0)])
    cs2 = torch.cat([torch.zeros(1, dtype=torch.float64), (T * T).sum(1).cumsum(0)])

    def sse(i, j):  # rows i..j-1
        s = cs[j] - cs[i]
        return float(cs2[j] - cs2[i] - (s @ s) / (j - i))
    INF = float("inf")
    best = [[INF] * (n + 1) for _ in range(k + 1)]
    arg = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for s in range(1, k + 1):
        for j in range(s, n + 1):
            for i in range(s - 1, j):
                v = best[s - 1][i] + sse(i, j)
                if v < best[s][j]:
                    best[s][j], arg[s][j] = v, i
    seg = [0] * n
    j = n
    for s in range(k, 0, -1):
        i = arg[s][j]
        for r in range(i, j):
            seg[r] = s - 1
        j = i
    return seg


def sort_and_cluster(stat, H, P, G, m=4, n=4):
    """Quamba2 sort-and-cluster (spec 2.3, engine version). stat [H*P]. Returns
    head_cluster [H] (0..m-1 within its SSD group) and dim_group [H, P] (0..n-1, per original channel)."""
    K = H // G
    head_cluster = [0] * H
    dim_group = torch.zeros(H, P, dtype=torch.long)
    st = stat.view(H, P).double()
    for g in range(G):
        heads = list(range(g * K, (g + 1) * K))
        orders = [st[h].argsort() for h in heads]
        U = torch.stack([st[h][o] for h, o in zip(heads, orders)])
        U = U / U.norm(dim=1, keepdim=True).clamp_min(1e-30)
        labels = ward_clusters(U, min(m, K))
        for c in range(min(m, K)):
            members = [i for i in range(K) if labels[i] == c]
            seg = contiguous_segments(U[members].t(), n)           # rows = sorted positions
            for i in members:
                head_cluster[heads[i]] = c
                for pos in range(P):
                    dim_group[heads[i], orders[i][pos]] = seg[pos]
    return head_cluster, dim_group


def calib_windows(tok, calib_dir, nwin, L):
    out = []
    for b in BOOKS:
        ids = tok.encode(open(os.path.join(calib_dir, b), encoding="utf-8").read())
        s0 = len(ids) // 10
        assert s0 + nwin * L <= len(ids), "calibration text too short"
        out.append(torch.tensor(ids[s0:s0 + nwin * L]).view(nwin, L))
    return out


KEEP = ("x_conv", "B", "C", "dt_raw", "dt", "z", "ssd_y", "out_proj_in", "final_state")


@torch.no_grad()
def collect(model, data, batch):
    nl = model.args.n_layer
    caps = [dict() for _ in range(nl)]
    for i, blk in enumerate(model.backbone.layers):
        blk.mixer.capture = caps[i]
    acc = [{k: [] for k in KEEP} for _ in range(nl)]
    for b0 in range(0, data.shape[0], batch):
        model(data[b0:b0 + batch])
        for i in range(nl):
            for k in KEEP:
                acc[i][k].append(caps[i][k].clone())
    for blk in model.backbone.layers:
        blk.mixer.capture = None
    return [{k: torch.cat(v) for k, v in a.items()} for a in acc]   # batch dim first


def layer_stats(a, A, B):
    """A, B: collected tensors of half A and half B for one layer."""
    H, P, N, G = a.nheads, a.headdim, a.d_state, a.ngroups
    di = a.d_inner
    r = {}
    # ---- x after conv
    xa, xb = A["x_conv"], B["x_conv"]                      # [w, L, di]
    cha, chb = xa.abs().amax((0, 1)), xb.abs().amax((0, 1))
    r["x_max"] = cha.max().item()
    r["x_p9999"] = quantile_abs(xa, 0.9999)
    r["x_top_channel"] = int(cha.argmax())
    r["x_chan_max_over_median"] = (cha.max() / cha.median()).item()
    r["x_persistence"] = spearman(cha, chb)
    stat = xa.abs().mean(1).amax(0)                        # per-window mean |x|, max over windows
    hc, dg = sort_and_cluster(stat, H, P, G)
    gidx = torch.arange(H) // (H // G)
    lab = (gidx * 16 + torch.tensor(hc) * 4).view(H, 1) + dg  # [H,P] label in 0..16G-1
    lab = lab.flatten()
    s44 = torch.zeros(16 * G)
    s44.scatter_reduce_(0, lab, cha, reduce="amax", include_self=True)
    s44 = (s44 / 127).clamp_min(1e-8)
    s_t = cha.max() / 127
    s_pct = quantile_abs(xa, 0.9995) / 127
    m44 = q8_mse(xb, s44[lab])
    mt = q8_mse(xb, s_t)
    mp = q8_mse(xb, s_pct)
    r.update(x_mse_per_tensor=mt, x_mse_percentile=mp, x_mse_4x4=m44,
             x_mse_4x4_over_per_tensor=m44 / mt, x_mse_4x4_over_percentile=m44 / mp,
             x_head_clusters=[[h for h in range(g * (H // G), (g + 1) * (H // G)) if hc[h] == c]
                              for g in range(G) for c in range(4)],
             x_scales_4x4=[float("%.4g" % (v * 127)) for v in s44.tolist()],
             x_dim_group=dg.tolist(),
             x_channel_absmax=[float("%.4g" % v) for v in cha.tolist()],
             x_cluster_stat=[float("%.4g" % v) for v in stat.tolist()])
    # ---- B and C
    for nm in ("B", "C"):
        va, vb = A[nm], B[nm]                              # [w, L, G, N]
        sa, sb = va.abs().amax((0, 1)), vb.abs().amax((0, 1))   # [G, N]
        r[nm + "_group_absmax"] = sa.amax(1).tolist()
        r[nm + "_state_max_over_median"] = (sa.max() / sa.median()).item()
        top = int(sa.argmax())
        r[nm + "_top_state"] = [top // N, top % N]
        r[nm + "_persistence"] = spearman(sa, sb)
        r[nm + "_mse_per_group_over_per_tensor"] = q8_mse(vb, (sa.amax(1) / 127).view(G, 1)) / q8_mse(vb, sa.max() / 127)
    # ---- dt_raw, dt, z, y
    for nm, key in (("dt_raw", "dt_raw"), ("z", "z"), ("y", "ssd_y")):
        v = A[key]
        r[nm + "_max"] = v.abs().max().item()
        r[nm + "_p999"] = quantile_abs(v, 0.999)
        r[nm + "_kurtosis"] = kurtosis(v)
    r["dt_min"], r["dt_max"] = A["dt"].min().item(), A["dt"].max().item()
    # ---- out_proj input before / after Hadamard
    o = A["out_proj_in"].reshape(-1, di)
    ho = fwht(o)
    for pre, v in (("out_in", o), ("had_out_in", ho)):
        r[pre + "_max"] = v.abs().max().item()
        r[pre + "_p999"] = quantile_abs(v, 0.999)
        r[pre + "_ratio"] = r[pre + "_max"] / r[pre + "_p999"]
        r[pre + "_kurtosis"] = kurtosis(v)
    r["out_in_top_channel"] = int(o.abs().amax(0).argmax())
    ob = B["out_proj_in"].reshape(-1, di)
    r["out_in_rel_mse"] = q8_mse(ob, o.abs().max() / 127) / (ob * ob).mean().item()
    r["had_out_in_rel_mse"] = q8_mse(fwht(ob), ho.abs().max() / 127) / (ob * ob).mean().item()
    # ---- final SSM state [w, H, P, N]
    Sa, Sb = A["final_state"], B["final_state"]
    ea = Sa.abs().amax(0)                                  # [H,P,N]
    r["state_max"] = ea.max().item()
    r["state_median_elem_absmax"] = ea.median().item()
    r["state_max_over_median"] = r["state_max"] / r["state_median_elem_absmax"]
    r["state_group_absmax"] = ea.view(G, -1).amax(1).tolist()
    r["state_head_n_absmax"] = [[float("%.4g" % v) for v in row] for row in ea.amax(1).tolist()]   # [H, N]
    lab_hp = lab.view(H, P)                                 # [H,P] -> (g, cluster, dim group)
    sS = torch.zeros(16 * G, N)
    sS.scatter_reduce_(0, lab_hp.flatten().view(-1, 1).expand(-1, N), ea.reshape(H * P, N), reduce="amax",
                       include_self=True)
    sS = (sS / 127).clamp_min(1e-8)
    ms = q8_mse(Sb, sS[lab_hp])                             # [H,P,N] scales
    mt = q8_mse(Sb, ea.max() / 127)
    r["state_mse_g44n_over_per_tensor"] = ms / mt
    # the same scales on the data they were taken from (no clipping): resolution gain alone
    r["state_mse_g44n_over_per_tensor_in_sample"] = q8_mse(Sa, sS[lab_hp]) / q8_mse(Sa, ea.max() / 127)
    r["state_clipped_fraction_half_b"] = (Sb.abs() > sS[lab_hp] * 127 * (1 + 1e-6)).double().mean().item()
    return r


def run(args, svg_plot):
    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    model = model_from_dir(args.model).eval()
    a = model.args
    tok = Tokenizer(os.path.join(args.model, "tokenizer.json"))
    L = args.seq_len
    da, db = calib_windows(tok, args.calib, args.calib_windows, L)
    A = collect(model, da, args.batch)
    B = collect(model, db, args.batch)
    rows = []
    for i in range(a.n_layer):
        r = {"layer": i}
        r.update(layer_stats(a, A[i], B[i]))
        rows.append(r)
        print("layer %d done" % i, flush=True)
    ntok = args.calib_windows * L
    relm = os.path.relpath(os.path.abspath(args.model), ROOT)
    f3 = lambda v: "%.3g" % v  # noqa: E731
    md = ["Activation statistics of the float32 model at Quamba2's quantization points "
          "(`scripts/outlier_report.py --model %s --calib-windows %d`). Half A: %d tokens of %s, half B: %d tokens "
          "of %s (%d windows of %d tokens each, from 10 %% into each book, zero initial state). Statistics on "
          "half A; persistence = Spearman rank correlation of the maxima of half A vs half B; int8 MSE: scales "
          "from half A, error on half B. |.| = absolute value; kurtosis is Pearson (Gaussian = 3)."
          % (relm, args.calib_windows, ntok, BOOKS[0], ntok, BOOKS[1], args.calib_windows, L), "",
          "**x after conv+SiLU (SSD input)**", "",
          "| layer | max | p99.99 | top ch. max / median ch. max | persistence (Spearman) | int8 MSE per-tensor "
          "| percentile p99.95 | 4x4 sort-and-cluster | 4x4 / per-tensor | 4x4 / percentile |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %d | %s | %s | %.1f (ch %d) | %.3f | %.3g | %.3g | %.3g | %.3f | %.3f |" % (
            r["layer"], f3(r["x_max"]), f3(r["x_p9999"]), r["x_chan_max_over_median"], r["x_top_channel"],
            r["x_persistence"], r["x_mse_per_tensor"], r["x_mse_percentile"], r["x_mse_4x4"],
            r["x_mse_4x4_over_per_tensor"], r["x_mse_4x4_over_percentile"]))
    md += ["", "**B and C after conv+SiLU** (absmax per SSD group; largest (group, state) absmax over the median "
           "state's; persistence of the per-(group, state) maxima; int8 MSE with one scale per group over one "
           "per-tensor scale)", "",
           "| layer | B absmax g0 / g1 | B top state (g, n) | B max/median state | B persistence | B MSE group/tensor "
           "| C absmax g0 / g1 | C top state (g, n) | C max/median state | C persistence | C MSE group/tensor |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %d | %s | %s | %.1f | %.3f | %.3f | %s | %s | %.1f | %.3f | %.3f |" % (
            r["layer"], " / ".join(f3(v) for v in r["B_group_absmax"]), tuple(r["B_top_state"]),
            r["B_state_max_over_median"], r["B_persistence"], r["B_mse_per_group_over_per_tensor"],
            " / ".join(f3(v) for v in r["C_group_absmax"]), tuple(r["C_top_state"]),
            r["C_state_max_over_median"], r["C_persistence"], r["C_mse_per_group_over_per_tensor"]))
    md += ["", "**dt, z and SSD output y**", "",
           "| layer | dt_raw max | p99.9 | kurtosis | dt (softplus) min / max | z max | p99.9 | kurtosis | y max | p99.9 | kurtosis |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %d | %s | %s | %.1f | %.3g / %.3g | %s | %s | %.1f | %s | %s | %.1f |" % (
            r["layer"], f3(r["dt_raw_max"]), f3(r["dt_raw_p999"]), r["dt_raw_kurtosis"], r["dt_min"], r["dt_max"],
            f3(r["z_max"]), f3(r["z_p999"]), r["z_kurtosis"], f3(r["y_max"]), f3(r["y_p999"]), r["y_kurtosis"]))
    md += ["", "**out_proj input (gated-norm output) before / after a Hadamard of size d_inner** (int8 error: "
           "per-tensor absmax scale, MSE / mean square)", "",
           "| layer | max | p99.9 | max/p99.9 | kurtosis | top ch. | H: max | H: p99.9 | H: max/p99.9 | H: kurtosis "
           "| int8 rel. MSE | H: int8 rel. MSE |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %d | %s | %s | %.2f | %.1f | %d | %s | %s | %.2f | %.1f | %.2e | %.2e |" % (
            r["layer"], f3(r["out_in_max"]), f3(r["out_in_p999"]), r["out_in_ratio"], r["out_in_kurtosis"],
            r["out_in_top_channel"], f3(r["had_out_in_max"]), f3(r["had_out_in_p999"]), r["had_out_in_ratio"],
            r["had_out_in_kurtosis"], r["out_in_rel_mse"], r["had_out_in_rel_mse"]))
    md += ["", "**Final SSM state** of each window (absmax over windows per (h, p, n); int8 MSE with "
           "[G,4,4,N] scales (head cluster x channel group of x, per state) over one per-tensor scale)", "",
           "| layer | absmax | median elem. absmax | max/median | absmax g0 / g1 | MSE [G,4,4,N] / per-tensor (half B) "
           "| same, in sample (half A) | half-B values beyond their [G,4,4,N] range |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %d | %s | %s | %.1f | %s | %.3f | %.3f | %.2e |" % (
            r["layer"], f3(r["state_max"]), f3(r["state_median_elem_absmax"]), r["state_max_over_median"],
            " / ".join(f3(v) for v in r["state_group_absmax"]), r["state_mse_g44n_over_per_tensor"],
            r["state_mse_g44n_over_per_tensor_in_sample"], r["state_clipped_fraction_half_b"]))
    with open(os.path.join(args.model, "outliers.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.model, "outliers.json"), "w") as f:
        json.dump({"model_type": "mamba2", "tokens_per_half": ntok, "windows_per_half": args.calib_windows,
                   "seq_len": L, "half_a": BOOKS[0], "half_b": BOOKS[1], "layers": rows}, f, indent=1)
    panels = [
        ("Magnitudes (|value|)", "|activation|", [
            ("x after conv: max", "#1f77b4", False, [r["x_max"] for r in rows]),
            ("x after conv: p99.99", "#1f77b4", True, [r["x_p9999"] for r in rows]),
            ("out_proj in: max", "#d62728", False, [r["out_in_max"] for r in rows]),
            ("out_proj in: p99.9", "#d62728", True, [r["out_in_p999"] for r in rows]),
            ("Hadamard(out_proj in): max", "#ff7f0e", False, [r["had_out_in_max"] for r in rows]),
            ("final state: max", "#9467bd", False, [r["state_max"] for r in rows])]),
        ("Outlier indicators", "ratio / kurtosis", [
            ("out_proj in kurtosis", "#2ca02c", False, [r["out_in_kurtosis"] for r in rows]),
            ("kurtosis after Hadamard", "#2ca02c", True, [r["had_out_in_kurtosis"] for r in rows]),
            ("x: top / median channel max", "#1f77b4", False, [r["x_chan_max_over_median"] for r in rows]),
            ("B: top / median state max", "#8c564b", False, [r["B_state_max_over_median"] for r in rows]),
            ("C: top / median state max", "#e377c2", False, [r["C_state_max_over_median"] for r in rows])]),
        ("int8 MSE ratios and persistence", "ratio", [
            ("x MSE 4x4 / per-tensor", "#1f77b4", False, [r["x_mse_4x4_over_per_tensor"] for r in rows]),
            ("x MSE 4x4 / percentile", "#1f77b4", True, [r["x_mse_4x4_over_percentile"] for r in rows]),
            ("state MSE [G,4,4,N] / per-tensor", "#9467bd", False, [r["state_mse_g44n_over_per_tensor"] for r in rows]),
            ("x channel persistence", "#7f7f7f", False, [max(1e-3, r["x_persistence"]) for r in rows])]),
    ]
    svg_plot(os.path.join(args.model, "outliers.svg"), panels,
             "%s: activation outliers per layer (%d calibration tokens per half)"
             % (os.path.basename(os.path.abspath(args.model)), ntok))
    print("\n".join(md))
    return 0
