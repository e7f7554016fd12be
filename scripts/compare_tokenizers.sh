#!/bin/sh
# Equal-time comparison: byte-level (vocab 256 + EOT) vs 4096-BPE model of the same
# size, measured in bits per byte on the full validation split.
# Usage: scripts/compare_tokenizers.sh [minutes]   (default 3.5)
set -eu
cd "$(dirname "$0")/.."
MIN=${1:-3.5}
COMMON="--d-model 256 --n-layer 6 --batch 16 --seq-len 256 --lr 2e-3 --warmup 20 --budget-min $MIN --clock cpu --eval-every-sec 100000 --ckpt-every-sec 100000"
/usr/bin/python3 scripts/train_reference.py --tok bytes $COMMON --out out/train/cmp_bytes
/usr/bin/python3 scripts/train_reference.py --tok out/tokenizer/tokenizer.json $COMMON --out out/train/cmp_bpe
