#!/usr/bin/python3
"""Golden fixtures for the C++ Mamba-2 engine, from an independent float64 reference.

The reference (class Mamba2Ref below) is written from quamba2-spec.md section 1.4/1.5 only:
numpy float64, its own safetensors reader, config.json in the HF Mamba2Config dialect, and the
per-token recurrence of the SSM (S = exp(dt*A) S + dt x B^T, y = S C + D x) with the project's
decode caches (the last d_conv-1 conv inputs, oldest first; the SSM state [H, P, N]). It shares
no code with the training model (scripts/mamba2_model.py, chunked SSD in torch).

Cross-checks (each must agree to 1e-9 relative to max |logit|, as make_golden.py does for Mamba-1):
  * reference prefill logits vs the training model's chunked SSD (torch float64, one call);
  * reference vs the training model stepped one token at a time through its caches;
  * the greedy continuation (reference decode steps, carrying the state) vs one chunked
    training-model pass over prompt + continuation, at every generated position;
  * for the carried-state case: the training model prefilled in two pieces with its caches.

Output (tests/data/golden_ref_mamba2.json): the format of tests/data/golden_ref.json
("quamba-golden-v1", see make_golden.py) plus
  "model_type": "mamba2",
  "cases"[i]."prefill_split" (only on the carried-state case): k — the engine should prefill
      ids[:k], then ids[k:] starting from the carried conv and SSM state; the expected logits are
      the same as for one prefill (logits_last), and "logits_split" are the logits after ids[k-1]
      (the last logits of the first piece);
  "intermediates": per-layer values of case 0 at token positions "positions" (first and last):
      for each layer: "in_proj_out" [d_in_proj] (z|x|B|C|dt_raw), "conv_out" [conv_dim]
      (after SiLU, x|B|C), "ssd_y" [d_inner] (SSM output incl. D*x, before the gated norm),
      "gated_norm_out" [d_inner] (out_proj input), "mixer_out" [d_model]; plus, after the last
      prompt token, "ssm_state_absmax", "ssm_state_l2" and "ssm_state_h0_p0" (state[0, 0, :]);
  "cross_check": the maximum absolute errors measured by the checks above.

Usage: scripts/make_golden_mamba2.py --model models/mamba2-ref-d256-l6 [--out PATH]
"""
import os
# OpenMP threads must not busy-wait: on a shared 2-core machine spinning at barriers made
# steps 10-20x slower. libgomp reads this when torch is imported, so it is set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import PROMPTS, fmt  # noqa: E402
from train_bpe import Tokenizer  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# A prompt longer than two 64-token chunks, prefilled in two pieces (carried state).
SPLIT_CASE = ("kjv_carried_state",
              "And God said, Let there be light: and there was light. And God saw the light, that it was "
              "good: and God divided the light from the darkness. And God called the light Day, and the "
              "darkness he called Night. And the evening and the morning were the first day. And God said, "
              "Let there be a firmament in the midst of the waters, and let it divide the waters from the "
              "waters. And God made the firmament, and divided the waters which were under the firmament "
              "from the waters which were above the firmament: and it was so. And God called the firmament "
              "Heaven. And the evening and the morning were the second day. And God said, Let the waters under "
              "the heaven be gathered together unto one place, and let the dry land appear: and it was so.",
              71)  # split after 71 tokens: both pieces cross a 64-token chunk boundary

_NP_DT = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I8": "i1", "U8": "u1"}


def read_safetensors_np(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=_NP_DT[info["dtype"]]).reshape(info["shape"])
    return out


def silu(v):
    return v / (1.0 + np.exp(-v))


def softplus(v):
    return np.where(v > 20.0, v, np.log1p(np.exp(np.minimum(v, 20.0))))


