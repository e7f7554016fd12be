#!/usr/bin/python3
"""Converts a Hugging Face-layout Mamba-1 or Mamba-2 checkpoint directory to a llama.cpp GGUF file.

For side-by-side runs of llama.cpp (built outside this repository) on our checkpoints. The GGUF
file is written with llama.cpp's own Python package `gguf-py`, imported from the path given by
--gguf-py (e.g. a llama.cpp checkout's `gguf-py/`); everything else is numpy and the standard
library: no torch, no transformers, no safetensors package.

Input directory:
  config.json        HF MambaConfig / Mamba2Config keys, or mamba_ssm keys (d_model, n_layer, ssm_cfg)
  model.safetensors  F32 / F16 / BF16 (or model.safetensors.index.json with shards)
  tokenizer.json     byte-level BPE (tokens, token types, merges, bos/eos go into the GGUF)

Output (llama.cpp arch `mamba` or `mamba2`, tensor names and metadata keys of gguf-py):
  token_embd.weight, output_norm.weight, output.weight (only when lm_head is untied),
  blk.N.{attn_norm.weight, ssm_in.weight, ssm_conv1d.{weight,bias}, ssm_out.weight, ssm_a, ssm_d,
         Mamba-1: ssm_x.weight, ssm_dt.{weight,bias}; Mamba-2: ssm_dt.bias, ssm_norm.weight}
  A is stored as -exp(A_log), as llama.cpp's convert_hf_to_gguf.py does; conv1d weights are
  squeezed to [channels, d_conv]; Mamba-2 A and D are [H, 1] and the gated-norm weight is
  [n_groups, d_inner / n_groups] (llama.cpp normalises per group, like mamba_ssm).
  --outtype f16 stores the 2-D matrices (embedding, lm_head, in/x/dt/out projections) as F16;
  1-D tensors, norms, conv1d, A and D stay F32 (llama.cpp's rule).

Usage:
  /usr/bin/python3 scripts/gguf_from_hf.py MODEL_DIR -o OUT.gguf --gguf-py LLAMA_CPP/gguf-py [--outtype f16]

Tokenizer notes: llama.cpp re-implements the pre-tokenizer by name. A ByteLevel pre-tokenizer with
use_regex=true is GPT-2's regex, llama.cpp's "gpt-2" pre-tokenizer (the default here; --pre
overrides). llama.cpp applies no normalizer (a warning is printed if tokenizer.json has one, e.g.
GPT-NeoX's NFC). No BOS is added by default (HF's GPT-NeoX-style tokenizers add none; quamba
adds none): pass --add-bos to change that. A tokenizer.json without merges gets one inert
placeholder merge (llama.cpp refuses a BPE vocabulary without a merges array).

Checked against llama.cpp 81ff7abe5 (2026-07-08) for Mamba-1 and Mamba-2: logits within 5e-6 of
our float64 reference, identical tokenization and greedy tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import types
from pathlib import Path

import numpy as np


# ----------------------------------------------------------------------------------------------
# gguf-py import


def import_gguf(path: str):
    """Imports llama.cpp's gguf-py from `path`. Optional third-party imports of gguf-py that this
    script does not use (sentencepiece for SentencePiece vocabularies, yaml for model cards) are
    replaced by empty stand-ins when they are not installed."""
    p = Path(path)
    if not (p / "gguf" / "__init__.py").is_file():
        sys.exit(f"gguf_from_hf: {p} is not a gguf-py directory (no gguf/__init__.py)")
    sys.path.insert(0, str(p.resolve()))
    for _ in range(4):
        try:
            import gguf  # noqa: PLC0415
            return gguf
        except ModuleNotFoundError as e:
            if e.name not in ("sentencepiece", "yaml") or isinstance(sys.modules.get(e.name), types.ModuleType):
                raise
            stub = types.ModuleType(e.name)
            if e.name == "sentencepiece":
                class SentencePieceProcessor:  # never called by this script
                    def __init__(self, *a, **k):
                        raise RuntimeError("sentencepiece is not installed")
                stub.SentencePieceProcessor = SentencePieceProcessor
            else:
                def _unavailable(*a, **k):
                    raise RuntimeError("yaml is not installed")
                stub.safe_load = _unavailable
            sys.modules[e.name] = stub
            for m in [m for m in sys.modules if m == "gguf" or m.startswith("gguf.")]:
                del sys.modules[m]
    sys.exit("gguf_from_hf: could not import gguf-py")


# ----------------------------------------------------------------------------------------------
# safetensors, read with numpy


_ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F64": np.dtype("<f8")}


class SafeTensors:
    """Header parsed by hand (8-byte little-endian length, JSON), data memory-mapped."""

    def __init__(self, model_dir: Path):
        index = model_dir / "model.safetensors.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        elif (model_dir / "model.safetensors").is_file():
            files = ["model.safetensors"]
        else:
            sys.exit(f"gguf_from_hf: no model.safetensors in {model_dir}")
        self.entries: dict[str, tuple[np.memmap, str, list[int]]] = {}
        for fname in files:
            path = model_dir / fname
            with open(path, "rb") as f:
                (hlen,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(hlen))
            size = path.stat().st_size
            data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + hlen, shape=(size - 8 - hlen,))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                dt = info["dtype"]
                if dt not in _ST_DTYPES:
                    sys.exit(f"gguf_from_hf: {fname}: tensor {name} has unsupported dtype {dt}")
                begin, end = info["data_offsets"]
                n = int(np.prod(info["shape"], dtype=np.int64))
                if end - begin != n * _ST_DTYPES[dt].itemsize or end > data.shape[0]:
                    sys.exit(f"gguf_from_hf: {fname}: tensor {name}: bad data_offsets")
                if name in self.entries:
                    sys.exit(f"gguf_from_hf: tensor {name} appears twice")
                self.entries[name] = (data[begin:end], dt, list(info["shape"]))

    def names(self):
        return list(self.entries)

    def shape(self, name: str) -> list[int]:
        return self.entries[name][2]

    def f32(self, name: str) -> np.ndarray:
        raw, dt, shape = self.entries[name]
        a = raw.view(_ST_DTYPES[dt]).reshape(shape)
        if dt == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        if dt == "F32":
            return a.view(np.float32)  # memory-mapped, no copy
        return a.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# config


def _first(cfg: dict, *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


class Hparams:
    pass


def read_config(model_dir: Path, st: SafeTensors) -> Hparams:
    cfg = json.loads((model_dir / "config.json").read_text())
    ssm_cfg = cfg.get("ssm_cfg") or {}
    hp = Hparams()
    names = set(st.names())
    model_type = cfg.get("model_type", "")
    is_m2 = (model_type == "mamba2" or ssm_cfg.get("layer") == "Mamba2"
             or any(n.endswith(".mixer.dt_bias") for n in names))
    if model_type not in ("", "mamba", "mamba2"):
        sys.exit(f"gguf_from_hf: model_type {model_type!r} is not supported (mamba, mamba2)")
    if cfg.get("d_intermediate", 0) or cfg.get("attn_layer_idx"):
        sys.exit("gguf_from_hf: MLP or attention layers (d_intermediate, attn_layer_idx) are not supported")
    if cfg.get("rms_norm") is False:
        sys.exit("gguf_from_hf: rms_norm=false (LayerNorm) is not supported by llama.cpp's Mamba")
    if cfg.get("use_bias"):
        sys.exit("gguf_from_hf: use_bias=true (in/out projection biases) is not supported by llama.cpp")
    hp.arch = "mamba2" if is_m2 else "mamba"

    emb = "backbone.embeddings.weight" if "backbone.embeddings.weight" in names else "backbone.embedding.weight"
    if emb not in names:
        sys.exit("gguf_from_hf: no backbone.embeddings.weight / backbone.embedding.weight")
    hp.emb_name = emb
    hp.n_vocab, hp.d_model = st.shape(emb)
    hp.n_layer = 0
    while f"backbone.layers.{hp.n_layer}.mixer.in_proj.weight" in names:
        hp.n_layer += 1
    n_layer_cfg = _first(cfg, "num_hidden_layers", "n_layer")
    if hp.n_layer == 0 or (n_layer_cfg is not None and n_layer_cfg != hp.n_layer):
        sys.exit(f"gguf_from_hf: {hp.n_layer} layers in model.safetensors, config says {n_layer_cfg}")
    d_model_cfg = _first(cfg, "hidden_size", "d_model")
    if d_model_cfg is not None and d_model_cfg != hp.d_model:
        sys.exit(f"gguf_from_hf: embedding width {hp.d_model}, config says {d_model_cfg}")
    hp.eps = float(_first(cfg, "layer_norm_epsilon", "rms_norm_eps", "norm_epsilon", default=1e-5))
    hp.tied = bool(_first(cfg, "tie_word_embeddings", "tie_embeddings", default=True))
    hp.vocab_size_cfg = cfg.get("vocab_size")
    hp.bos = cfg.get("bos_token_id")
    hp.eos = cfg.get("eos_token_id")
    hp.pad = cfg.get("pad_token_id")

    L0 = "backbone.layers.0.mixer."
    conv_shape = st.shape(L0 + "conv1d.weight")
    if len(conv_shape) != 3 or conv_shape[1] != 1:
        sys.exit(f"gguf_from_hf: conv1d.weight has shape {conv_shape}, expected [channels, 1, d_conv]")
    hp.d_conv = conv_shape[2]
    if L0 + "conv1d.bias" not in names:
        sys.exit("gguf_from_hf: use_conv_bias=false is not supported by llama.cpp (it needs ssm_conv1d.bias)")

    if hp.arch == "mamba":
        hp.d_inner = st.shape(L0 + "in_proj.weight")[0] // 2
        hp.d_state = st.shape(L0 + "A_log")[1]
        hp.dt_rank = st.shape(L0 + "dt_proj.weight")[1]
        checks = {
            "intermediate_size": (_first(cfg, "intermediate_size"), hp.d_inner),
            "state_size/d_state": (_first(cfg, "state_size", default=ssm_cfg.get("d_state")), hp.d_state),
            "conv_kernel/d_conv": (_first(cfg, "conv_kernel", default=ssm_cfg.get("d_conv")), hp.d_conv),
        }
        tsr = _first(cfg, "time_step_rank", default=ssm_cfg.get("dt_rank"))
        if tsr == "auto":
            tsr = math.ceil(hp.d_model / 16)
        checks["time_step_rank/dt_rank"] = (tsr, hp.dt_rank)
        if st.shape(L0 + "x_proj.weight") != [hp.dt_rank + 2 * hp.d_state, hp.d_inner]:
            sys.exit(f"gguf_from_hf: x_proj.weight shape {st.shape(L0 + 'x_proj.weight')} inconsistent")
    else:
        hp.d_inner = st.shape(L0 + "out_proj.weight")[1]
        hp.n_head = st.shape(L0 + "A_log")[0]
        hp.d_state = int(_first(cfg, "state_size", default=ssm_cfg.get("d_state", 128)))
        hp.n_group = int(_first(cfg, "n_groups", default=ssm_cfg.get("ngroups", 1)))
        head_dim = _first(cfg, "head_dim", default=ssm_cfg.get("headdim", 64))
        conv_dim = hp.d_inner + 2 * hp.n_group * hp.d_state
        d_in_proj = 2 * hp.d_inner + 2 * hp.n_group * hp.d_state + hp.n_head
        checks = {
            "conv channels (d_inner + 2*n_groups*state_size)": (conv_dim, conv_shape[0]),
            "in_proj rows (2*d_inner + 2*n_groups*state_size + num_heads)": (d_in_proj, st.shape(L0 + "in_proj.weight")[0]),
            "num_heads": (_first(cfg, "num_heads"), hp.n_head),
            "head_dim * num_heads": (head_dim * hp.n_head if head_dim else None, hp.d_inner),
            "conv_kernel/d_conv": (_first(cfg, "conv_kernel", default=ssm_cfg.get("d_conv")), hp.d_conv),
        }
        if cfg.get("ssm_cfg", {}).get("D_has_hdim") or st.shape(L0 + "D") != [hp.n_head]:
            sys.exit("gguf_from_hf: D must have one value per head (D_has_hdim is not supported)")
        if hp.d_inner % hp.n_group or hp.d_inner % hp.n_head:
            sys.exit("gguf_from_hf: d_inner must be a multiple of n_groups and of num_heads")
        if st.shape(L0 + "norm.weight") != [hp.d_inner]:
            sys.exit("gguf_from_hf: mixer.norm.weight missing or not [d_inner] (rmsnorm=false is not supported)")
        expand = _first(cfg, "expand", default=ssm_cfg.get("expand", 2))
        checks["expand * hidden_size"] = (expand * hp.d_model, hp.d_inner)
    for what, (cfg_val, real) in checks.items():
        if cfg_val is not None and cfg_val != real:
            sys.exit(f"gguf_from_hf: config {what} = {cfg_val}, tensors say {real}")
    if hp.d_inner != 2 * hp.d_model:
        sys.exit(f"gguf_from_hf: d_inner {hp.d_inner} != 2 * d_model {hp.d_model}; llama.cpp supports expand = 2 only")
    return hp


# ----------------------------------------------------------------------------------------------
# tokenizer


def read_tokenizer(model_dir: Path, hp: Hparams, args, gguf):
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        sys.exit(f"gguf_from_hf: no tokenizer.json in {model_dir} (llama.cpp needs a vocabulary)")
    tj = json.loads(path.read_text(encoding="utf-8"))
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        sys.exit(f"gguf_from_hf: tokenizer model {model.get('type')!r} is not BPE")
    warnings = []

    pre = tj.get("pre_tokenizer") or {}
    pre_list = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    byte_level = [p for p in pre_list if p.get("type") == "ByteLevel"]
    if len(pre_list) != 1 or not byte_level or not byte_level[0].get("use_regex", True):
        warnings.append(f"pre_tokenizer {json.dumps(pre)[:200]} is not a plain ByteLevel(use_regex=true); "
                        f"llama.cpp will use the '{args.pre}' pre-tokenizer, tokenization may differ")
    elif byte_level[0].get("add_prefix_space"):
        warnings.append("ByteLevel add_prefix_space=true: llama.cpp's BPE adds no prefix space")
    if tj.get("normalizer"):
        warnings.append(f"normalizer {json.dumps(tj['normalizer'])[:120]} is not applied by llama.cpp")
    if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        warnings.append("BPE byte_fallback / subword prefix / word suffix are not byte-level GPT-2 style")

    vocab: dict[str, int] = model["vocab"]
    added = {t["id"]: t for t in tj.get("added_tokens", [])}
    n_ids = max([*vocab.values(), *added.keys()]) + 1
    if n_ids > hp.n_vocab:
        sys.exit(f"gguf_from_hf: tokenizer has ids up to {n_ids - 1}, the embedding only {hp.n_vocab} rows")
    tokens = [f"[PAD{i}]" for i in range(hp.n_vocab)]
    types_ = [gguf.TokenType.UNUSED] * hp.n_vocab
    for text, i in vocab.items():
        tokens[i] = text
        types_[i] = gguf.TokenType.NORMAL
    for i, t in added.items():
        tokens[i] = t["content"]
        types_[i] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    if len(set(tokens)) != len(tokens):
        sys.exit("gguf_from_hf: duplicate token strings in tokenizer.json")

    merges = []
    for m in model.get("merges", []):
        # "left right" strings, or [left, right] pairs (newer tokenizers); byte-level tokens have no space
        pair = m if isinstance(m, list) else m.split(" ")
        if len(pair) != 2 or not pair[0] or not pair[1] or " " in pair[0] or " " in pair[1]:
            sys.exit(f"gguf_from_hf: merge {m!r} cannot be written in llama.cpp's 'left right' form")
        merges.append(f"{pair[0]} {pair[1]}")
    if not merges:
        # llama.cpp refuses a BPE vocabulary without a merges array and gguf-py cannot write an
        # empty one: one merge of two multi-character strings, which never occur as symbols when
        # there are no other merges, changes nothing.
        merges = ["<|no-merges|> <|no-merges|>"]
        warnings.append("tokenizer.json has no merges: wrote one inert placeholder merge")

    def special_id(cfg_id, names):
        if cfg_id is not None:
            return int(cfg_id)
        for n in names:
            for i, t in added.items():
                if t["content"] == n:
                    return i
        return None

    ids = {
        "bos": special_id(hp.bos, ["<|endoftext|>", "<s>", "<|begin_of_text|>"]),
        "eos": special_id(hp.eos, ["<|endoftext|>", "</s>", "<|end_of_text|>"]),
        "pad": hp.pad,
        "unk": vocab.get(model["unk_token"]) if model.get("unk_token") else None,
    }
    return tokens, types_, merges, ids, warnings


# ----------------------------------------------------------------------------------------------
# tensors


def tensor_plan(hp: Hparams, st: SafeTensors, gguf):
    """Returns [(gguf_name, source_name, transform or None, output shape)] in file order."""
    T = gguf.MODEL_TENSOR
    arch_enum = gguf.MODEL_ARCH.MAMBA2 if hp.arch == "mamba2" else gguf.MODEL_ARCH.MAMBA
    allowed = set(gguf.MODEL_TENSORS[arch_enum])

    def nm(t, bid=None, suffix=".weight"):
        if t not in allowed:
            raise KeyError(f"gguf-py lists no {t.name} tensor for {hp.arch}")
        return gguf.TENSOR_NAMES[t].format(bid=bid) + suffix

    names = set(st.names())

    def out_shape(src, fn):
        shape = list(st.shape(src))
        if fn is squeeze:
            return [shape[0], shape[2]]
        if fn is neg_exp or fn is None:
            return shape
        if fn is col or fn is col_neg_exp:
            return [shape[0], 1]
        if fn is group_rows:
            return [hp.n_group, shape[0] // hp.n_group]
        raise AssertionError(src)

    plan = [(nm(T.TOKEN_EMBD), hp.emb_name, None)]
    def squeeze(a):  # conv1d [C, 1, K] -> [C, K] (ggml {K, C})
        return a.reshape(a.shape[0], a.shape[2])

    def neg_exp(a):  # A = -exp(A_log), as llama.cpp's converter stores it
        return -np.exp(a.astype(np.float32))

    def col(a):  # Mamba-2 [H] -> [H, 1] (ggml {1, H}), llama.cpp's shape for A and D
        return a.reshape(a.shape[0], 1)

    def col_neg_exp(a):
        return col(neg_exp(a))

    def group_rows(a):  # Mamba-2 gated-norm weight [d_inner] -> [G, d_inner / G]
        return a.reshape(hp.n_group, a.shape[0] // hp.n_group)

    for i in range(hp.n_layer):
        p = f"backbone.layers.{i}."
        m = p + "mixer."
        plan.append((nm(T.ATTN_NORM, i), p + "norm.weight", None))
        plan.append((nm(T.SSM_IN, i), m + "in_proj.weight", None))
        plan.append((nm(T.SSM_CONV1D, i), m + "conv1d.weight", squeeze))
        plan.append((nm(T.SSM_CONV1D, i, ".bias"), m + "conv1d.bias", None))
        if hp.arch == "mamba":
            plan.append((nm(T.SSM_X, i), m + "x_proj.weight", None))
            plan.append((nm(T.SSM_DT, i), m + "dt_proj.weight", None))
            plan.append((nm(T.SSM_DT, i, ".bias"), m + "dt_proj.bias", None))
            plan.append((nm(T.SSM_A, i, ""), m + "A_log", neg_exp))
            plan.append((nm(T.SSM_D, i, ""), m + "D", None))
        else:
            plan.append((nm(T.SSM_DT, i, ".bias"), m + "dt_bias", None))
            plan.append((nm(T.SSM_A, i, ""), m + "A_log", col_neg_exp))
            plan.append((nm(T.SSM_D, i, ""), m + "D", col))
            plan.append((nm(T.SSM_NORM, i), m + "norm.weight", group_rows))
        plan.append((nm(T.SSM_OUT, i), m + "out_proj.weight", None))
    plan.append((nm(T.OUTPUT_NORM), "backbone.norm_f.weight", None))

    if "lm_head.weight" in names:
        if st.shape("lm_head.weight") != st.shape(hp.emb_name):
            sys.exit("gguf_from_hf: lm_head.weight and the embedding differ in shape")
        if not np.array_equal(st.f32("lm_head.weight"), st.f32(hp.emb_name)):
            plan.append((nm(T.OUTPUT), "lm_head.weight", None))
        elif not hp.tied:
            print("gguf_from_hf: lm_head.weight equals the embedding: written once (tied)", file=sys.stderr)
    elif not hp.tied:
        sys.exit("gguf_from_hf: config says untied embeddings but there is no lm_head.weight")

    missing = [src for _, src, _ in plan if src not in names]
    if missing:
        sys.exit(f"gguf_from_hf: missing tensors: {missing[:8]}")
    plan = [(g, src, fn, out_shape(src, fn)) for g, src, fn in plan]
    used = {p[1] for p in plan} | {"lm_head.weight"}
    unused = sorted(n for n in names if n not in used)
    if unused:
        sys.exit(f"gguf_from_hf: tensors this converter does not know: {unused[:8]}")
    return plan


def keep_f32(gguf_name: str, ndim: int) -> bool:
    # llama.cpp's rule (convert_hf_to_gguf.py prepare_tensors): 1-D tensors, norms, conv1d and
    # tensors without a ".weight" suffix (ssm_a, ssm_d) stay F32.
    return (ndim <= 1 or gguf_name.endswith("_norm.weight") or ".ssm_conv1d." in gguf_name
            or not gguf_name.endswith(".weight"))


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path, help="HF-layout Mamba checkpoint directory")
    ap.add_argument("-o", "--outfile", type=Path, required=True, help="output .gguf file")
    ap.add_argument("--gguf-py", required=True, help="path of llama.cpp's gguf-py directory")
    ap.add_argument("--outtype", choices=["f32", "f16"], default="f32",
                    help="f32 (default) or f16 for the 2-D weight matrices")
    ap.add_argument("--pre", default="gpt-2",
                    help="llama.cpp pre-tokenizer name (tokenizer.ggml.pre; default gpt-2 = GPT-2 regex)")
    ap.add_argument("--add-bos", action="store_true", help="let llama.cpp add BOS when it tokenizes")
    ap.add_argument("--name", help="general.name (default: the directory name)")
    args = ap.parse_args(argv)

    gguf = import_gguf(args.gguf_py)
    model_dir = args.model_dir
    if not (model_dir / "config.json").is_file():
        sys.exit(f"gguf_from_hf: no config.json in {model_dir}")
    st = SafeTensors(model_dir)
    hp = read_config(model_dir, st)
    if hp.arch == "mamba2" and not hasattr(gguf.MODEL_ARCH, "MAMBA2"):
        sys.exit("gguf_from_hf: this gguf-py predates Mamba-2 support (no MODEL_ARCH.MAMBA2)")
    tokens, toktypes, merges, ids, warnings = read_tokenizer(model_dir, hp, args, gguf)
    plan = tensor_plan(hp, st, gguf)
    for w in warnings:
        print(f"gguf_from_hf: warning: {w}", file=sys.stderr)

    ftype = gguf.LlamaFileType.MOSTLY_F16 if args.outtype == "f16" else gguf.LlamaFileType.ALL_F32
    w = gguf.GGUFWriter(args.outfile, hp.arch)
    K = gguf.Keys
    w.add_name(args.name or model_dir.resolve().name)
    w.add_file_type(int(ftype))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(2**20)  # recurrent: no limit; the value llama.cpp's converter writes
    w.add_embedding_length(hp.d_model)
    w.add_feed_forward_length(0)  # unused by Mamba, required by the loader
    w.add_head_count(0)           # idem
    w.add_block_count(hp.n_layer)
    w.add_ssm_conv_kernel(hp.d_conv)
    w.add_ssm_inner_size(hp.d_inner)
    w.add_ssm_state_size(hp.d_state)
    if hp.arch == "mamba":
        w.add_ssm_time_step_rank(hp.dt_rank)
        w.add_bool(K.SSM.DT_B_C_RMS.format(arch=hp.arch), False)  # no RMS norm on dt/B/C (Falcon-Mamba has one)
    else:
        w.add_ssm_time_step_rank(hp.n_head)  # llama.cpp's convention for Mamba-2: the number of heads
        w.add_uint32(K.SSM.GROUP_COUNT.format(arch=hp.arch), hp.n_group)
    w.add_layer_norm_rms_eps(hp.eps)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(args.pre)
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in toktypes])
    w.add_token_merges(merges)
    if ids["bos"] is not None:
        w.add_bos_token_id(ids["bos"])
    if ids["eos"] is not None:
        w.add_eos_token_id(ids["eos"])
    if ids["pad"] is not None:
        w.add_pad_token_id(ids["pad"])
    if ids["unk"] is not None:
        w.add_unk_token_id(ids["unk"])
    w.add_add_bos_token(bool(args.add_bos))
    w.add_add_eos_token(False)

    # Tensor infos first, then the data one tensor at a time (memory stays one tensor deep).
    out_dtypes = {}
    for gname, src, fn, shape in plan:
        dt = np.float32 if args.outtype == "f32" or keep_f32(gname, len(shape)) else np.float16
        out_dtypes[gname] = dt
        nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
        w.add_tensor_info(gname, shape, np.dtype(dt), nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = 0
    for gname, src, fn, shape in plan:
        a = st.f32(src)
        if fn is not None:
            a = fn(a)
        assert list(a.shape) == shape, (gname, a.shape, shape)
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            sys.exit(f"gguf_from_hf: {src} has non-finite values")
        if out_dtypes[gname] == np.float16:
            big = float(np.abs(a).max()) if a.size else 0.0
            if big > 65504:
                print(f"gguf_from_hf: warning: {src} max |x| {big:g} overflows F16", file=sys.stderr)
            a = a.astype(np.float16)
        w.write_tensor_data(a)
        total += a.nbytes
    w.close()
    n_out = len(plan)
    print(f"gguf_from_hf: wrote {args.outfile} ({hp.arch}, {hp.n_layer} layers, d_model {hp.d_model}, "
          f"vocab {hp.n_vocab}, {n_out} tensors, {total / 2**20:.1f} MiB of tensor data, {args.outtype}"
          f"{', tied lm_head' if not any(p[0] == 'output.weight' for p in plan) else ', untied lm_head'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
