#!/usr/bin/env bash
# Quamba.cpp and llama.cpp's llama-bench on the same synthetic shapes, in one run on an idle
# machine: the figures of docs/PERFORMANCE.md. For each shape and thread count, `quamba bench`
# (FP32, and W8A8 quamba for Mamba-1, interleaved, each decode against a read ceiling taken in
# the same moment) and then llama-bench (F32 and Q8_0 GGUF of the same weights).
#
# usage: bench/side_by_side.sh [SHAPES] [THREADS]
#   SHAPES  comma-separated synth shapes (default mamba-130m,mamba-1.4b,mamba2-130m,mamba2-1.3b)
#   THREADS comma-separated thread counts (default 1,2)
# env: LLAMA  a llama.cpp build outside this repository (default /work/llama.cpp: build/bin/
#             llama-bench, llama-quantize and gguf-py/; docs/llama-cpp.md says how to build it)
#      WORK   where checkpoints and GGUF files are made once and reused (default /tmp/qm-sbs)
#      PY     a python3 with numpy (default /usr/bin/python3, Debian's python3-numpy)
# Needs about 2 x 5.5 GB of disk per 1.4b-class shape. Prints everything; keep the log.
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${1:-mamba-130m,mamba-1.4b,mamba2-130m,mamba2-1.3b}
threads=${2:-1,2}
LLAMA=${LLAMA:-/work/llama.cpp}
WORK=${WORK:-/tmp/qm-sbs}
PY=${PY:-/usr/bin/python3}
Q=build/quamba
CALIB=${CALIB:-../shared/data/calibration/pg1342-0.txt}
[ -x "$Q" ] || { echo "side_by_side: build first (scripts/build.sh)" >&2; exit 1; }
for b in llama-bench llama-quantize; do
  [ -x "$LLAMA/build/bin/$b" ] || { echo "side_by_side: no $LLAMA/build/bin/$b" >&2; exit 1; }
done
mkdir -p "$WORK"

# ---- make what is missing (not timed) ----
for s in ${shapes//,/ }; do
  d=$WORK/$s
  [ -f "$d/config.json" ] || "$Q" synth --shape "$s" -o "$d" --dtype f32
  if [[ $s == mamba-* ]] && [ ! -f "$d-w8a8/config.json" ]; then
    "$Q" quantize -m "$d" -o "$d-w8a8" --recipe quamba --calib "$CALIB" --calib-samples 8
  fi
  [ -f "$d-f32.gguf" ] || "$PY" scripts/gguf_from_hf.py "$d" -o "$d-f32.gguf" --gguf-py "$LLAMA/gguf-py"
  # dt_rank (48 at 130m) is not a multiple of Q8_0's 32-wide blocks: dt_proj stays F32 there.
  [ -f "$d-q8_0.gguf" ] || "$LLAMA/build/bin/llama-quantize" --tensor-type ssm_dt=f32 \
      "$d-f32.gguf" "$d-q8_0.gguf" Q8_0 1 >"$WORK/quantize-$s.log" 2>&1
done

# ---- timing ----
# Freshly written checkpoints are still being written back: let the disk settle first.
sync
sleep 20
echo "# side_by_side: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short=10 HEAD)," \
     "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# llama.cpp $(git -C "$LLAMA" rev-parse --short=12 HEAD 2>/dev/null || echo '?')"
for s in ${shapes//,/ }; do
  d=$WORK/$s
  reps=5
  [[ $s == *130m ]] || reps=3
  models=(-m "$d")
  [ -d "$d-w8a8" ] && models+=(-m "$d-w8a8")
  for t in ${threads//,/ }; do
    echo
    echo "## $s, $t thread(s): quamba bench"
    "$Q" bench "${models[@]}" -p 512 -n 128 -r "$reps" -t "$t" --interleave 2>/dev/null
    echo "## $s, $t thread(s): llama-bench"
    "$LLAMA/build/bin/llama-bench" -m "$d-f32.gguf" -m "$d-q8_0.gguf" -t "$t" -p 512 -n 128 \
        -r "$reps" -o md 2>/dev/null
  done
  if [[ $s == mamba2-* ]]; then
    t=${threads##*,}
    echo "## $s, $t thread(s): SSD chunk length (QUAMBA_SSD_CHUNK), prefill pp512"
    for q in 32 64 128 256; do
      echo "chunk $q: $(QUAMBA_SSD_CHUNK=$q "$Q" bench -m "$d" -p 512 -n 0 -r 2 -t "$t" -o json 2>/dev/null |
        "$PY" -c 'import json,sys; r=json.load(sys.stdin)[0]; print("%.1f tok/s" % r["prefill_tok_s"])')"
    done
  fi
done
