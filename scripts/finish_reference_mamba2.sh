#!/bin/sh
# After the Mamba-2 training run: export the checkpoint, evaluate it in both windowings, outlier
# report, golden fixtures, model card.
# Usage: scripts/finish_reference_mamba2.sh <train-out-dir> <probe-out-dir> <model-dir> [<load-log>]
#   e.g. scripts/finish_reference_mamba2.sh out/train/m2_main out/train/m2_probe models/mamba2-ref-d256-l6
set -eu
cd "$(dirname "$0")/.."
TRAIN=${1:?train dir}
PROBE=${2:?probe dir}
MODEL=${3:?model dir}
LOAD=${4:-}
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
$PY scripts/export_hf.py --ckpt "$TRAIN/ckpt.pt" --tok models/mamba-ref-d256-l6/tokenizer.json --out "$MODEL"
$PY scripts/eval_reference.py --model "$MODEL" --out "$TRAIN/eval_windows.json"
$PY scripts/outlier_report.py --model "$MODEL"
$PY scripts/make_golden_mamba2.py --model "$MODEL"
$PY scripts/write_model_card_mamba2.py --model "$MODEL" --train "$TRAIN" --probe "$PROBE" \
    --eval "$TRAIN/eval_windows.json" --corpus out/corpus ${LOAD:+--load-log "$LOAD"}
