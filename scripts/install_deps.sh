#!/usr/bin/env bash
# Installs what Quamba.cpp needs to build and test, from Debian 12 packages only.
# Idempotent; uses sudo when not run as root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# clang-16 + libclang-rt-16-dev (its ASan/UBSan/libFuzzer runtimes; only "recommended" by
# clang-16) + libfuzzer-16-dev: the fuzz build of scripts/fuzz.sh.
PKGS=(g++ cmake ninja-build git pkg-config libgtest-dev libgmock-dev libbenchmark-dev
      nlohmann-json3-dev libutf8proc-dev libbz2-dev clang-16 libclang-rt-16-dev libfuzzer-16-dev
      libcpp-httplib-dev python3
      bible-kjv bible-kjv-text fortunes dict-gcide)  # the reference corpus (bible-kjv: `bible`)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install_deps: all build dependencies present"
fi
