#!/usr/bin/env bash
# Builds with warnings as errors and runs the whole test suite (ctest), then the suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer. QM_SKIP_SANITIZE=1 skips the second pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh build -DQM_WERROR=ON
(cd build && ctest --output-on-failure -j "$(nproc)")
if [ "${QM_SKIP_SANITIZE:-0}" != "1" ]; then
  scripts/build.sh build-asan -DQM_WERROR=ON -DQM_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd build-asan && ctest --output-on-failure -j "$(nproc)")
fi
