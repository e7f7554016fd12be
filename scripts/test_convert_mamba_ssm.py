#!/usr/bin/python3
"""Round-trip test of scripts/convert_mamba_ssm.py on the project's reference models.

For each reference model (HF dialect, models/<name>): write a mamba_ssm-style checkpoint
directory (config.json in the mamba_ssm dialect, pytorch_model.bin = torch.save of the state
dict with mamba_ssm names, i.e. backbone.embedding.weight instead of backbone.embeddings.weight,
and lm_head.weight sharing the embedding's storage as a tied mamba_ssm model saves it), run the
converter as a subprocess, and check that model.safetensors holds exactly the mamba_ssm names
(tied lm_head dropped) with values bit-identical to the reference model's tensors, and that
config.json was copied byte for byte. Then check that each unsupported input is refused with
exit status 2, one stderr line "convert_mamba_ssm: cannot convert: ...", and no output written.

Usage: scripts/test_convert_mamba_ssm.py [--models models/mamba-ref-d256-l6 models/mamba2-ref-d256-l6]
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_hf import load_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
CONVERTER = os.path.join(HERE, "convert_mamba_ssm.py")


def mamba_ssm_config(hf):
    """mamba_ssm dialect config of an HF-dialect reference model config."""
    c = {"d_model": hf["hidden_size"], "d_intermediate": 0, "n_layer": hf["num_hidden_layers"],
         "vocab_size": hf["vocab_size"], "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True,
         "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 16, "tie_embeddings": True}
    if hf["model_type"] == "mamba2":
        c["ssm_cfg"] = {"layer": "Mamba2", "d_state": hf["state_size"], "headdim": hf["head_dim"],
                        "ngroups": hf["n_groups"], "chunk_size": hf["chunk_size"], "expand": hf["expand"],
                        "d_conv": hf["conv_kernel"]}
    else:
        c["ssm_cfg"] = {"d_state": hf["state_size"], "d_conv": hf["conv_kernel"], "expand": hf["expand"],
                        "dt_rank": hf["time_step_rank"]}
    return c


def write_ckpt(d, cfg, sd):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))


def run(in_dir, out_dir):
    p = subprocess.run([sys.executable, CONVERTER, in_dir, out_dir], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr


def expect_refusal(label, in_dir, tmp):
    out = os.path.join(tmp, "refused_" + label)
    rc, so, se = run(in_dir, out)
    lines = se.strip().splitlines()
    ok = rc == 2 and len(lines) == 1 and lines[0].startswith("convert_mamba_ssm: cannot convert: ") \
        and not os.path.exists(os.path.join(out, "model.safetensors"))
    print("  refuse %-22s %s  %s" % (label, "ok" if ok else "FAILED (rc %d)" % rc, lines[-1] if lines else ""))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[os.path.join(ROOT, "models", "mamba-ref-d256-l6"),
                                                    os.path.join(ROOT, "models", "mamba2-ref-d256-l6")])
    args = ap.parse_args()
    torch.set_num_threads(2)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for mdir in args.models:
            name = os.path.basename(os.path.normpath(mdir))
            hf_cfg = json.load(open(os.path.join(mdir, "config.json")))
            hf_sd, _ = load_safetensors(os.path.join(mdir, "model.safetensors"))
            sd = {("backbone.embedding.weight" if k == "backbone.embeddings.weight" else k): v.clone()
                  for k, v in hf_sd.items()}
            sd["lm_head.weight"] = sd["backbone.embedding.weight"]          # tied: shared storage
            cfg = mamba_ssm_config(hf_cfg)
            src = os.path.join(tmp, name + "_ssm")
            write_ckpt(src, cfg, sd)
            dst = os.path.join(tmp, name + "_out")
            rc, so, se = run(src, dst)
            print("%s: rc %d: %s%s" % (name, rc, so.strip(), se.strip()))
            if rc != 0:
                ok = False
                continue
            got, meta = load_safetensors(os.path.join(dst, "model.safetensors"))
            want = {k: v for k, v in sd.items() if k != "lm_head.weight"}
            same_names = sorted(got) == sorted(want)
            same_vals = same_names and all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k]) for k in want)
            same_cfg = open(os.path.join(src, "config.json"), "rb").read() == \
                open(os.path.join(dst, "config.json"), "rb").read()
            raw = open(os.path.join(dst, "model.safetensors"), "rb").read()
            hdr = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
            names_in_file = [k for k in hdr if k != "__metadata__"]
            sorted_names = names_in_file == sorted(names_in_file)
            print("  names identical %s, values bit-identical %s, config copied %s, header sorted %s, %d tensors"
                  % (same_names, same_vals, same_cfg, sorted_names, len(got)))
            ok &= same_names and same_vals and same_cfg and sorted_names
            # refusals (each on a modified copy of this checkpoint)
            cases = []
            c = dict(cfg, attn_layer_idx=[1])
            cases.append(("hybrid-attention", c, sd))
            c = dict(cfg, d_intermediate=1024)
            cases.append(("mlp-blocks", c, sd))
            c = json.loads(json.dumps(cfg))
            c["ssm_cfg"]["d_state"] = 2 * c["ssm_cfg"]["d_state"]
            cases.append(("shape-mismatch", c, sd))
            s2 = dict(sd)
            s2["backbone.layers.0.mixer.in_proj.bias"] = torch.zeros(sd["backbone.layers.0.mixer.in_proj.weight"].shape[0])
            cases.append(("unknown-tensor", cfg, s2))
            s3 = dict(sd)
            del s3["backbone.norm_f.weight"]
            cases.append(("missing-tensor", cfg, s3))
            s4 = dict(sd)
            s4["lm_head.weight"] = sd["backbone.embedding.weight"] + 1
            cases.append(("tied-but-different", cfg, s4))
            cases.append(("hf-dialect-config", hf_cfg, sd))
            if cfg["ssm_cfg"].get("layer") == "Mamba2":
                c = json.loads(json.dumps(cfg))
                c["ssm_cfg"]["D_has_hdim"] = True
                cases.append(("D_has_hdim", c, sd))
            s5 = dict(sd)
            s5["backbone.norm_f.weight"] = s5["backbone.norm_f.weight"].to(torch.int32)
            cases.append(("int-tensor", cfg, s5))
            for label, c, s in cases:
                d = os.path.join(tmp, "%s_%s" % (name, label))
                write_ckpt(d, c, s)
                ok &= expect_refusal(label, d, tmp)
            with open(os.path.join(tmp, "junk.bin"), "wb") as f:
                f.write(b"not a pickle")
            d = os.path.join(tmp, name + "_junk")
            os.makedirs(d, exist_ok=True)
            json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
            os.replace(os.path.join(tmp, "junk.bin"), os.path.join(d, "pytorch_model.bin"))
            ok &= expect_refusal("not-a-pickle", d, tmp)
            ok &= expect_refusal("no-checkpoint", mdir, tmp)
    print("convert_mamba_ssm round trip: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
