#!/usr/bin/env bash
# The prepared GPU check of issue 9, for a session lent a device: one call of the `device` tool's `run`
# (it starts in the repository root, with $OUT an empty folder whose files come back):
#
#     bash benchmarks/device_check.sh
#
# It records the device, then measures seconds per FedGMR round at full width, clients trained one after
# another against trained together (benchmarks/gpu_cost.py), on FEMNIST- and CIFAR-10-shaped synthetic data
# into $OUT/gpu_cost.csv (issue 9: >= 5x for both), and on ImageNet-100 and StackOverflow shapes into
# $OUT/gpu_cost_more.csv. Each part has its own time limit, so the whole fits in one 10-minute call.
# Commit the CSVs as benchmarks/results/gpu_cost_<device>.csv and recompute the README's GPU-hour estimate.
set -uo pipefail
OUT=${OUT:-results/device_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    git rev-parse --short HEAD 2>/dev/null || true
} 2>&1 | tee "$OUT/device.txt"
timeout 330 "$PY" benchmarks/gpu_cost.py --device cuda --datasets femnist,cifar10 --rounds 20 \
    --out "$OUT/gpu_cost.csv" 2>&1 | tee "$OUT/gpu_cost.log"
timeout 200 "$PY" benchmarks/gpu_cost.py --device cuda --datasets imagenet100,stackoverflow --rounds 5 \
    --out "$OUT/gpu_cost_more.csv" 2>&1 | tee "$OUT/gpu_cost_more.log"
