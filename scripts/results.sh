#!/usr/bin/env bash
# Regenerates docs/RESULTS.md: perplexity, KL divergence vs FP32 and model bytes of the reference
# model under every recipe, on the reference corpus's validation text and WikiText-2 test; then
# the Quamba2 recipes and their ablations on both reference models (Mamba-1, Mamba-2).
# Usage: scripts/results.sh [MODEL_DIR]   (env: CTX=512 CALIB=... SAMPLES=64 THREADS=2 LIMIT=)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$(ls -d models/*/ | head -n 1)}
MODEL=${MODEL%/}
CTX=${CTX:-512}
SAMPLES=${SAMPLES:-64}
THREADS=${THREADS:-2}
CALIB=${CALIB:-../shared/data/calibration/pg1342-0.txt}
WIKI=${WIKI:-../shared/data/wikitext-2-raw/wiki.test.raw}
VALID=${VALID:-out/corpus/valid.txt}
OUT=out/results
mkdir -p "$OUT"
scripts/build.sh build >/dev/null  # incremental: the figures are those of this checkout
if [ ! -f "$VALID" ]; then
  echo "results: building the reference corpus (Debian text packages) for $VALID"
  scripts/setup_python.sh >/dev/null
  /usr/bin/python3 scripts/build_corpus.py
