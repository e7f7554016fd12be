#!/usr/bin/env bash
# What the int8 SSM state costs, scored two ways: by prefill (chunks of 256 tokens; the state is
# requantised once per chunk: how perplexity and lm-eval tasks score) and on the decode path
# (`eval --chunk 1`: every token a decode step, the state requantised after each, as generation
# and the server run). Quamba2 W8A8 / W4A8 on both reference models, --ssm-state int8 (the
# recipes' default) and f32. Prints a markdown table (docs/quantization.md quotes it).
# Usage: scripts/ssm_state_results.sh   (env: CTX=512 LIMIT=40 THREADS=2 CALIB=... VALID=...)
set -euo pipefail
cd "$(dirname "$0")/.."
CTX=${CTX:-512}
LIMIT=${LIMIT:-40}
THREADS=${THREADS:-2}
CALIB=${CALIB:-../shared/data/calibration/pg1342-0.txt}
VALID=${VALID:-out/corpus/valid.txt}
OUT=out/ssm_state
mkdir -p "$OUT"
scripts/build.sh build >/dev/null
if [ ! -f "$VALID" ]; then
  echo "ssm_state_results: building the reference corpus for $VALID" >&2
  scripts/setup_python.sh >/dev/null
  /usr/bin/python3 scripts/build_corpus.py
fi
echo "| model | recipe | SSM state | state / seq | prefill Δppl | prefill KLD | decode Δppl | decode KLD | decode same top |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for m in models/mamba-ref-d256-l6 models/mamba2-ref-d256-l6; do
  mb=$(basename "$m")
  base=$(build/quamba eval -m "$m" --ppl "$VALID" --ppl-format raw --ctx "$CTX" --limit "$LIMIT" \
    -t "$THREADS" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
  for r in quamba2-w8a8 quamba2-w4a8; do
    for s in int8 f32; do
      q="$OUT/$mb-$r-$s"
      build/quamba quantize -m "$m" -o "$q" --recipe "$r" --ssm-state "$s" --calib "$CALIB" \
        -t "$THREADS" --force -q >/dev/null 2>&1
      for ch in 256 1; do
        build/quamba eval -m "$q" --ppl "$VALID" --ppl-format raw --ctx "$CTX" --limit "$LIMIT" \
          --kld-ref "$m" --chunk "$ch" -t "$THREADS" --json 2>/dev/null > "$q-chunk$ch.json"
      done
      # The state bytes one sequence keeps (bench's state_bytes_per_seq; a 2-token run).
      state=$(build/quamba bench -m "$q" -p 2 -n 2 -r 1 -t 1 -o json 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; print("%.1f KiB" % (json.load(sys.stdin)[0]["state_bytes_per_seq"] / 1024))')
      /usr/bin/python3 - "$q" "$base" "$mb" "$r" "$s" "$state" <<'PY'
import json, sys
q, base, mb, r, s, state = sys.argv[1:7]
base = float(base)
p = json.load(open(q + "-chunk256.json")); d = json.load(open(q + "-chunk1.json"))
print(f"| {mb} | {r} | {s} | {state} | {100*(p['ppl']/base-1):+.2f}% | {p['kld_mean']:.5f} | "
      f"{100*(d['ppl']/base-1):+.2f}% | {d['kld_mean']:.5f} | {100*d['same_top']:.2f}% |")
PY
    done
  done
done
