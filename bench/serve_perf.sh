#!/usr/bin/env bash
# The serving figures of issue 12 for one model (docs/serving.md "Performance"):
#   - the model alone: `quamba bench` decode at batch 1 and 8;
#   - through `quamba serve --parallel 8`: output throughput of 1 and of 8 concurrent streams
#     (bench/serve_load.py), their ratio, and the TPOT of a stream among 8 over its solo TPOT;
#   - server overhead per token: (solo TPOT through the server - bench's batch-1 TPOT) / bench's.
# usage: bench/serve_perf.sh MODEL_DIR [THREADS=2] [MAX_TOKENS=64]
# Run on an idle machine: figures taken while other jobs run are not comparable.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
threads=${2:-2}
n=${3:-64}
quamba=${QUAMBA:-build/quamba}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT

"$quamba" bench -m "$model" -t "$threads" -p 32 -n "$n" -r 3 -b 1 -o json >"$tmp/b1.json" 2>/dev/null
"$quamba" bench -m "$model" -t "$threads" -p 32 -n "$n" -r 3 -b 8 -o json >"$tmp/b8.json" 2>/dev/null

"$quamba" serve -m "$model" --port 0 -t "$threads" --parallel 8 2>"$tmp/serve.err" &
pid=$!
port=""
for _ in $(seq 1 600); do
  port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$tmp/serve.err" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/serve.err"; exit 1; }
url=http://127.0.0.1:$port
python3 bench/serve_load.py --url "$url" --requests 2 --concurrency 1 --max-tokens 8 --json >/dev/null
python3 bench/serve_load.py --url "$url" --requests 4 --concurrency 1 --max-tokens "$n" --json >"$tmp/c1.json"
python3 bench/serve_load.py --url "$url" --requests 16 --concurrency 8 --max-tokens "$n" --json >"$tmp/c8.json"
kill -TERM $pid
wait $pid || true

python3 - "$tmp" "$model" "$threads" <<'EOF'
import json, sys
d, model, threads = sys.argv[1], sys.argv[2], sys.argv[3]
b1 = json.load(open(d + "/b1.json"))[0]
b8 = json.load(open(d + "/b8.json"))[0]
c1 = json.load(open(d + "/c1.json"))
c8 = json.load(open(d + "/c8.json"))
print("model %s, %s threads, %s" % (model, threads, b1.get("weight_dtype", "")))
print("quamba bench decode: batch 1 %.1f tok/s (TPOT %.2f ms); batch 8 %.1f tok/s (TPOT %.2f ms)"
      % (b1["decode_tok_s"], b1["tpot_ms"], b8["decode_tok_s"], b8["tpot_ms"]))
print("serve, 1 stream:  %.1f tok/s, TPOT p50 %.2f ms, TTFT p50 %.1f ms"
      % (c1["throughput_tok_s"], c1["tpot_p50_s"] * 1e3, c1["ttft_p50_s"] * 1e3))
print("serve, 8 streams: %.1f tok/s, TPOT p50 %.2f ms p99 %.2f ms, TTFT p50 %.1f ms p99 %.1f ms"
      % (c8["throughput_tok_s"], c8["tpot_p50_s"] * 1e3, c8["tpot_p99_s"] * 1e3,
         c8["ttft_p50_s"] * 1e3, c8["ttft_p99_s"] * 1e3))
print("aggregate 8 streams / 1 stream: %.2fx (target >= 4x)" % (c8["throughput_tok_s"] / c1["throughput_tok_s"]))
print("TPOT among 8 / solo: %.2fx (target <= 2x)" % (c8["tpot_p50_s"] / c1["tpot_p50_s"]))
over = (c1["tpot_p50_s"] * 1e3 - b1["tpot_ms"]) / b1["tpot_ms"]
print("server overhead per token (HTTP + JSON + sampling) vs a bench decode step: %.1f%% (target < 2%% at 130m)" % (100 * over))
EOF
