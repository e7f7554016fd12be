#!/usr/bin/python3
"""Trains the Quamba.cpp reference Mamba-1 LM on the corpus of build_corpus.py.

The learning-rate schedule is time-based: linear warmup over --warmup steps, then
cosine decay from --lr to --lr * --final-lr-frac as a function of elapsed training
time / --budget-min (or until the wall-clock --end-at time, UTC HH:MM). Training stops
when the time budget is spent. Checkpoints (model + optimizer + RNG + elapsed time)
are written every --ckpt-every-sec seconds and at the end, so a run cut short still
leaves a usable model, and --resume continues a run with the same schedule.

Logs: <out>/loss.csv (step, elapsed_s, tokens, bytes, lr, train_loss, val_loss,
val_bpb), <out>/log.txt.

Bits per byte: sum over validation tokens of -log2 p(token) divided by the number
of UTF-8 bytes of validation text (the <|endoftext|> separators count 0 bytes).

Examples:
  scripts/train_reference.py --tok out/tokenizer/tokenizer.json --d-model 384 --n-layer 8 \
      --end-at 13:25 --out out/train/main
  scripts/train_reference.py --tok bytes --budget-min 3.5 --out out/train/cmp_bytes
"""
import os
# OpenMP threads must not busy-wait: on a shared 2-core machine spinning at barriers made
# steps 10-20x slower. libgomp reads this when torch is imported, so it is set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import datetime
import hashlib
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamba_model import MambaArgs, MambaLM  # noqa: E402
from mamba2_model import Mamba2Args, Mamba2LM  # noqa: E402

EOT = "<|endoftext|>"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


# --------------------------------------------------------------------------- data

def encode_split(path, tok):
    """Returns (ids LongTensor, bytes-per-id LongTensor). Documents end with EOT (id 0)."""
    text = open(path, encoding="utf-8").read()
    docs = text.split(EOT)
    assert docs[-1] == ""
    ids, nbytes = [], []
    if tok == "bytes":
        for d in docs[:-1]:
            b = d.encode("utf-8")
            ids.extend(x + 1 for x in b)
            nbytes.extend([1] * len(b))
            ids.append(0)
            nbytes.append(0)
    else:
        for d in docs[:-1]:
            t = tok.encode_ordinary(d)
            ids.extend(t)
            nbytes.extend(tok.token_bytes[i] for i in t)
            ids.append(0)
            nbytes.append(0)
    return torch.tensor(ids, dtype=torch.int16 if max(ids) < 32768 else torch.int32), \
        torch.tensor(nbytes, dtype=torch.int8)


def load_data(tok_arg, corpus_dir, cache_dir):
    if tok_arg == "bytes":
        tok, key, vocab = "bytes", "bytes", 264  # 0 = EOT, 1..256 = bytes, padded to a multiple of 8
    else:
        from train_bpe import Tokenizer, BYTE_DEC
        tok = Tokenizer(tok_arg)
        tok.token_bytes = {i: (len(bytes(BYTE_DEC[c] for c in t)) if i != 0 else 0)
                           for i, t in tok.id_to_tok.items()}
        key = hashlib.sha256(open(tok_arg, "rb").read()).hexdigest()[:16]
        vocab = tok.vocab_size
    os.makedirs(cache_dir, exist_ok=True)
    data = {}
    for split in ("train", "valid"):
        src = os.path.join(corpus_dir, split + ".txt")
        ch = hashlib.sha256(open(src, "rb").read()).hexdigest()[:16]
        cp = os.path.join(cache_dir, "%s_%s_%s.pt" % (split, key, ch))
        if os.path.exists(cp):
            data[split] = torch.load(cp)
        else:
            t = time.time()
            data[split] = encode_split(src, tok)
            torch.save(data[split], cp)
            print("tokenized %s: %d ids in %.1fs" % (split, len(data[split][0]), time.time() - t), flush=True)
    return data, vocab


# --------------------------------------------------------------------------- eval

