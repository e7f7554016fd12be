#!/usr/bin/python3
"""Converts an official state-spaces mamba_ssm checkpoint directory (config.json +
pytorch_model.bin, Mamba-1 or Mamba-2) into model.safetensors with the SAME tensor names
(backbone.embedding.weight, backbone.layers.{i}.mixer.*, backbone.norm_f.weight, lm_head.weight):
the C++ loader reads mamba_ssm names and the mamba_ssm config dialect (quamba2-spec.md 1.2/1.3).
config.json is copied unchanged.

  scripts/convert_mamba_ssm.py IN_DIR OUT_DIR [--dtype f32|keep] [--keep-tied-lm-head]

* Loads the pickle with Debian's python3-torch, torch.load(weights_only=True) (no code from the
  pickle is run; --unsafe-pickle lifts that for old pickles that need it).
* Tensors are written F32 (default; lossless from F16/BF16) or in their stored dtype (--dtype keep),
  contiguous, little-endian, sorted by name, by export_hf.save_safetensors.
* lm_head.weight: mamba_ssm saves it even when tied (tie_embeddings, default true). When the config
  says tied and lm_head.weight equals backbone.embedding.weight bit for bit, it is not written
  (the loader ties it, as for the HF exports); --keep-tied-lm-head writes it anyway.
* Checks before writing: the config is the mamba_ssm dialect; layer type Mamba1/Mamba2; every
  tensor name is one the engine knows, every expected tensor is there, every shape matches the
  config (mixer defaults filled in as mamba_ssm does, vocab padded to pad_vocab_size_multiple).
  Anything else is refused with one line on stderr, "convert_mamba_ssm: cannot convert: ...",
  and exit status 2; nothing is written then.
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_hf import load_safetensors, save_safetensors  # noqa: E402


class Refuse(Exception):
    pass


MAMBA1_DEFAULTS = {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "conv_bias": True, "bias": False}
MAMBA2_DEFAULTS = {"d_state": 128, "d_conv": 4, "expand": 2, "headdim": 64, "d_ssm": None, "ngroups": 1,
                   "D_has_hdim": False, "rmsnorm": True, "norm_before_gate": False, "conv_bias": True,
                   "bias": False, "chunk_size": 256}


def expected_shapes(cfg):
    """{name: shape} the checkpoint must hold (lm_head.weight included), from a mamba_ssm config."""
    for k in ("d_model", "n_layer", "vocab_size"):
        if k not in cfg:
            raise Refuse("config.json has no '%s': not the mamba_ssm dialect (model_type %r; an HF checkpoint "
                         "is already safetensors)" % (k, cfg.get("model_type")))
    if cfg.get("d_intermediate", 0):
        raise Refuse("d_intermediate = %s: MLP blocks are not supported" % cfg["d_intermediate"])
    if cfg.get("attn_layer_idx"):
        raise Refuse("attn_layer_idx = %s: hybrid attention layers are not supported" % cfg["attn_layer_idx"])
    if not cfg.get("rms_norm", True):
        raise Refuse("rms_norm = false: LayerNorm blocks are not supported")
    ssm = dict(cfg.get("ssm_cfg") or {})
    layer = ssm.pop("layer", "Mamba1")
    dm, nl = cfg["d_model"], cfg["n_layer"]
    V, m = cfg["vocab_size"], cfg.get("pad_vocab_size_multiple", 1)
    if V % m:
        V += m - V % m
    shapes = {"backbone.embedding.weight": [V, dm], "backbone.norm_f.weight": [dm], "lm_head.weight": [V, dm]}
    if layer == "Mamba1":
        unknown = sorted(set(ssm) - set(MAMBA1_DEFAULTS))
        if unknown:
            raise Refuse("ssm_cfg keys %s are not understood for Mamba1" % unknown)
        p = dict(MAMBA1_DEFAULTS, **ssm)
        if p["bias"] or not p["conv_bias"]:
            raise Refuse("Mamba1 with bias=%s conv_bias=%s: only bias=false, conv_bias=true is supported"
                         % (p["bias"], p["conv_bias"]))
        di, N, K = p["expand"] * dm, p["d_state"], p["d_conv"]
        R = math.ceil(dm / 16) if p["dt_rank"] == "auto" else p["dt_rank"]
        per = {"norm.weight": [dm], "mixer.in_proj.weight": [2 * di, dm], "mixer.conv1d.weight": [di, 1, K],
               "mixer.conv1d.bias": [di], "mixer.x_proj.weight": [R + 2 * N, di], "mixer.dt_proj.weight": [di, R],
               "mixer.dt_proj.bias": [di], "mixer.A_log": [di, N], "mixer.D": [di], "mixer.out_proj.weight": [dm, di]}
    elif layer == "Mamba2":
        unknown = sorted(set(ssm) - set(MAMBA2_DEFAULTS) - {"A_init_range", "dt_min", "dt_max", "dt_init_floor",
                                                             "dt_limit", "learnable_init_states", "activation",
                                                             "use_mem_eff_path"})
        if unknown:
            raise Refuse("ssm_cfg keys %s are not understood for Mamba2" % unknown)
        p = dict(MAMBA2_DEFAULTS, **ssm)
        di = p["expand"] * dm
        if p["d_ssm"] is not None and p["d_ssm"] != di:
            raise Refuse("Mamba2 d_ssm = %s != d_inner = %d (partial-SSM layers with an MLP part) is not supported"
                         % (p["d_ssm"], di))
        if p["D_has_hdim"]:
            raise Refuse("Mamba2 D_has_hdim = true is not supported")
        if not p["rmsnorm"] or p["norm_before_gate"]:
            raise Refuse("Mamba2 rmsnorm=%s norm_before_gate=%s: only the gated RMSNorm with "
                         "norm_before_gate=false is supported" % (p["rmsnorm"], p["norm_before_gate"]))
        if p["bias"] or not p["conv_bias"]:
            raise Refuse("Mamba2 with bias=%s conv_bias=%s: only bias=false, conv_bias=true is supported"
                         % (p["bias"], p["conv_bias"]))
        if p.get("learnable_init_states"):
            raise Refuse("Mamba2 learnable_init_states = true is not supported")
        if tuple(p.get("dt_limit", (0.0, float("inf")))) != (0.0, float("inf")):
            raise Refuse("Mamba2 dt_limit = %s: only the default (0, inf) is supported" % (p["dt_limit"],))
        N, G, P, K = p["d_state"], p["ngroups"], p["headdim"], p["d_conv"]
        if di % P:
            raise Refuse("d_inner %d is not a multiple of headdim %d" % (di, P))
        H = di // P
        if H % G:
            raise Refuse("nheads %d is not a multiple of ngroups %d" % (H, G))
        conv_dim = di + 2 * G * N
        per = {"norm.weight": [dm], "mixer.in_proj.weight": [2 * di + 2 * G * N + H, dm],
               "mixer.conv1d.weight": [conv_dim, 1, K], "mixer.conv1d.bias": [conv_dim], "mixer.dt_bias": [H],
               "mixer.A_log": [H], "mixer.D": [H], "mixer.norm.weight": [di], "mixer.out_proj.weight": [dm, di]}
    else:
        raise Refuse("ssm_cfg.layer = %r: only Mamba1 and Mamba2 are supported" % layer)
    for i in range(nl):
        for k, s in per.items():
            shapes["backbone.layers.%d.%s" % (i, k)] = s
    return shapes, layer


def load_state_dict(path, unsafe):
    try:
        sd = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except Exception as e:  # noqa: BLE001 - reported in one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Refuse("torch.load(%s) failed: %s%s" % (path, msg, "" if unsafe else
                     " (--unsafe-pickle allows arbitrary pickles, only for files you trust)"))
    if not isinstance(sd, dict) or not all(isinstance(k, str) for k in sd):
        raise Refuse("%s does not hold a flat state dict (name -> tensor)" % path)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise Refuse("%s: entry %r is not a tensor (a training checkpoint, not a model state dict?)" % (path, bad[0]))
    return sd


def convert(in_dir, out_dir, dtype="f32", keep_tied=False, unsafe=False):
    cfg_path = os.path.join(in_dir, "config.json")
    bin_path = os.path.join(in_dir, "pytorch_model.bin")
    if not os.path.isfile(cfg_path):
        raise Refuse("%s: no config.json" % in_dir)
    if not os.path.isfile(bin_path):
        if os.path.isfile(os.path.join(in_dir, "pytorch_model.bin.index.json")):
            raise Refuse("%s: sharded pytorch_model-*.bin checkpoints are not supported" % in_dir)
        raise Refuse("%s: no pytorch_model.bin" % in_dir)
    try:
        cfg = json.load(open(cfg_path))
    except ValueError as e:
        raise Refuse("%s: not valid JSON (%s)" % (cfg_path, e))
    shapes, layer = expected_shapes(cfg)
    sd = load_state_dict(bin_path, unsafe)
    unknown = sorted(set(sd) - set(shapes))
    if unknown:
        raise Refuse("tensor %r is not part of a %s model of this config (%d unknown tensors)"
                     % (unknown[0], layer, len(unknown)))
    missing = sorted(set(shapes) - set(sd) - {"lm_head.weight"})
    if missing:
        raise Refuse("tensor %r is missing (%d missing)" % (missing[0], len(missing)))
    for k, v in sd.items():
        if list(v.shape) != shapes[k]:
            raise Refuse("tensor %s has shape %s, the config implies %s" % (k, list(v.shape), shapes[k]))
        if not v.is_floating_point() or v.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            raise Refuse("tensor %s has dtype %s; only float tensors are supported" % (k, v.dtype))
    tied = cfg.get("tie_embeddings", True)
    out = {}
    for k, v in sd.items():
        if k == "lm_head.weight" and tied and not keep_tied:
            if not torch.equal(v, sd["backbone.embedding.weight"]):
                raise Refuse("config says tie_embeddings but lm_head.weight differs from backbone.embedding.weight")
            continue
        out[k] = (v.float() if dtype == "f32" else v).contiguous()
    if not tied and "lm_head.weight" not in sd:
        raise Refuse("tie_embeddings = false but the checkpoint has no lm_head.weight")
    os.makedirs(out_dir, exist_ok=True)
    st_path = os.path.join(out_dir, "model.safetensors")
    save_safetensors(out, st_path)
    if os.path.abspath(cfg_path) != os.path.abspath(os.path.join(out_dir, "config.json")):
        shutil.copyfile(cfg_path, os.path.join(out_dir, "config.json"))
    back, _ = load_safetensors(st_path)
    assert sorted(back) == sorted(out)
    for k, v in out.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    return out, layer, tied and not keep_tied and "lm_head.weight" in sd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("in_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=["f32", "keep"], default="f32")
    ap.add_argument("--keep-tied-lm-head", action="store_true")
    ap.add_argument("--unsafe-pickle", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    try:
        out, layer, dropped = convert(args.in_dir, args.out_dir, args.dtype, args.keep_tied_lm_head, args.unsafe_pickle)
    except Refuse as e:
        print("convert_mamba_ssm: cannot convert: %s" % e, file=sys.stderr)
        return 2
    n = sum(v.numel() for v in out.values())
    print("convert_mamba_ssm: %s, %d tensors, %d parameters -> %s%s"
          % (layer, len(out), n, os.path.join(args.out_dir, "model.safetensors"),
             " (tied lm_head.weight not stored)" if dropped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
