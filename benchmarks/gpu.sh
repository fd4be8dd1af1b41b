#!/usr/bin/env bash
# The benchmark suite on a CUDA GPU, in one command and under 10 minutes:
#
#     bash benchmarks/gpu.sh
#
# writes results/performance_cuda.json (the same record as the CPU run: commit, config,
# seeds, machine, every time) and regenerates docs/PERFORMANCE.md from every record
# present. Needs torch with CUDA, numpy, Pillow and this checkout (memae is imported from
# src/ when it is not installed). The suites save after each workload, so a run stopped
# by the time limit keeps what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="src${PYTHONPATH:+:${PYTHONPATH}}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
status=0
# The paper's video net end to end first (the GPU target), then scoring, the memory module
# and training (with its compiled variants, whose compiling takes the longest).
timeout "${MEMAE_BENCH_SECONDS:-540}" "$PY" benchmarks/run.py --device cuda --repeats 3 \
    --suites peak,video,score,memory,train --out results/performance_cuda.json "$@" || status=$?
"$PY" benchmarks/report.py results/performance_cpu.json results/performance_cuda.json --out docs/PERFORMANCE.md
exit "$status"
