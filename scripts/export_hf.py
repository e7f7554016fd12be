#!/usr/bin/python3
"""Exports a training checkpoint as a Hugging Face MambaForCausalLM (Mamba-1) or
Mamba2ForCausalLM (Mamba-2, checkpoint args with arch "mamba2") directory.

Writes <out>/config.json (HF MambaConfig keys), <out>/model.safetensors (written by
the small writer below: 8-byte little-endian header length, JSON header with
{"dtype","shape","data_offsets"} per tensor plus "__metadata__": {"format": "pt"},
tensors sorted by name, header padded with spaces to a multiple of 8 bytes, raw
little-endian data), <out>/tokenizer.json (copied) and verifies the round trip.

Usage:
  scripts/export_hf.py --ckpt out/train/main/ckpt.pt --tok out/tokenizer/tokenizer.json \
      --out models/mamba-ref-d384-l8
"""
import os
# OpenMP threads must not busy-wait: on a shared 2-core machine spinning at barriers made
# steps 10-20x slower. libgomp reads this when torch is imported, so it is set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import os
import shutil
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamba_model import MambaArgs, MambaLM  # noqa: E402
from mamba2_model import Mamba2Args, Mamba2LM  # noqa: E402

_DT = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
       torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8"}
_DT_INV = {v: k for k, v in _DT.items()}


def save_safetensors(tensors, path, metadata=None):
    names = sorted(tensors)
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    off = 0
    blobs = []
    for n in names:
        t = tensors[n].detach().contiguous().cpu()
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[n] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + b:base + e]), dtype=_DT_INV[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out, header.get("__metadata__", {})


def hf_config(a: MambaArgs):
    return {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "vocab_size": a.vocab_size,
        "hidden_size": a.d_model,
        "num_hidden_layers": a.n_layer,
        "state_size": a.d_state,
        "expand": a.expand,
        "intermediate_size": a.d_inner,
        "conv_kernel": a.d_conv,
        "time_step_rank": a.dt_rank,
        "time_step_scale": 1.0,
        "time_step_min": a.dt_min,
        "time_step_max": a.dt_max,
        "time_step_floor": a.dt_init_floor,
        "time_step_init_scheme": "random",
        "layer_norm_epsilon": a.norm_eps,
        "use_bias": False,
        "use_conv_bias": True,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "residual_in_fp32": True,
        "rescale_prenorm_residual": False,
        "tie_word_embeddings": True,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def hf_config_mamba2(a: Mamba2Args):
    """HF Mamba2Config keys (quamba2-spec section 7). No time_step_limit: its default (0, inf)
    would be written as the non-standard JSON token Infinity."""
    return {
        "architectures": ["Mamba2ForCausalLM"],
        "model_type": "mamba2",
        "vocab_size": a.vocab_size,
        "hidden_size": a.d_model,
        "num_hidden_layers": a.n_layer,
        "num_heads": a.nheads,
        "head_dim": a.headdim,
        "state_size": a.d_state,
        "n_groups": a.ngroups,
        "expand": a.expand,
        "conv_kernel": a.d_conv,
        "chunk_size": a.chunk_size,
        "layer_norm_epsilon": a.norm_eps,
        "rms_norm": True,
        "residual_in_fp32": True,
        "use_bias": False,
        "use_conv_bias": True,
        "hidden_act": "silu",
        "time_step_min": a.dt_min,
        "time_step_max": a.dt_max,
        "time_step_floor": a.dt_init_floor,
        "rescale_prenorm_residual": False,
        "tie_word_embeddings": True,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def mamba2_args_from_config(cfg):
    a = Mamba2Args(d_model=cfg["hidden_size"], n_layer=cfg["num_hidden_layers"], vocab_size=cfg["vocab_size"],
                   d_state=cfg["state_size"], d_conv=cfg["conv_kernel"], expand=cfg["expand"],
                   headdim=cfg["head_dim"], ngroups=cfg["n_groups"], chunk_size=cfg["chunk_size"],
                   norm_eps=cfg["layer_norm_epsilon"])
    assert a.nheads == cfg["num_heads"], "num_heads * head_dim != expand * hidden_size"
    return a


def model_from_dir(d):
    """Builds MambaLM (or Mamba2LM for model_type "mamba2") from an exported directory
    (config.json + model.safetensors)."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    if cfg.get("model_type") == "mamba2":
        m = Mamba2LM(mamba2_args_from_config(cfg))
        sd, _ = load_safetensors(os.path.join(d, "model.safetensors"))
        m.load_state_dict(sd, strict=True)
        return m
    a = MambaArgs(d_model=cfg["hidden_size"], n_layer=cfg["num_hidden_layers"], vocab_size=cfg["vocab_size"],
                  d_state=cfg["state_size"], d_conv=cfg["conv_kernel"],
                  expand=cfg["intermediate_size"] // cfg["hidden_size"], dt_rank=cfg["time_step_rank"],
                  norm_eps=cfg["layer_norm_epsilon"])
    m = MambaLM(a)
    sd, _ = load_safetensors(os.path.join(d, "model.safetensors"))
    m.load_state_dict(sd, strict=True)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ck = torch.load(args.ckpt, map_location="cpu")
    if ck["args"].get("arch") == "mamba2":
        a = Mamba2Args(**ck["args"])
        model = Mamba2LM(a)
        cfg = hf_config_mamba2(a)
    else:
        a = MambaArgs(**ck["args"])
        model = MambaLM(a)
        cfg = hf_config(a)
    model.load_state_dict(ck["model"])
    sd = {k: v.float() for k, v in model.state_dict().items()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_safetensors(sd, os.path.join(args.out, "model.safetensors"))
    shutil.copyfile(args.tok, os.path.join(args.out, "tokenizer.json"))
    # verify round trip
    m2 = model_from_dir(args.out)
    for k, v in m2.state_dict().items():
        assert torch.equal(v, sd[k]), k
    n = sum(v.numel() for v in sd.values())
    print("exported %d tensors, %d parameters (%.2f MB) to %s" % (len(sd), n,
          os.path.getsize(os.path.join(args.out, "model.safetensors")) / 1e6, args.out))
    for k in sorted(sd):
        print("  %-45s %s" % (k, list(sd[k].shape)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
