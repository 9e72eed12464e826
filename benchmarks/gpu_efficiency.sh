#!/usr/bin/env bash
# The GPU efficiency experiment in one device call (docs/results/README.md, "GPU protocol").
#
# Here, once: copy the data into an ignored folder that travels with the call
#   mkdir -p runs/data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz runs/data/fashion-mnist/
# Then, on the GPU machine (repository root; carry runs/data/fashion-mnist):
#   bash benchmarks/gpu_efficiency.sh [DATA] [MINUTES]
# It trains 20 runs (4 SimMIM and 6 MAE pairs) 10 at a time, stops cleanly after MINUTES
# (default 8) and, when every run is done, measures the step cost and writes
# docs/results/efficiency-gpu.md with its run copies; $OUT, where set, receives them. A call
# that stops early leaves a partial report; the same command on the same machine resumes.
set -euo pipefail
DATA=${1:-runs/data/fashion-mnist}
MINUTES=${2:-8}
mkdir -p runs
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m mto_core.cli experiment efficiency --preset gpu --set "data.root=$DATA" --time-limit "$MINUTES" \
    --quiet --out runs/experiments/efficiency-gpu > runs/efficiency-gpu.log
tail -n 40 runs/efficiency-gpu.log
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/docs/results" "$OUT/logs"
    cp -r docs/results/efficiency-gpu* "$OUT/docs/results/" 2>/dev/null || true
    cp runs/efficiency-gpu.log runs/experiments/efficiency-gpu/logs/*.log "$OUT/logs/" 2>/dev/null || true
fi