class Mamba2Ref:
    """float64 Mamba-2 LM from an HF-dialect directory; per-token recurrence (spec section 1.5)."""

    def __init__(self, model_dir):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        assert cfg["model_type"] == "mamba2"
        self.d_model = cfg["hidden_size"]
        self.n_layer = cfg["num_hidden_layers"]
        self.H = cfg["num_heads"]
        self.P = cfg["head_dim"]
        self.N = cfg["state_size"]
        self.G = cfg["n_groups"]
        self.K = cfg["conv_kernel"]
        self.eps = cfg["layer_norm_epsilon"]
        self.d_inner = self.H * self.P
        assert self.d_inner == cfg["expand"] * self.d_model
        self.conv_dim = self.d_inner + 2 * self.G * self.N
        t = {k: v.astype(np.float64) for k, v in read_safetensors_np(os.path.join(model_dir, "model.safetensors")).items()}
        self.emb = t["backbone.embeddings.weight"]
        self.lm_head = t.get("lm_head.weight", self.emb)            # tied when not stored
        self.norm_f = t["backbone.norm_f.weight"]
        self.layers = []
        for i in range(self.n_layer):
            p = "backbone.layers.%d." % i
            self.layers.append({
                "norm": t[p + "norm.weight"],
                "W_in": t[p + "mixer.in_proj.weight"],
                "conv_w": t[p + "mixer.conv1d.weight"][:, 0, :],       # [conv_dim, K]
                "conv_b": t[p + "mixer.conv1d.bias"],
                "dt_bias": t[p + "mixer.dt_bias"],
                "A": -np.exp(t[p + "mixer.A_log"]),
                "D": t[p + "mixer.D"],
                "gnorm": t[p + "mixer.norm.weight"],
                "W_out": t[p + "mixer.out_proj.weight"],
            })
        self.vocab_size = self.emb.shape[0]

    def new_state(self):
        return [{"conv": np.zeros((self.K - 1, self.conv_dim)), "ssm": np.zeros((self.H, self.P, self.N))}
                for _ in range(self.n_layer)]

    def rmsnorm(self, v, w):
        return v / np.sqrt(np.mean(v * v) + self.eps) * w

    def mixer_token(self, lw, u, st, cap=None):
        """One token row u [d_model] (after the block norm) through one mixer; st updated in place."""
        di, G, N, H, P = self.d_inner, self.G, self.N, self.H, self.P
        zxbcdt = lw["W_in"] @ u
        z = zxbcdt[:di]
        xBC = zxbcdt[di:di + self.conv_dim]
        dt_raw = zxbcdt[di + self.conv_dim:]
        win = np.vstack([st["conv"], xBC[None, :]])                # [K, conv_dim], oldest first
        st["conv"] = win[1:].copy()
        conv = silu((win.T * lw["conv_w"]).sum(1) + lw["conv_b"])
        x = conv[:di].reshape(H, P)
        Bv = conv[di:di + G * N].reshape(G, N)
        Cv = conv[di + G * N:].reshape(G, N)
        dt = softplus(dt_raw + lw["dt_bias"])
        y = np.empty((H, P))
        S = st["ssm"]
        for h in range(H):
            g = h // (H // G)
            S[h] = np.exp(dt[h] * lw["A"][h]) * S[h] + dt[h] * np.outer(x[h], Bv[g])
            y[h] = S[h] @ Cv[g] + lw["D"][h] * x[h]
        y = y.reshape(di)
        v = y * silu(z)
        vg = v.reshape(G, di // G)
        vg = vg / np.sqrt(np.mean(vg * vg, axis=1, keepdims=True) + 1e-5)   # grouped, eps 1e-5 (mamba_ssm)
        gated = vg.reshape(di) * lw["gnorm"]
        out = lw["W_out"] @ gated
        if cap is not None:
            cap.update(in_proj_out=zxbcdt, conv_out=conv, ssd_y=y, gated_norm_out=gated, mixer_out=out)
        return out

    def step(self, token, state, caps=None):
        """One token through the whole model; state (from new_state) updated in place."""
        h = self.emb[token]
        res = None
        for i, lw in enumerate(self.layers):
            res = h if res is None else res + h
            h = self.mixer_token(lw, self.rmsnorm(res, lw["norm"]), state[i], None if caps is None else caps[i])
        res = res + h
        return self.lm_head @ self.rmsnorm(res, self.norm_f)

    def run(self, ids, state=None, capture_at=()):
        """Prefill ids token by token. Returns (logits [L, V], state, {pos: per-layer captures})."""
        state = self.new_state() if state is None else state
        out, caps = [], {}
        for t, tok in enumerate(ids):
            c = [dict() for _ in range(self.n_layer)] if t in capture_at else None
            out.append(self.step(tok, state, c))
            if c is not None:
                caps[t] = c
        return np.array(out), state, caps


def training_model_checks(model_dir, cases_ids, ref_logits, split_case):
    """Cross-check against the training code (scripts/mamba2_model.py, chunked SSD) in float64."""
    import torch
    from export_hf import model_from_dir
    torch.set_num_threads(2)
    m = model_from_dir(model_dir).double().eval()
    errs = {"chunked_prefill": 0.0, "training_decode_steps": 0.0, "greedy_positions": 0.0, "split_prefill": 0.0}
    with torch.no_grad():
        for ci, (ids, full_ids) in enumerate(cases_ids):
            rl = ref_logits[ci]                                   # reference logits over full_ids
            scale = max(1.0, float(np.abs(rl).max()))
            n = len(ids)
            chunked = m(torch.tensor([full_ids]))[:, 0, :].numpy()
            e1 = float(np.abs(chunked[:n] - rl[:n]).max()) / scale
            e3 = float(np.abs(chunked[n - 1:] - rl[n - 1:]).max()) / scale
            caches = m.new_caches(1, torch.float64)
            steps = np.stack([m(torch.tensor([[t]]), caches)[0, 0].numpy() for t in full_ids])
            e2 = float(np.abs(steps - rl).max()) / scale
            errs["chunked_prefill"] = max(errs["chunked_prefill"], e1)
            errs["greedy_positions"] = max(errs["greedy_positions"], e3)
            errs["training_decode_steps"] = max(errs["training_decode_steps"], e2)
            if split_case == ci:
                k = SPLIT_CASE[2]
                caches = m.new_caches(1, torch.float64)
                a = m(torch.tensor([ids[:k]]), caches)[:, 0, :].numpy()
                b = m(torch.tensor([ids[k:]]), caches)[:, 0, :].numpy()
                e4 = float(np.abs(np.concatenate([a, b]) - rl[:n]).max()) / scale
                errs["split_prefill"] = e4
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported model directory (models/<name>)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "golden_ref_mamba2.json"))
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args()
    mdir = os.path.normpath(os.path.abspath(args.model))
    rel = os.path.relpath(mdir, ROOT)
    tok = Tokenizer(os.path.join(mdir, "tokenizer.json"))
    ref = Mamba2Ref(mdir)
    V = ref.vocab_size
    prompts = list(PROMPTS) + [SPLIT_CASE[:2]]
    split_ci = len(prompts) - 1
    cases, cases_ids, ref_full, inter = [], [], [], None
    for ci, (name, prompt) in enumerate(prompts):
        ids = tok.encode(prompt)
        assert tok.decode(ids) == prompt
        if ci == split_ci:
            k = SPLIT_CASE[2]
            assert 64 < k < len(ids) and len(ids) - k > 64, (k, len(ids))
        cap_at = (0, len(ids) - 1) if ci == 0 else ()
        logits, state, caps = ref.run(ids, capture_at=cap_at)
        if ci == 0:
            inter = {"case": name, "positions": [0, len(ids) - 1], "layers": []}
            for i in range(ref.n_layer):
                d = {"layer": i}
                for key in ("in_proj_out", "conv_out", "ssd_y", "gated_norm_out", "mixer_out"):
                    d[key] = [[fmt(v) for v in caps[p][i][key]] for p in inter["positions"]]
                S = state[i]["ssm"]
                d["ssm_state_absmax"] = fmt(np.abs(S).max())
                d["ssm_state_l2"] = fmt(np.sqrt((S * S).sum()))
                d["ssm_state_h0_p0"] = [fmt(v) for v in S[0, 0]]
                inter["layers"].append(d)
        # greedy continuation: decode steps from the carried state (no EOS stop)
        new, margins, lg, all_logits = [], [], logits[-1], [logits]
        for _ in range(args.new_tokens):
            order = np.argsort(-lg, kind="stable")
            margins.append(float(lg[order[0]] - lg[order[1]]))
            nid = int(order[0])
            new.append(nid)
            lg = ref.step(nid, state)
            all_logits.append(lg[None])
        full = np.concatenate(all_logits)[:len(ids) + args.new_tokens]   # logits over ids + new
        cases_ids.append((ids, ids + new))
        ref_full.append(full)
        c = {"name": name, "prompt": prompt, "ids": ids,
             "logits_first": [fmt(v) for v in logits[0]],
             "logits_last": [fmt(v) for v in logits[-1]],
             "argmax_first": int(np.argmax(logits[0])), "argmax_last": int(np.argmax(logits[-1])),
             "greedy_ids": new, "greedy_text": tok.decode(new),
             "greedy_min_margin": fmt(min(margins)),
             "greedy_margins": [fmt(m) for m in margins]}
        if ci == split_ci:
            c["prefill_split"] = SPLIT_CASE[2]
            c["logits_split"] = [fmt(v) for v in logits[SPLIT_CASE[2] - 1]]
        print("%-17s %3d ids  argmax_last %4d  min margin %.4f\n   %r -> %r"
              % (name, len(ids), c["argmax_last"], min(margins), prompt[:80], c["greedy_text"]), flush=True)
        cases.append(c)
    errs = training_model_checks(mdir, cases_ids, ref_full, split_ci)
    print("cross-check (max |diff| / max(1, max|logit|)): " +
          ", ".join("%s %.2e" % kv for kv in errs.items()))
    for k, e in errs.items():
        assert e <= args.tol, "cross-check %s failed: %.3e > %.1e" % (k, e, args.tol)
    golden = {"format": "quamba-golden-v1", "model_type": "mamba2", "model_dir": rel,
              "tokenizer": os.path.join(rel, "tokenizer.json"), "dtype": "float64", "vocab_size": V,
              "greedy_new_tokens": args.new_tokens, "cases": cases, "intermediates": inter,
              "cross_check": {k: float("%.3g" % e) for k, e in errs.items()}}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
