#!/usr/bin/python3
"""Checks gguf_from_hf.py on variants of a reference checkpoint (numpy + gguf-py only):
F16 and BF16 safetensors input, the mamba_ssm config dialect (backbone.embedding.weight),
an untied lm_head, --outtype f16, and the tensor values (A = -exp(A_log), squeezed conv1d).

usage: test_gguf_from_hf.py --gguf-py LLAMA_CPP/gguf-py MODEL_DIR [--llama-logits BIN]
With --llama-logits (tools/llama_logits.cpp built against llama.cpp) it also checks that
llama.cpp's logits with lm_head = 2 * embedding (untied) are twice the tied model's.
"""
import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gguf_from_hf as conv  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--gguf-py", required=True)
ap.add_argument("model_dir", type=Path)
ap.add_argument("--llama-logits")
args = ap.parse_args()
gguf = conv.import_gguf(args.gguf_py)


def write_safetensors(path: Path, tensors: dict, dtype: str):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.asarray(a, np.float32)
        if dtype == "F16":
            b = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            u = a.view(np.uint32)
            b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()  # round to nearest even
        else:
            b = a.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def convert(d: Path, out: Path, *extra):
    rc = conv.main([str(d), "-o", str(out), "--gguf-py", args.gguf_py, *extra])
    assert rc == 0
    return {t.name: (np.array(t.data), t.tensor_type) for t in gguf.GGUFReader(out).tensors}


def bf16_round(a):
    u = np.asarray(a, np.float32).view(np.uint32)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


src = conv.SafeTensors(args.model_dir)
base = {n: np.array(src.f32(n)) for n in src.names()}
cfg = json.loads((args.model_dir / "config.json").read_text())
tmp = Path(tempfile.mkdtemp(prefix="gguf_from_hf_test_"))
failures = 0


def check(what, ok):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    failures += not ok


try:
    ref = convert(args.model_dir, tmp / "ref.gguf")
    emb = "backbone.embeddings.weight"
    check("token_embd == embedding", np.array_equal(ref["token_embd.weight"][0], base[emb]))
    check("no output.weight when tied", "output.weight" not in ref)
    a_log = base["backbone.layers.0.mixer.A_log"]
    a = ref["blk.0.ssm_a"][0]
    check("ssm_a == -exp(A_log)", np.array_equal(a.reshape(-1), -np.exp(a_log).reshape(-1)))
    w = base["backbone.layers.0.mixer.conv1d.weight"]
    check("conv1d squeezed", np.array_equal(ref["blk.0.ssm_conv1d.weight"][0], w[:, 0, :]))

    for dt, rnd in (("F16", lambda x: x.astype(np.float16).astype(np.float32)), ("BF16", bf16_round)):
        d = tmp / dt
        d.mkdir()
        shutil.copy(args.model_dir / "config.json", d)
        shutil.copy(args.model_dir / "tokenizer.json", d)
        write_safetensors(d / "model.safetensors", base, dt)
        t = convert(d, tmp / f"{dt}.gguf")
        check(f"{dt} input: every tensor = rounded source",
              all(np.array_equal(t[k][0], ref_k) for k, ref_k in
                  [("token_embd.weight", rnd(base[emb])),
                   ("blk.1.ssm_in.weight", rnd(base["backbone.layers.1.mixer.in_proj.weight"])),
                   ("output_norm.weight", rnd(base["backbone.norm_f.weight"]))]))

    # mamba_ssm dialect: d_model / n_layer / ssm_cfg, backbone.embedding.weight, explicit lm_head
    d = tmp / "mamba_ssm"
    d.mkdir()
    m1 = cfg.get("model_type", "mamba") == "mamba"
    ssm = {"layer": "Mamba1" if m1 else "Mamba2", "d_state": cfg["state_size"], "d_conv": cfg["conv_kernel"],
           "expand": cfg.get("expand", 2)}
    if not m1:
        ssm.update(headdim=cfg["head_dim"], ngroups=cfg["n_groups"])
    (d / "config.json").write_text(json.dumps({
        "d_model": cfg["hidden_size"], "d_intermediate": 0, "n_layer": cfg["num_hidden_layers"],
        "vocab_size": cfg["vocab_size"], "ssm_cfg": ssm, "rms_norm": True, "residual_in_fp32": True,
        "fused_add_norm": True, "pad_vocab_size_multiple": 8, "tie_embeddings": True}))
    shutil.copy(args.model_dir / "tokenizer.json", d)
    st = {("backbone.embedding.weight" if k == emb else k): v for k, v in base.items()}
    st["lm_head.weight"] = base[emb]
    write_safetensors(d / "model.safetensors", st, "F32")
    t = convert(d, tmp / "mamba_ssm.gguf")
    check("mamba_ssm dialect: same tensors as the HF dialect",
          sorted(t) == sorted(ref) and all(np.array_equal(t[k][0], ref[k][0]) for k in ref))

    # untied lm_head = 2 * embedding
    d = tmp / "untied"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": False}))
    shutil.copy(args.model_dir / "tokenizer.json", d)
    write_safetensors(d / "model.safetensors", {**base, "lm_head.weight": 2 * base[emb]}, "F32")
    t = convert(d, tmp / "untied.gguf")
    check("untied: output.weight = lm_head", np.array_equal(t["output.weight"][0], 2 * base[emb]))

    t = convert(args.model_dir, tmp / "f16.gguf", "--outtype", "f16")
    F16, F32 = gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32
    want = {k: (F16 if k.endswith(".weight") and ref[k][0].ndim == 2 and "conv1d" not in k
                and not k.endswith("_norm.weight") else F32) for k in ref}
    check("--outtype f16: 2-D matrices F16, the rest F32", all(t[k][1] == want[k] for k in ref))

    if args.llama_logits:
        def logits(path):
            out = subprocess.run([args.llama_logits, str(path), "--ids", "1,2,3,4,5", "-n", "1"],
                                 check=True, capture_output=True, text=True).stdout
            return np.array(json.loads(out)["logits_last"])
        l1, l2 = logits(tmp / "ref.gguf"), logits(tmp / "untied.gguf")
        check(f"llama.cpp: untied lm_head 2*E gives 2x logits (max rel err "
              f"{np.abs(l2 - 2 * l1).max() / np.abs(l1).max():.1e})",
              np.abs(l2 - 2 * l1).max() <= 1e-5 * np.abs(l1).max())
finally:
    shutil.rmtree(tmp)
print("all checks passed" if not failures else f"{failures} check(s) FAILED")
sys.exit(1 if failures else 0)
