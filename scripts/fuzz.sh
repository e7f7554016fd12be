#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ (clang-16, ASan + UBSan) into build-fuzz/ and
# runs each for SECONDS (default 60): one after another, or FUZZ_JOBS at a time. FUZZ_TARGETS
# picks targets (default: all). Seeds come from tests/fuzz/corpus/<target>/ (never written);
# what the fuzzer learns goes to build-fuzz/corpus/<target>/ and is reused by the next run.
# A finding stops the script with exit 1: the input is in build-fuzz/artifacts/<target>/; fix the
# bug and add the input to tests/fuzz/corpus/<target>/ (FuzzCorpusTest then replays it in ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
targets=${FUZZ_TARGETS:-"safetensors config tokenizer quant_config eval_tasks serve_request"}
jobs=${FUZZ_JOBS:-1}
out=build-fuzz
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$out" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++-16}" -DQM_FUZZ=ON -DQM_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" --target fuzz_all -j "$(nproc)"
mkdir -p "$out/logs"

run() {  # target: one libFuzzer run; prints its summary line
  local t=$1 log="$out/logs/$1.log"
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  if "$out/fuzz_$t" "$out/corpus/$t" "tests/fuzz/corpus/$t" -dict=tests/fuzz/json.dict \
      -max_total_time="$secs" -max_len=16384 -timeout=20 -rss_limit_mb=2560 \
      -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $t: ${execs:-?} runs in ${secs} s, ${cov:-cov: ?}, no finding"
  else
    echo "fuzz: $t: FINDING (log $log, input in $out/artifacts/$t/):"
    grep -E 'ERROR|Bug:|runtime error|SUMMARY|Test unit written' "$log" | head -8
    return 1
  fi
}

status=0
pids=()
for t in $targets; do
  run "$t" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
