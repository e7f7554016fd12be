#!/usr/bin/python3
"""Validation loss of an exported reference model (Mamba-1 or Mamba-2), float32, in two windowings.

Token stream: out/corpus/valid.txt split at "<|endoftext|>"; each document encoded with the
model's tokenizer (tokenizer.json, no special tokens inside documents) and followed by id 0
(<|endoftext|>); so the stream is exactly what `quamba eval --ppl out/corpus/valid.txt`
tokenizes (the whole file as one stream, <|endoftext|> mapped to id 0). Every window starts from
a zero state.

  training : the windowing of train_reference.py's final evaluation (the model cards' figure):
             n = floor((T - 1) / ctx) windows; window w feeds ids[w*ctx : w*ctx + ctx] and
             predicts ids[w*ctx + 1 : w*ctx + ctx + 1] (ctx predictions per window: the first
             token of window w+1 is the last target of window w).
  quamba   : the windowing of the C++ `quamba eval --ppl` (src/eval/perplexity.h, Quamba's
             ppl_eval.py): n = floor(T / ctx) windows of ids[w*ctx : (w+1)*ctx]; every token but
             the window's first is predicted (ctx - 1 predictions per window).

Bits per byte (training windowing): sum of -log2 p over the predicted tokens / UTF-8 bytes of
those tokens (<|endoftext|> counts 0 bytes).

Usage: scripts/eval_reference.py --model models/<name> [--ctx 256] [--out FILE.json]
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_hf import model_from_dir  # noqa: E402
from train_reference import load_data, evaluate  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


@torch.no_grad()
def evaluate_quamba(model, ids, ctx, batch):
    n = len(ids) // ctx
    nll, cnt = 0.0, 0
    for w0 in range(0, n, batch):
        x = torch.stack([ids[w * ctx:(w + 1) * ctx] for w in range(w0, min(n, w0 + batch))]).long()
        logits = model(x)[:-1]                                       # [ctx-1, b, V] time-major
        nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].t().reshape(-1),
                               reduction="sum").item()
        cnt += (ctx - 1) * x.shape[0]
    return nll / cnt, n, cnt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", default=os.path.join(ROOT, "out", "corpus"))
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    model = model_from_dir(args.model).eval()
    data, _ = load_data(os.path.join(args.model, "tokenizer.json"), args.corpus, os.path.join(ROOT, "out", "cache"))
    ids, nbytes = data["valid"]
    vl, vb, nt, nb = evaluate(model, ids, nbytes, args.ctx, args.batch)
    ql, qn, qc = evaluate_quamba(model, ids, args.ctx, args.batch)
    res = {"model": os.path.relpath(os.path.abspath(args.model), ROOT), "ctx": args.ctx, "stream_tokens": len(ids),
           "training": {"windows": (len(ids) - 1) // args.ctx, "predicted_tokens": nt, "bytes": nb,
                        "nll": vl, "ppl": math.exp(vl), "bits_per_byte": vb},
           "quamba": {"windows": qn, "predicted_tokens": qc, "nll": ql, "ppl": math.exp(ql)}}
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