fi
LIMIT_ARGS=()
[ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")
RECIPES=(minmax smoothquant dynamic quamba)
for r in "${RECIPES[@]}"; do  # default --lm-head f16
  build/quamba quantize -m "$MODEL" -o "$OUT/$r" --recipe "$r" --calib "$CALIB" \
    --calib-samples "$SAMPLES" -t "$THREADS" --force -q
done
# lm_head precision: as the source (fp32) and int8 (Quamba2's W8A8 head).
HEADS=(keep int8)
for h in "${HEADS[@]}"; do
  build/quamba quantize -m "$MODEL" -o "$OUT/quamba-head-$h" --recipe quamba --lm-head "$h" \
    --calib "$CALIB" --calib-samples "$SAMPLES" -t "$THREADS" --force -q
done
run_eval() {  # name dir textfile format
  build/quamba eval -m "$2" --ppl "$3" --ppl-format "$4" --ctx "$CTX" --kld-ref "$MODEL" \
    -t "$THREADS" --json "${LIMIT_ARGS[@]}" > "$OUT/$1.json"
}
for set in valid wiki; do
  if [ $set = valid ]; then f=$VALID; fmt=raw; else f=$WIKI; fmt=wikitext; fi
  run_eval "fp32-$set" "$MODEL" "$f" "$fmt"
  for r in "${RECIPES[@]}"; do run_eval "$r-$set" "$OUT/$r" "$f" "$fmt"; done
  for h in "${HEADS[@]}"; do run_eval "quamba-head-$h-$set" "$OUT/quamba-head-$h" "$f" "$fmt"; done
done
# Quamba2 (recipe defaults: 128 samples of 1024 tokens) and its ablations on both reference
# models; the sort-and-cluster, B/C-group and state-scale switches on Mamba-2 only.
Q2_MODELS=(models/mamba-ref-d256-l6 models/mamba2-ref-d256-l6)
# name:recipe:flags
Q2_VARIANTS=("w4a16:quamba2-w4a16:" "w4a16-w4head:quamba2-w4a16:--lm-head w4"
  "w4a16-rtn:quamba2-w4a16:--rtn" "w4a16-nohad:quamba2-w4a16:--no-hadamard"
  "w4a16-rtn-nohad:quamba2-w4a16:--rtn --no-hadamard"
  "w8a8:quamba2-w8a8:" "w8a8-nohad:quamba2-w8a8:--no-hadamard" "w4a8:quamba2-w4a8:"
  "w4a8-int8head:quamba2-w4a8:--lm-head int8" "w4a8-rtn:quamba2-w4a8:--rtn"
  "w4a8-nohad:quamba2-w4a8:--no-hadamard"
  "w8a8-nosort:quamba2-w8a8:--no-sort-cluster" "w8a8-nobc:quamba2-w8a8:--no-bc-groups"
  "w8a8-stategroup:quamba2-w8a8:--state-per-group"
  "w4a8-stategroup:quamba2-w4a8:--state-per-group" "w4a8-w4head:quamba2-w4a8:--lm-head w4"
  "w4ax-2:quamba2-w4ax:--a16-layers 2" "w4ax-3:quamba2-w4ax:--a16-layers 3"
  "w4ax-2-w4head:quamba2-w4ax:--a16-layers 2 --lm-head w4" "quamba:quamba:")
q2_variants() {  # the variants model $1 runs
  for v in "${Q2_VARIANTS[@]}"; do
    # Mamba-1's quamba row is in the first table; the group switches are Mamba-2's.
    case "$1:$v" in *mamba2*) echo "$v" ;; *:*-nosort:*|*:*-nobc:*|*:*-stategroup:*|*:quamba:*) ;; *) echo "$v" ;; esac
  done
}
for m in "${Q2_MODELS[@]}"; do
  mb=$(basename "$m")
  mapfile -t variants < <(q2_variants "$m")
  for v in "${variants[@]}"; do
    name=${v%%:*}; rest=${v#*:}; recipe=${rest%%:*}; flags=${rest#*:}
    # shellcheck disable=SC2086  # flags is a word list
    build/quamba quantize -m "$m" -o "$OUT/$mb-$name" --recipe "$recipe" $flags \
      --calib "$CALIB" -t "$THREADS" --force -q
  done
  for set in valid wiki; do
    if [ $set = valid ]; then f=$VALID; fmt=raw; else f=$WIKI; fmt=wikitext; fi
    build/quamba eval -m "$m" --ppl "$f" --ppl-format "$fmt" --ctx "$CTX" -t "$THREADS" --json \
      "${LIMIT_ARGS[@]}" > "$OUT/$mb-fp32-$set.json"
    for v in "${variants[@]}"; do
      name=${v%%:*}
      build/quamba eval -m "$OUT/$mb-$name" --ppl "$f" --ppl-format "$fmt" --ctx "$CTX" \
        --kld-ref "$m" -t "$THREADS" --json "${LIMIT_ARGS[@]}" > "$OUT/$mb-$name-$set.json"
    done
  done
done
/usr/bin/python3 - "$MODEL" "$CTX" "$SAMPLES" "$CALIB" <<'PY'
import json, os, subprocess, sys
model, ctx, samples, calib = sys.argv[1:5]
out = "out/results"
def load(n):
    with open(f"{out}/{n}.json") as f: return json.load(f)
def size(d):
    return os.path.getsize(os.path.join(d, "model.safetensors"))
commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = ([("fp32", model)] + [(r, f"{out}/{r}") for r in ["minmax", "smoothquant", "dynamic", "quamba"]]
        + [(f"quamba-head-{h}", f"{out}/quamba-head-{h}") for h in ["keep", "int8"]])
label = {"quamba-head-keep": "quamba, lm_head fp32 (keep)", "quamba-head-int8": "quamba, lm_head int8"}
lines = ["# Results", "",
         f"Reference model `{model}`, perplexity over non-overlapping {ctx}-token windows, KL divergence "
         f"and same-top-token rate against the FP32 model on the same windows. Static recipes calibrated on "
         f"{samples} samples of 512 tokens of `{os.path.basename(calib)}`. Embedding and lm_head are "
         f"float16 (`--lm-head f16`, the default) unless the row says otherwise. Regenerate with "
         f"`scripts/results.sh` (commit {commit}).", ""]
for set_name, title in [("valid", "reference corpus validation text"), ("wiki", "WikiText-2 test")]:
    base = load(f"fp32-{set_name}")["ppl"]
    lines += [f"## {title}", "",
              "| recipe | ppl | Δppl vs fp32 | mean KLD | p99 KLD | same top token | model bytes |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, d in rows:
        j = load(f"{name}-{set_name}")
        kld = j.get("kld_mean", 0.0); p99 = j.get("kld_p99", 0.0); top = j.get("same_top", 1.0)
        lines.append(f"| {label.get(name, name)} | {j['ppl']:.3f} | {100*(j['ppl']/base-1):+.2f}% | {kld:.5f} | {p99:.5f} | "
                     f"{100*top:.2f}% | {size(d)/1e6:.1f} MB |")
    lines.append("")
q2 = [("fp32", "FP32"), ("w4a16", "quamba2-w4a16 (GPTQ, Hadamard)"),
      ("w4a16-w4head", "quamba2-w4a16, 4-bit embedding and lm_head (`--lm-head w4`)"),
      ("w4a16-rtn", "  ablation: round-to-nearest (`--rtn`)"),
      ("w4a16-nohad", "  ablation: no Hadamard (`--no-hadamard`)"),
      ("w4a16-rtn-nohad", "  ablation: RTN, no Hadamard"),
      ("w8a8", "quamba2-w8a8 (Hadamard; Mamba-1: percentile x; Mamba-2: sort-and-cluster, int8 state)"),
      ("w8a8-nohad", "  ablation: no Hadamard (`--no-hadamard`)"),
      ("w8a8-nosort", "  ablation: no sort-and-cluster (`--no-sort-cluster`)"),
      ("w8a8-nobc", "  ablation: one B and one C scale (`--no-bc-groups`)"),
      ("w8a8-stategroup", "  variant: state scales per SSD group (`--state-per-group`)"),
      ("w4a8", "quamba2-w4a8 (GPTQ, Hadamard; as W8A8 for activations)"),
      ("w4a8-int8head", "quamba2-w4a8, lm_head int8 (`--lm-head int8`)"),
      ("w4a8-rtn", "  ablation: round-to-nearest (`--rtn`)"),
      ("w4a8-nohad", "  ablation: no Hadamard (`--no-hadamard`)"),
      ("w4a8-stategroup", "  variant: state scales per SSD group (`--state-per-group`)"),
      ("w4a8-w4head", "quamba2-w4a8, 4-bit embedding and W4A8 lm_head (`--lm-head w4`)"),
      ("w4ax-2", "quamba2-w4ax, 2 most sensitive layers W4A16 (`--a16-layers 2`)"),
      ("w4ax-3", "quamba2-w4ax, 3 layers W4A16 (`--a16-layers 3`)"),
      ("w4ax-2-w4head", "quamba2-w4ax `--a16-layers 2 --lm-head w4` (the official W4AX head)"),
      ("quamba", "quamba (v1 baseline: per-tensor scales, percentile x and state, out_proj Hadamard)")]
lines += ["## Quamba2 on both reference models", "",
          "`--recipe quamba2-*` with the recipe defaults: 4-bit in_proj and out_proj by GPTQ (group 128, 128 "
          "samples of 1024 tokens of the calibration text), Mamba-1 x_proj 4-bit round-to-nearest (W4A8: "
          "dt_proj int8); residual-stream and out_proj-input Hadamard rotations; W4A16: float32 "
          "activations; W8A8 and W4A8 calibrated on the same samples: on Mamba-1 Quamba's static per-tensor "
          "int8 activations (x percentile 0.99999 at d_model 256), on Mamba-2 abs-max scales with "
          "sort-and-cluster of x (4 x 4 per SSD group), B / C per SSD group and an int8 SSM state "
          "(docs/quantization.md). "
          "W4AX: the A16 layers chosen by KL divergence on 2 held-out windows of 1024 tokens that follow "
          "the calibration samples (`layer_sensitivity` in each model's quantization_config.json). "
          "Embedding and lm_head float16 unless the row says otherwise. Model bytes include the untied, "
          "rotated lm_head (2.1 MB in float16 at this vocabulary, a third of the file).", ""]
for mdir in ["models/mamba-ref-d256-l6", "models/mamba2-ref-d256-l6"]:
    mb = os.path.basename(mdir)
    for set_name, title in [("valid", "validation text"), ("wiki", "WikiText-2 test")]:
        base = load(f"{mb}-fp32-{set_name}")["ppl"]
        lines += [f"### `{mb}`, {title}", "",
                  "| recipe | ppl | Δppl vs fp32 | mean KLD | p99 KLD | same top token | model bytes |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, lab in q2:
            if not os.path.exists(f"{out}/{mb}-{name}-{set_name}.json"):
                continue  # a recipe this architecture does not run yet
            j = load(f"{mb}-{name}-{set_name}")
            d = mdir if name == "fp32" else f"{out}/{mb}-{name}"
            kld = j.get("kld_mean", 0.0); p99 = j.get("kld_p99", 0.0); top = j.get("same_top", 1.0)
            lines.append(f"| {lab} | {j['ppl']:.3f} | {100*(j['ppl']/base-1):+.2f}% | {kld:.5f} | {p99:.5f} | "
                         f"{100*top:.2f}% | {size(d)/1e6:.1f} MB |")
        lines.append("")
with open("docs/RESULTS.md", "w") as f: f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
