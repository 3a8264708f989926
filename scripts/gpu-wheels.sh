#!/usr/bin/env bash
# Download into .whl/ the Python wheels that a bare GPU machine (Python 3.12,
# PyTorch preinstalled, no network) lacks to run scripts/gpu_check.py; carry
# .whl there and install with:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
# setuptools<81 still ships pkg_resources, which the clip package imports.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  -d .whl clip-anytorch==2.6.0 ftfy==6.3.1 wcwidth 'setuptools<81'
ls .whl
