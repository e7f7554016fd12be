#!/usr/bin/env bash
# The README's first command: install dependencies, build, and run the main job on the embedded
# reference model: generate text in float32, quantize it with the Quamba recipe (W8A8), and
# generate again with the int8 kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-$(ls -d models/*/ | head -n 1)}
MODEL=${MODEL%/}
CALIB=${CALIB:-../shared/data/calibration/pg1342-0.txt}
PROMPT=${PROMPT:-"The Lord is my shepherd"}
scripts/install_deps.sh
scripts/build.sh build
echo "== float32: $MODEL"
build/quamba generate -m "$MODEL" -p "$PROMPT" -n 48 --temp 0
if [ -f "$CALIB" ]; then
  echo "== quantize (recipe quamba, calibration $CALIB)"
  mkdir -p out
  build/quamba quantize -m "$MODEL" -o out/demo-w8a8 --recipe quamba --calib "$CALIB" \
    --calib-samples 64 --force
  echo "== W8A8: out/demo-w8a8"
  build/quamba generate -m out/demo-w8a8 -p "$PROMPT" -n 48 --temp 0
else
  echo "(no calibration text at $CALIB: set CALIB=FILE to quantize)"
fi