@torch.no_grad()
def evaluate(model, ids, nbytes, seq_len, batch, max_windows=None):
    """Non-overlapping windows over the validation stream, each started from a zero state.
    Returns (mean nats per token, bits per byte, tokens, bytes)."""
    model.eval()
    n = (len(ids) - 1) // seq_len
    if max_windows:
        n = min(n, max_windows)
    tot_nll, tot_tok, tot_bytes = 0.0, 0, 0
    for w0 in range(0, n, batch):
        ws = range(w0, min(n, w0 + batch))
        x = torch.stack([ids[w * seq_len: w * seq_len + seq_len] for w in ws]).long()
        y = torch.stack([ids[w * seq_len + 1: w * seq_len + seq_len + 1] for w in ws]).long()
        nb = torch.stack([nbytes[w * seq_len + 1: w * seq_len + seq_len + 1] for w in ws]).long()
        logits = model(x)
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                y.t().reshape(-1), reduction="sum")
        tot_nll += nll.item()
        tot_tok += y.numel()
        tot_bytes += nb.sum().item()
    model.train()
    return tot_nll / tot_tok, tot_nll / math.log(2) / tot_bytes, tot_tok, tot_bytes


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tok", default=os.path.join(ROOT, "out", "tokenizer", "tokenizer.json"),
                    help="tokenizer.json path, or 'bytes' for a byte-level model")
    ap.add_argument("--corpus", default=os.path.join(ROOT, "out", "corpus"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--arch", choices=["mamba", "mamba2"], default="mamba",
                    help="mamba (Mamba-1, selective scan) or mamba2 (chunked SSD, scripts/mamba2_model.py)")
    ap.add_argument("--d-state", type=int, default=None, help="default 16 (mamba) / 64 (mamba2)")
    ap.add_argument("--expand", type=int, default=2)
    ap.add_argument("--headdim", type=int, default=32, help="mamba2 only")
    ap.add_argument("--ngroups", type=int, default=2, help="mamba2 only")
    ap.add_argument("--chunk", type=int, default=64, help="mamba2 only: SSD chunk length")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--final-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--budget-min", type=float, default=None, help="training time budget in minutes")
    ap.add_argument("--end-at", default=None, help="UTC wall-clock HH:MM by which training (incl. final eval) ends")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="what the budget/schedule counts: wall-clock seconds, or process CPU seconds / threads "
                         "(fair equal-compute comparisons on a shared machine)")
    ap.add_argument("--eval-every-sec", type=float, default=300)
    ap.add_argument("--eval-windows", type=int, default=64, help="windows for periodic eval (final eval: all)")
    ap.add_argument("--ckpt-every-sec", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-final-eval", action="store_true")
    args = ap.parse_args()

    # Denormal floats (exp() of very negative numbers) make some steps ~5x slower on x86.
    torch.set_flush_denormal(True)
    global T_START
    T_START = time.time()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "log.txt"), "a")

    def log(*a):
        s = " ".join(str(x) for x in a)
        line = "[%s] %s" % (datetime.datetime.utcnow().strftime("%H:%M:%S"), s)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    data, vocab = load_data(args.tok, args.corpus, os.path.join(ROOT, "out", "cache"))
    train_ids = data["train"][0]
    val_ids, val_bytes = data["valid"]
    ckpt_path = os.path.join(args.out, "ckpt.pt")

    if args.arch == "mamba2":
        margs = Mamba2Args(d_model=args.d_model, n_layer=args.n_layer, vocab_size=vocab,
                           d_state=args.d_state or 64, expand=args.expand, headdim=args.headdim,
                           ngroups=args.ngroups, chunk_size=args.chunk)
        model = Mamba2LM(margs, seed=args.seed)
        desc = "mamba2 d_model=%d n_layer=%d d_inner=%d d_state=%d heads=%dx%d ngroups=%d chunk=%d" % (
            margs.d_model, margs.n_layer, margs.d_inner, margs.d_state, margs.nheads, margs.headdim,
            margs.ngroups, margs.chunk_size)
    else:
        margs = MambaArgs(d_model=args.d_model, n_layer=args.n_layer, vocab_size=vocab,
                          d_state=args.d_state or 16, expand=args.expand)
        model = MambaLM(margs, seed=args.seed)
        desc = "d_model=%d n_layer=%d d_inner=%d d_state=%d dt_rank=%d" % (
            margs.d_model, margs.n_layer, margs.d_inner, margs.d_state, margs.dt_rank)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator()
    gen.manual_seed(args.seed + 1)
    step, elapsed, tokens_seen, bytes_seen = 0, 0.0, 0, 0
    budget = None
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        step, elapsed, tokens_seen, bytes_seen = ck["step"], ck["elapsed"], ck["tokens"], ck["bytes"]
        budget = ck["budget_s"]
        log("resumed from %s at step %d, elapsed %.0fs, budget %.0fs" % (ckpt_path, step, elapsed, budget))
    if budget is None:
        if args.end_at:
            now = datetime.datetime.utcnow()
            hh, mm = map(int, args.end_at.split(":"))
            end = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
            # reserve time for the final full evaluation and checkpoint
            budget = (end - now).total_seconds() - 150
        elif args.budget_min:
            budget = args.budget_min * 60
        else:
            budget = float("inf")
    log("model %s vocab=%d params=%.2fM; "
        "batch %dx%d; lr %g; budget %.0fs; train ids %d, val ids %d (%d bytes)"
        % (desc, vocab, model.n_params() / 1e6, args.batch, args.seq_len, args.lr, budget, len(train_ids),
           len(val_ids), int(val_bytes.sum())))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({"model": margs.to_dict(), "train": vars(args), "budget_s": budget}, f, indent=1)

    csv_path = os.path.join(args.out, "loss.csv")
    new_csv = not (args.resume and os.path.exists(csv_path))
    csvf = open(csv_path, "w" if new_csv else "a", newline="")
    cw = csv.writer(csvf)
    if new_csv:
        cw.writerow(["step", "elapsed_s", "tokens", "bytes", "lr", "train_loss", "val_loss", "val_bpb"])

    def save():
        ck = {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
              "step": step, "elapsed": elapsed, "tokens": tokens_seen, "bytes": bytes_seen,
              "budget_s": budget, "args": margs.to_dict(), "train_args": vars(args)}
        torch.save(ck, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    def lr_at(step, elapsed):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = min(1.0, elapsed / budget) if math.isfinite(budget) else 0.0
        return args.lr * (args.final_lr_frac + (1 - args.final_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))

    train_nbytes = data["train"][1]
    L, B = args.seq_len, args.batch
    last_eval = last_ckpt = elapsed
    ema = None
    model.train()
    while elapsed < budget and (args.max_steps is None or step < args.max_steps):
        t0 = time.time()
        c0 = time.process_time()
        lr = lr_at(step, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_ids) - L - 1, (B,), generator=gen)
        x = torch.stack([train_ids[s:s + L] for s in starts.tolist()]).long()
        y = torch.stack([train_ids[s + 1:s + L + 1] for s in starts.tolist()]).long()
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        elapsed += (time.time() - t0) if args.clock == "wall" else (time.process_time() - c0) / args.threads
        t_after = time.time()
        tokens_seen += B * L
        bytes_seen += int(sum(train_nbytes[s + 1:s + L + 1].long().sum().item() for s in starts.tolist()))
        lv = loss.item()
        if not math.isfinite(lv):
            log("non-finite loss at step %d; stopping" % step)
            return 2
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        vl = vb = ""
        if elapsed - last_eval >= args.eval_every_sec:
            te = time.time()
            vl, vb, _, _ = evaluate(model, val_ids, val_bytes, L, B, args.eval_windows)
            log("step %d elapsed %.0fs  val_loss(%d windows) %.4f  bpb %.4f  (eval %.0fs)"
                % (step, elapsed, args.eval_windows, vl, vb, time.time() - te))
            last_eval = elapsed
        cw.writerow([step, "%.1f" % elapsed, tokens_seen, bytes_seen, "%.3g" % lr, "%.4f" % lv,
                     vl if vl == "" else "%.4f" % vl, vb if vb == "" else "%.4f" % vb])
        if step % 10 == 0 or step <= 3:
            csvf.flush()
            log("step %5d  loss %.4f (ema %.4f)  lr %.2e  gnorm %.2f  %.2fs/step  elapsed %.0f/%.0fs"
                % (step, lv, ema, lr, gn, time.time() - t0, elapsed, budget))
        if elapsed - last_ckpt >= args.ckpt_every_sec:
            save()
            last_ckpt = elapsed
        if args.clock == "wall":  # evaluation and checkpoint time count against a wall-clock budget
            elapsed += time.time() - t_after
    save()
    csvf.flush()
    log("training done: %d steps, %.0fs, %d tokens, %d bytes" % (step, elapsed, tokens_seen, bytes_seen))
    if not args.no_final_eval:
        te = time.time()
        vl, vb, nt, nb = evaluate(model, val_ids, val_bytes, L, B)
        res = {"val_loss_per_token": vl, "val_ppl_per_token": math.exp(vl), "val_bits_per_byte": vb,
               "val_tokens": nt, "val_bytes": nb, "steps": step, "train_seconds": elapsed,
               "train_tokens": tokens_seen, "train_bytes": bytes_seen, "seq_len": L, "batch": B,
               "params": model.n_params(), "clock": args.clock, "wall_seconds_total": time.time() - T_START}
        log("final eval (%d tokens, %d bytes, %.0fs): val_loss %.4f  ppl %.2f  bpb %.4f"
            % (nt, nb, time.time() - te, vl, math.exp(vl), vb))
        with open(os.path.join(args.out, "final_eval.json"), "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
