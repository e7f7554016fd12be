#!/usr/bin/python3
"""Activation-outlier report of the float reference model at Quamba's quantization points.

Runs the exported float32 model over validation text (non-overlapping windows of
--seq-len tokens) and reports per layer:
  * SSM input x (conv1d output after SiLU = x_proj input; Quamba quantizes it with a
    percentile scale): max|x|, p99.99(|x|), their ratio;
  * out_proj input y*SiLU(z) (Quamba applies a Hadamard transform before quantizing it):
    max|y|, p99.9(|y|), ratio, Pearson kurtosis (normal = 3) of the values, and the
    same statistics after a normalized Walsh-Hadamard transform along channels when
    d_inner is a power of two.
Writes <model>/outliers.md (markdown table), <model>/outliers.json and
<model>/outliers.svg (hand-written SVG plot, log-scale y axis).

For a Mamba-2 model (config.json model_type "mamba2") the report is made by
scripts/outlier_report_mamba2.py instead (calibration text, Quamba2's quantization points).

Usage: scripts/outlier_report.py --model models/<name> [--windows 32]
"""
import os
# OpenMP threads must not busy-wait: on a shared 2-core machine spinning at barriers made
# steps 10-20x slower. libgomp reads this when torch is imported, so it is set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_hf import model_from_dir  # noqa: E402
from train_bpe import Tokenizer  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
EOT = "<|endoftext|>"


def quantile_abs(x, q):
    a = x.abs().flatten()
    k = max(1, min(a.numel(), int(math.ceil(q * a.numel()))))
    return a.kthvalue(k).values.item()


def kurtosis(x):
    x = x.double().flatten()
    m = x.mean()
    d = x - m
    v = (d * d).mean()
    return ((d ** 4).mean() / (v * v)).item()


def fwht(x):
    """Normalized Walsh-Hadamard transform along the last dim (power of two)."""
    n = x.shape[-1]
    y = x.reshape(-1, n).clone()
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return (y.reshape(x.shape) / math.sqrt(n))


# ------------------------------------------------------------------ SVG plot

