#!/usr/bin/env bash
# Quamba2's 4-bit recipes against W8A8, FP32 and llama.cpp's Q4_0 / Q8_0 on the same synthetic
# shapes, in one run on an idle machine (docs/PERFORMANCE.md, issue 11's speed targets). For each
# shape: `quamba bench` of FP32, W8A8, W4A8 (4-bit embedding and lm_head) and W4A16, interleaved,
# each decode against a read ceiling taken in the same moment; then llama-bench on Q4_0 and Q8_0
# GGUF files of the same weights. The 4-bit models are quantized with --rtn: the figures are
# about speed, and GPTQ writes the same format.
#
# usage: bench/side_by_side_4bit.sh [SHAPES] [THREADS]
#   SHAPES  comma-separated synth shapes (default mamba-1.4b,mamba2-1.3b)
#   THREADS one thread count (default 2)
# env: LLAMA, WORK, PY, CALIB as bench/side_by_side.sh (docs/llama-cpp.md builds llama.cpp);
#      NGEN decode tokens (default 64), REPS repetitions (default 3)
# Needs about 2 x 5.5 GB of disk per shape for the float checkpoint and its F32 GGUF.
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${1:-mamba-1.4b,mamba2-1.3b}
t=${2:-2}
LLAMA=${LLAMA:-/work/llama.cpp}
WORK=${WORK:-/tmp/qm-sbs}
PY=${PY:-/usr/bin/python3}
NGEN=${NGEN:-64}
REPS=${REPS:-3}
Q=build/quamba
CALIB=${CALIB:-../shared/data/calibration/pg1342-0.txt}
[ -x "$Q" ] || { echo "side_by_side_4bit: build first (scripts/build.sh)" >&2; exit 1; }
for b in llama-bench llama-quantize; do
  [ -x "$LLAMA/build/bin/$b" ] || { echo "side_by_side_4bit: no $LLAMA/build/bin/$b" >&2; exit 1; }
done
mkdir -p "$WORK"

# ---- make what is missing (not timed) ----
for s in ${shapes//,/ }; do
  d=$WORK/$s
  [ -f "$d/config.json" ] || "$Q" synth --shape "$s" -o "$d" --dtype f32
  if [[ $s == mamba-* ]]; then
    w8=(--recipe quamba --calib-samples 8)                # Quamba v1, as docs/PERFORMANCE.md
    a8=(--calib-samples 8 --calib-len 512)
  else
    w8=(--recipe quamba2-w8a8 --calib-samples 4 --calib-len 256)
    a8=(--calib-samples 4 --calib-len 256)
  fi
  [ -f "$d-w8a8/config.json" ] || "$Q" quantize -m "$d" -o "$d-w8a8" "${w8[@]}" --calib "$CALIB"
  [ -f "$d-w4a8-w4head/config.json" ] || "$Q" quantize -m "$d" -o "$d-w4a8-w4head" \
      --recipe quamba2-w4a8 --rtn --lm-head w4 "${a8[@]}" --calib "$CALIB"
  [ -f "$d-w4a16/config.json" ] || "$Q" quantize -m "$d" -o "$d-w4a16" \
      --recipe quamba2-w4a16 --rtn --calib "$CALIB"
  [ -f "$d-f32.gguf" ] || "$PY" scripts/gguf_from_hf.py "$d" -o "$d-f32.gguf" --gguf-py "$LLAMA/gguf-py"
  for qt in q4_0 q8_0; do
    [ -f "$d-$qt.gguf" ] || "$LLAMA/build/bin/llama-quantize" --tensor-type ssm_dt=f32 \
        "$d-f32.gguf" "$d-$qt.gguf" "${qt^^}" 1 >"$WORK/quantize-$s-$qt.log" 2>&1
  done
done

# ---- timing ----
sync
sleep 20
echo "# side_by_side_4bit: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short=10 HEAD)," \
     "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# llama.cpp $(git -C "$LLAMA" rev-parse --short=12 HEAD 2>/dev/null || echo '?')"
for s in ${shapes//,/ }; do
  d=$WORK/$s
  echo
  echo "## $s, $t thread(s): quamba bench"
  "$Q" bench -m "$d" -m "$d-w8a8" -m "$d-w4a8-w4head" -m "$d-w4a16" -p 512 -n "$NGEN" \
      -r "$REPS" -t "$t" --interleave 2>/dev/null
  echo "## $s, $t thread(s): llama-bench"
  "$LLAMA/build/bin/llama-bench" -m "$d-q4_0.gguf" -m "$d-q8_0.gguf" -t "$t" -p 512 -n "$NGEN" \
      -r "$REPS" -o md 2>/dev/null
done
