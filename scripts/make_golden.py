#!/usr/bin/python3
"""Golden fixtures for the C++ engine, computed from the exported reference model.

tests/data/golden_ref.json (model loaded from <model_dir>/model.safetensors with the
project's own safetensors reader, run in float64):
{
  "format": "quamba-golden-v1",
  "model_dir": "models/<name>",              # relative to the repo root
  "tokenizer": "models/<name>/tokenizer.json",
  "dtype": "float64",
  "vocab_size": V,
  "greedy_new_tokens": 64,
  "cases": [ {
      "name": str, "prompt": str,
      "ids": [int, ...],                     # prompt token ids (no BOS is added)
      "logits_first": [V floats],            # logits after the first prompt token
      "logits_last":  [V floats],            # logits after the last prompt token
      "argmax_first": int, "argmax_last": int,
      "greedy_ids": [64 ints],               # greedy continuation (new ids only)
      "greedy_text": str,                    # decoded greedy continuation
      "greedy_min_margin": float,            # min over steps of top1 - top2 logit
      "greedy_margins": [64 floats]          # top1 - top2 logit gap at each greedy step
  }, ... ]
}
Greedy decoding recomputes the full sequence each step (no EOS stop).

tests/data/tokenizer_ref_cases.json:
{ "format": "quamba-tokenizer-cases-v1", "tokenizer": "models/<name>/tokenizer.json",
  "cases": [ {"text": str, "ids": [int, ...]}, ... ] }

Usage: scripts/make_golden.py --model models/<name>
"""
import os
# OpenMP threads must not busy-wait: on a shared 2-core machine spinning at barriers made
# steps 10-20x slower. libgomp reads this when torch is imported, so it is set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_hf import model_from_dir  # noqa: E402
from train_bpe import Tokenizer  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PROMPTS = [
    ("kjv", "In the beginning God created the heaven and the earth. And the earth was"),
    ("digits_punct", "In 1984, the price was $3.50 -- wasn't it? (Yes!) See p. 42; 7% off: \"ok\"."),
    ("multiline", "Q: What is a computer?\nA: A machine that\n\n  1 And he said,"),
    ("dictionary", "Abacus, n. [L. abacus, Gr. abax.] A table or tray strewn with sand,"),
]

TOKENIZER_CASES = [
    "", " ", "  ", "a", "Hello world", "Hello  world", " leading space", "trailing space ",
    "line one\nline two\n", "\n\n\n", "tabs\tand\tspaces \t mixed", "\r\nwindows newline\r\n",
    "I'm sure you'll see they're fine, we've said it'd work",
    "DON'T SHOUT. It's JOHN'S book",
    "12345 67890 3.14159 1,000,000 2026-11-23",
    "Price: $3.50 (approx.) -- 50% off!!! #1 @user",
    "C++ code: for (int i = 0; i < n; ++i) { x[i] += y[i]; }",
    "\"Quoted,\" she said; 'single' quotes... and so on?!",
    "naïve café résumé über façade",
    "Ελληνικά και русский язык",
    "日本語のテキスト、中文文本。",
    "emoji: 😀🚀 👍🏽 ❤️",
    "mixed 123abc abc123 a1b2c3",
    "The LORD is my shepherd; I shall not want.",
    "And God said, Let there be light: and there was light.",
    "Zythum, n. [L., fr. Gr. zy^qos a kind of beer.]",
    "   multiple   spaces   between   words   ",
    "end of text<|endoftext|>start of next",
    "<|endoftext|>",
    "a\u00a0non-breaking\u2009thin\u3000ideographic space",
    "ﬁ ligature and combining e\u0301 accent",
    "x" * 40 + " " + "ab" * 20,
]


def fmt(v):
    return float("%.9g" % v)