def svg_plot(path, panels, title):
    """panels: list of (subtitle, ylabel, series[(label, color, dash, [y per layer])]); log-y."""
    W, H = 1040, 360 * len(panels) + 60
    pw, ph, left, top = 640, 260, 80, 80
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="13">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>' % (left, title)]
    for pi, (sub, ylabel, series) in enumerate(panels):
        oy = top + pi * 360
        vals = [v for s in series for v in s[3] if v > 0]
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        if hi / lo < 10:
            hi = lo * 10
        n = len(series[0][3])

        def X(i):
            return left + (pw * (i + 0.5) / n)

        def Y(v):
            return oy + ph - ph * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        out.append('<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>' % (left, oy - 10, sub))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>' % (left, oy, pw, ph))
        e = math.log10(lo)
        while e <= math.log10(hi) + 1e-9:
            for m in range(1, 10):
                v = m * 10 ** e
                if v > hi * 1.0001:
                    break
                y = Y(v)
                out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>'
                           % (left, left + pw, y, y, "#bbb" if m == 1 else "#eee"))
                if m == 1:
                    out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 6, y + 4, "%g" % v))
            e += 1
        for i in range(n):
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (X(i), oy + ph + 18, i))
        out.append('<text x="%d" y="%d" text-anchor="middle">layer</text>' % (left + pw // 2, oy + ph + 38))
        out.append('<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">%s</text>'
                   % (left - 55, oy + ph // 2, left - 55, oy + ph // 2, ylabel))
        for si, (label, color, dash, ys) in enumerate(series):
            pts = " ".join("%.1f,%.1f" % (X(i), Y(v)) for i, v in enumerate(ys))
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2" %s/>'
                       % (pts, color, 'stroke-dasharray="6,4"' if dash else ""))
            for i, v in enumerate(ys):
                out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (X(i), Y(v), color))
            ly = oy + 14 + si * 20
            out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2" %s/>'
                       % (left + pw + 12, left + pw + 40, ly, ly, color, 'stroke-dasharray="6,4"' if dash else ""))
            out.append('<text x="%d" y="%d">%s</text>' % (left + pw + 46, ly + 4, label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--valid", default=os.path.join(ROOT, "out", "corpus", "valid.txt"))
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--calib", default=os.path.join(ROOT, "..", "shared", "data", "calibration"),
                    help="Mamba-2 only: folder with the calibration books (see outlier_report_mamba2.py)")
    ap.add_argument("--calib-windows", type=int, default=32, help="Mamba-2 only: windows per calibration half")
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        if json.load(f).get("model_type") == "mamba2":
            import outlier_report_mamba2
            return outlier_report_mamba2.run(args, svg_plot)
    torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    model = model_from_dir(args.model).eval()
    tok = Tokenizer(os.path.join(args.model, "tokenizer.json"))
    ids = []
    for d in open(args.valid, encoding="utf-8").read().split(EOT)[:-1]:
        ids.extend(tok.encode_ordinary(d))
        ids.append(0)
    L = args.seq_len
    nw = min(args.windows, len(ids) // L)
    data = torch.tensor(ids[:nw * L]).view(nw, L)
    nl = model.args.n_layer
    caps = [dict() for _ in range(nl)]
    acc = [{"ssm_in": [], "out_proj_in": []} for _ in range(nl)]
    for i, blk in enumerate(model.backbone.layers):
        blk.mixer.capture = caps[i]
    for b0 in range(0, nw, args.batch):
        model(data[b0:b0 + args.batch])
        for i in range(nl):
            for k in acc[i]:
                acc[i][k].append(caps[i][k].reshape(-1, caps[i][k].shape[-1]).clone())
    di = model.args.d_inner
    pow2 = di & (di - 1) == 0
    rows = []
    for i in range(nl):
        x = torch.cat(acc[i]["ssm_in"])
        y = torch.cat(acc[i]["out_proj_in"])
        r = {"layer": i,
             "ssm_in_max": x.abs().max().item(), "ssm_in_p9999": quantile_abs(x, 0.9999),
             "out_in_max": y.abs().max().item(), "out_in_p999": quantile_abs(y, 0.999),
             "out_in_kurtosis": kurtosis(y),
             "out_in_top_channel": int(y.abs().amax(0).argmax()),
             "out_in_chan_max_over_median": (y.abs().amax(0).max() / y.abs().amax(0).median()).item()}
        r["ssm_in_ratio"] = r["ssm_in_max"] / r["ssm_in_p9999"]
        r["out_in_ratio"] = r["out_in_max"] / r["out_in_p999"]
        if pow2:
            hy = fwht(y)
            r["had_out_in_max"] = hy.abs().max().item()
            r["had_out_in_p999"] = quantile_abs(hy, 0.999)
            r["had_out_in_ratio"] = r["had_out_in_max"] / r["had_out_in_p999"]
            r["had_out_in_kurtosis"] = kurtosis(hy)
        rows.append(r)
    ntok = nw * L
    md = ["Activation statistics of the float32 model on %d validation tokens (%d windows of %d tokens, "
          "`scripts/outlier_report.py --model %s --windows %d`). |.| = absolute value; kurtosis is Pearson "
          "(Gaussian = 3)." % (ntok, nw, L, os.path.relpath(os.path.abspath(args.model), ROOT), args.windows), "",
          "| layer | SSM in x: max | p99.99 | max/p99.99 | out_proj in: max | p99.9 | max/p99.9 | kurtosis "
          "| top ch. max / median ch. max |" + (" Hadamard(out_proj in): max/p99.9 | kurtosis |" if pow2 else ""),
          "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if pow2 else "")]
    for r in rows:
        md.append("| %d | %.3g | %.3g | %.2f | %.3g | %.3g | %.2f | %.1f | %.1f (ch %d) |"
                  % (r["layer"], r["ssm_in_max"], r["ssm_in_p9999"], r["ssm_in_ratio"], r["out_in_max"],
                     r["out_in_p999"], r["out_in_ratio"], r["out_in_kurtosis"], r["out_in_chan_max_over_median"],
                     r["out_in_top_channel"])
                  + (" %.2f | %.1f |" % (r["had_out_in_ratio"], r["had_out_in_kurtosis"]) if pow2 else ""))
    with open(os.path.join(args.model, "outliers.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.model, "outliers.json"), "w") as f:
        json.dump({"tokens": ntok, "windows": nw, "seq_len": L, "layers": rows}, f, indent=1)
    panels = [
        ("Quantization-point magnitudes (|value|)", "|activation|", [
            ("SSM in x: max", "#1f77b4", False, [r["ssm_in_max"] for r in rows]),
            ("SSM in x: p99.99", "#1f77b4", True, [r["ssm_in_p9999"] for r in rows]),
            ("out_proj in: max", "#d62728", False, [r["out_in_max"] for r in rows]),
            ("out_proj in: p99.9", "#d62728", True, [r["out_in_p999"] for r in rows])]),
        ("Outlier indicators", "ratio / kurtosis", [
            ("SSM in max/p99.99", "#1f77b4", False, [r["ssm_in_ratio"] for r in rows]),
            ("out_proj in max/p99.9", "#d62728", False, [r["out_in_ratio"] for r in rows]),
            ("out_proj in kurtosis", "#2ca02c", False, [r["out_in_kurtosis"] for r in rows])]
         + ([("kurtosis after Hadamard", "#2ca02c", True, [r["had_out_in_kurtosis"] for r in rows])] if pow2 else [])),
    ]
    svg_plot(os.path.join(args.model, "outliers.svg"), panels,
             "%s: activation outliers per layer (%d val tokens)" % (os.path.basename(os.path.abspath(args.model)), ntok))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
