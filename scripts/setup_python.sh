#!/bin/sh
# Installs (Debian bookworm, apt-get, non-interactive, idempotent) everything the
# reference-model scripts in scripts/ need. Run as root. All scripts use Debian's
# /usr/bin/python3 (which has python3-torch), not a pyenv/venv python.
set -eu
export DEBIAN_FRONTEND=noninteractive

PKGS="python3-torch python3-numpy python3-regex libopenblas0-pthread \
      bible-kjv bible-kjv-text fortunes fortunes-min dict-gcide"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  echo "setup_python: installing:$missing"
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
else
  echo "setup_python: all packages already installed"
fi

# Debian's torch links against the generic libblas.so.3; the reference BLAS is
# ~12x slower than OpenBLAS. Point the alternative at OpenBLAS if it is not already.
ALT=libblas.so.3-x86_64-linux-gnu
OPENBLAS=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ -e "$OPENBLAS" ]; then
  cur=$(update-alternatives --query "$ALT" 2>/dev/null | sed -n 's/^Value: //p')
  if [ "$cur" != "$OPENBLAS" ]; then
    echo "setup_python: selecting OpenBLAS for $ALT"
    update-alternatives --set "$ALT" "$OPENBLAS"
  fi
fi

# Sanity check: torch imports and a 1024^3 matmul runs at a sane speed.
/usr/bin/python3 - <<'PY'
import time, torch
torch.set_num_threads(2)
a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)
a @ b
t = time.time()
for _ in range(5):
    a @ b
g = 5 * 2 * 1024 ** 3 / (time.time() - t) / 1e9
print("setup_python: torch %s, fp32 matmul %.0f GFLOP/s on 2 threads" % (torch.__version__, g))
if g < 20:
    print("setup_python: WARNING: matmul is slow; is the reference BLAS selected?")
import regex, numpy  # noqa: F401
PY
