#!/bin/sh
# After training: export the checkpoint, outlier report, golden fixtures, model card.
# Usage: scripts/finish_reference.sh <train-out-dir> <model-dir>
#   e.g. scripts/finish_reference.sh out/train/main models/mamba-ref-d256-l6
set -eu
cd "$(dirname "$0")/.."
TRAIN=${1:?train dir}
MODEL=${2:?model dir}
PY=/usr/bin/python3
$PY scripts/export_hf.py --ckpt "$TRAIN/ckpt.pt" --tok out/tokenizer/tokenizer.json --out "$MODEL"
$PY scripts/outlier_report.py --model "$MODEL"
$PY scripts/make_golden.py --model "$MODEL"
$PY scripts/write_model_card.py --model "$MODEL" --train "$TRAIN" \
    --cmp-bytes out/train/cmp_bytes --cmp-bpe out/train/cmp_bpe --corpus out/corpus
