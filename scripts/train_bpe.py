#!/usr/bin/python3
"""Byte-level BPE (GPT-2 style) for the Quamba.cpp reference model.

  train : learns merges on the train split and writes a Hugging Face
          `tokenizer.json` (same layout the HF `tokenizers` library writes).
  encode: a pure-Python encoder that applies the merges exactly as HF's BPE
          model does (GPT-2 regex pre-tokenization, bytes_to_unicode, then the
          lowest-rank merge first), with `<|endoftext|>` as an added special
          token (id 0) that is split out before pre-tokenization.

Vocabulary layout: id 0 = <|endoftext|>, ids 1..256 = the 256 bytes (id = 1 + byte
value, written with the GPT-2 bytes_to_unicode characters), ids 257.. = merges in
the order learned. Normalizer: none (null).

Usage:
  scripts/train_bpe.py --train out/corpus/train.txt --vocab-size 4096 --out out/tokenizer/tokenizer.json
"""
import argparse
import heapq
import json
import os
import sys
import time
from collections import Counter, defaultdict

import regex

EOT = "<|endoftext|>"
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PAT = regex.compile(GPT2_PATTERN)


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {c: b for b, c in BYTE_ENC.items()}


def pretokenize(text):
    """GPT-2 regex split, each piece mapped byte-wise to the unicode alphabet."""
    return ["".join(BYTE_ENC[b] for b in piece.encode("utf-8")) for piece in _PAT.findall(text)]


# --------------------------------------------------------------------------- training

def train(docs, vocab_size, log_every=500):
    word_counts = Counter()
    for d in docs:
        word_counts.update(pretokenize(d))
    id_to_tok = [EOT] + [BYTE_ENC[b] for b in range(256)]
    tok_to_id = {t: i for i, t in enumerate(id_to_tok)}
    words, counts = [], []
    for w in sorted(word_counts):  # sorted: deterministic
        words.append([tok_to_id[c] for c in w])
        counts.append(word_counts[w])
    pair_counts = defaultdict(int)
    where = defaultdict(set)
    for wi, w in enumerate(words):
        c = counts[wi]
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += c
            where[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    t0 = time.time()
    while len(id_to_tok) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        cur = pair_counts.get(pair, 0)
        if cur <= 0 or -negc != cur:
            continue  # stale heap entry
        a, b = pair
        new_tok = id_to_tok[a] + id_to_tok[b]
        if new_tok in tok_to_id:
            new_id = tok_to_id[new_tok]
        else:
            new_id = len(id_to_tok)
            id_to_tok.append(new_tok)
            tok_to_id[new_tok] = new_id
        merges.append((a, b))
        changed = set()
        for wi in sorted(where.pop(pair, ())):
            w = words[wi]
            c = counts[wi]
            if len(w) < 2:
                continue
            nw, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    nw.append(new_id)
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            if len(nw) == len(w):
                continue
            for p in zip(w, w[1:]):
                pair_counts[p] -= c
                changed.add(p)
            for p in zip(nw, nw[1:]):
                pair_counts[p] += c
                changed.add(p)
                where[p].add(wi)
            words[wi] = nw
        pair_counts.pop(pair, None)
        changed.discard(pair)
        for p in changed:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
        if log_every and len(merges) % log_every == 0:
            print("  merge %5d  vocab %5d  count %8d  %r  (%.1fs)" % (len(merges), len(id_to_tok), cur,
                                                                     new_tok, time.time() - t0), flush=True)
    return id_to_tok, [(id_to_tok[a], id_to_tok[b]) for a, b in merges]


def tokenizer_json(id_to_tok, merges):
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": 0, "content": EOT, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": dict(bl),
        "post_processor": dict(bl),
        "decoder": dict(bl),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": {t: i for i, t in enumerate(id_to_tok)},
            "merges": ["%s %s" % m for m in merges],
        },
    }


# --------------------------------------------------------------------------- encoding

class Tokenizer:
    """Encoder/decoder for a byte-level BPE tokenizer.json (our own or GPT-2 style)."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        m = tj["model"]
        assert m["type"] == "BPE"
        self.vocab = dict(m["vocab"])
        for at in tj.get("added_tokens", []):
            self.vocab[at["content"]] = at["id"]
        self.special = {at["content"]: at["id"] for at in tj.get("added_tokens", [])}
        self.id_to_tok = {i: t for t, i in self.vocab.items()}
        self.ranks = {}
        for r, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            self.ranks.setdefault((a, b), r)
        self.cache = {}
        self.vocab_size = max(self.id_to_tok) + 1

    def _bpe(self, word):
        ids = self.cache.get(word)
        if ids is not None:
            return ids
        syms = list(word)
        ranks = self.ranks
        while len(syms) > 1:
            best, best_r = None, None
            for p in zip(syms, syms[1:]):
                r = ranks.get(p)
                if r is not None and (best_r is None or r < best_r):
                    best, best_r = p, r
            if best is None:
                break
            a, b = best
            ns, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    ns.append(a + b)
                    i += 2
                else:
                    ns.append(syms[i])
                    i += 1
            syms = ns
        ids = [self.vocab[s] for s in syms]
        if len(self.cache) < 500000:
            self.cache[word] = ids
        return ids

    def encode_ordinary(self, text):
        out = []
        for w in pretokenize(text):
            out.extend(self._bpe(w))
        return out

    def encode(self, text):
        """HF semantics: added (special) tokens are matched first, the rest is BPE-encoded."""
        if not self.special:
            return self.encode_ordinary(text)
        pat = "(" + "|".join(regex.escape(s) for s in sorted(self.special, key=len, reverse=True)) + ")"
        out = []
        for k, part in enumerate(regex.split(pat, text)):
            if k % 2:
                out.append(self.special[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def decode(self, ids):
        bs = bytearray()
        for i in ids:
            t = self.id_to_tok[i]
            if t in self.special:
                bs += t.encode("utf-8")
            else:
                bs += bytes(BYTE_DEC[c] for c in t)
        return bs.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap.add_argument("--train", default=os.path.join(root, "out", "corpus", "train.txt"))
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--out", default=os.path.join(root, "out", "tokenizer", "tokenizer.json"))
    args = ap.parse_args()
    text = open(args.train, encoding="utf-8").read()
    docs = [d for d in text.split(EOT) if d]
    t = time.time()
    id_to_tok, merges = train(docs, args.vocab_size)
    print("trained %d tokens, %d merges in %.1fs" % (len(id_to_tok), len(merges), time.time() - t))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(id_to_tok, merges), f, ensure_ascii=False, indent=2)
        f.write("\n")
    # round-trip self check on a slice of the corpus
    tok = Tokenizer(args.out)
    sample = text[:200000]
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample, "round trip failed"
    print("wrote %s; sample: %.3f bytes/token" % (args.out, len(sample.encode("utf-8")) / len(ids)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
