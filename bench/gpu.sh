#!/usr/bin/env bash
# Model-side benchmark rows on CUDA (bench/gpu.py), with python3 and torch, transformers,
# tokenizers and numpy only; finishes in <= 4 minutes.
#
#   bench/gpu.sh                          # CUDA; JSON to $OUT/gpu_bench.json (or ./gpu_bench.json)
#   bench/gpu.sh --device cpu --quick     # CPU smoke test (what CI and CPU machines can run)
#   PYTHON=.venv/bin/python bench/gpu.sh --device cpu --quick
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
JSON=${GPU_BENCH_JSON:-${OUT:-.}/gpu_bench.json}
"$PY" -c 'import torch, transformers, tokenizers, numpy' || {
  echo "bench/gpu.sh: $PY lacks torch/transformers/tokenizers/numpy" >&2; exit 2; }
# bench/gpu.py stops starting measurements after --budget-s (210 s); the timeout is the backstop.
exec timeout --kill-after=10 240 "$PY" bench/gpu.py --json "$JSON" "$@"
