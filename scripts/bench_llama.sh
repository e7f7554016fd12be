#!/bin/sh
# Runs llama.cpp's llama-bench on GGUF files at the given thread counts and prints its table.
# For a timing run on an otherwise idle machine (llama-bench measures wall time).
#
# usage: bench_llama.sh [-b BIN_DIR] [-t THREADS] [-p N_PROMPT] [-n N_GEN] [-r REPS] [-o md|csv|json] FILE.gguf...
#   -b  directory with llama-bench (default: $LLAMA_BIN, else /work/llama.cpp/build/bin)
#   -t  comma-separated thread counts (default 1,2)
#   -p  prompt tokens for the prefill test (default 512 -> pp512); 0 = none
#   -n  generated tokens for the decode test (default 128 -> tg128); 0 = none
#   -r  repetitions per test (default 5; llama-bench reports mean +- stddev)
#   -o  output format (default md)
# example: bench_llama.sh -t 1,2 /work/synth/gguf/m130-*.gguf /work/synth/gguf/m14-*.gguf
set -eu

BIN=${LLAMA_BIN:-/work/llama.cpp/build/bin}
THREADS=1,2
NP=512
NG=128
REPS=5
FMT=md
while getopts b:t:p:n:r:o:h opt; do
  case $opt in
    b) BIN=$OPTARG ;;
    t) THREADS=$OPTARG ;;
    p) NP=$OPTARG ;;
    n) NG=$OPTARG ;;
    r) REPS=$OPTARG ;;
    o) FMT=$OPTARG ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n '2,13p' "$0"; exit 2; }
[ -x "$BIN/llama-bench" ] || { echo "bench_llama: no llama-bench in $BIN" >&2; exit 1; }

MODELS=""
for f in "$@"; do
  [ -f "$f" ] || { echo "bench_llama: no file $f" >&2; exit 1; }
  MODELS="$MODELS -m $f"
done

if [ "$FMT" = md ]; then
  echo "# llama-bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "# llama.cpp $(git -C "$BIN/../.." rev-parse --short=12 HEAD 2>/dev/null || echo '?'), threads $THREADS, -p $NP -n $NG -r $REPS"
fi
# shellcheck disable=SC2086
exec "$BIN/llama-bench" $MODELS -t "$THREADS" -p "$NP" -n "$NG" -r "$REPS" -o "$FMT"