def recurrent_logits(model, ids):
    """Independent token-by-token decode (conv_state / ssm_state, as mamba_ssm's Mamba.step and
    HF's cache path do) written from the spec, used to cross-check the parallel forward."""
    F = torch.nn.functional
    a = model.args
    bb = model.backbone
    conv = [torch.zeros(a.d_inner, a.d_conv, dtype=torch.float64) for _ in bb.layers]
    ssm = [torch.zeros(a.d_inner, a.d_state, dtype=torch.float64) for _ in bb.layers]
    out = []
    for t in ids:
        h = bb.embeddings.weight[t]
        res = None
        for i, blk in enumerate(bb.layers):
            res = h if res is None else res + h
            u = res * torch.rsqrt(res.pow(2).mean() + a.norm_eps) * blk.norm.weight
            m = blk.mixer
            xz = m.in_proj.weight @ u
            x, z = xz[:a.d_inner], xz[a.d_inner:]
            conv[i] = torch.cat([conv[i][:, 1:], x[:, None]], 1)
            x = F.silu((conv[i] * m.conv1d.weight[:, 0, :]).sum(1) + m.conv1d.bias)
            xd = m.x_proj.weight @ x
            dt, Bv, Cv = xd[:a.dt_rank], xd[a.dt_rank:a.dt_rank + a.d_state], xd[a.dt_rank + a.d_state:]
            delta = F.softplus(m.dt_proj.weight @ dt + m.dt_proj.bias, threshold=20.0)
            A = -torch.exp(m.A_log)
            ssm[i] = torch.exp(delta[:, None] * A) * ssm[i] + (delta * x)[:, None] * Bv[None, :]
            y = ssm[i] @ Cv + m.D * x
            h = m.out_proj.weight @ (y * F.silu(z))
        res = res + h
        hf = res * torch.rsqrt(res.pow(2).mean() + a.norm_eps) * bb.norm_f.weight
        out.append(bb.embeddings.weight @ hf)
    return torch.stack(out)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported model directory (models/<name>)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "golden_ref.json"))
    ap.add_argument("--tok-out", default=os.path.join(ROOT, "tests", "data", "tokenizer_ref_cases.json"))
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    mdir = os.path.normpath(os.path.abspath(args.model))
    rel = os.path.relpath(mdir, ROOT)
    tok_path = os.path.join(mdir, "tokenizer.json")
    tok = Tokenizer(tok_path)
    model = model_from_dir(mdir).double().eval()
    V = model.args.vocab_size
    cases = []
    for name, prompt in PROMPTS:
        ids = tok.encode(prompt)
        assert tok.decode(ids) == prompt
        logits = model(torch.tensor([ids]))[:, 0, :]  # [L, V]
        rl = recurrent_logits(model, ids)
        err = (rl - logits).abs().max().item()
        assert err < 1e-9 * max(1.0, logits.abs().max().item()), "recurrent vs parallel mismatch %g" % err
        seq = list(ids)
        new, margins = [], []
        for _ in range(args.new_tokens):
            lg = model(torch.tensor([seq]))[-1, 0, :]
            top = torch.topk(lg, 2)
            margins.append((top.values[0] - top.values[1]).item())
            nid = int(top.indices[0])
            new.append(nid)
            seq.append(nid)
        c = {"name": name, "prompt": prompt, "ids": ids,
             "logits_first": [fmt(v) for v in logits[0].tolist()],
             "logits_last": [fmt(v) for v in logits[-1].tolist()],
             "argmax_first": int(logits[0].argmax()), "argmax_last": int(logits[-1].argmax()),
             "greedy_ids": new, "greedy_text": tok.decode(new),
             "greedy_min_margin": fmt(min(margins)),
             "greedy_margins": [fmt(m) for m in margins]}
        print("%-13s %3d ids  argmax_last %4d  min margin %.4f\n   %r -> %r"
              % (name, len(ids), c["argmax_last"], min(margins), prompt, c["greedy_text"]))
        cases.append(c)
    golden = {"format": "quamba-golden-v1", "model_dir": rel, "tokenizer": os.path.join(rel, "tokenizer.json"),
              "dtype": "float64", "vocab_size": V, "greedy_new_tokens": args.new_tokens, "cases": cases}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    tc = {"format": "quamba-tokenizer-cases-v1", "tokenizer": os.path.join(rel, "tokenizer.json"),
          "cases": []}
    for text in TOKENIZER_CASES:
        ids = tok.encode(text)
        assert tok.decode(ids) == text, text
        tc["cases"].append({"text": text, "ids": ids})
    with open(args.tok_out, "w", encoding="utf-8") as f:
        json.dump(tc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %s (%d bytes), %s (%d cases, %d bytes)" % (args.out, os.path.getsize(args.out), args.tok_out,
                                                           len(tc["cases"]), os.path.getsize(args.tok_out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
