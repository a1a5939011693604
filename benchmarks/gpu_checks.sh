#!/usr/bin/env bash
# The GPU rows of the benchmarks and the CUDA tests, in one go (a machine with one NVIDIA GPU):
#   bash benchmarks/gpu_checks.sh
# Writes benchmarks/results/full_volume_cuda.json and denoiser_cuda.json; each records its command, date and GPU.
set -euo pipefail
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -m pytest -q -p no:cacheprovider tests/test_wavelets.py -k cuda
"$py" benchmarks/bench_full_volume.py --steps 50 --device cuda
"$py" benchmarks/bench_denoiser.py --device cuda --shape 240 240 160
"$py" benchmarks/bench_full_volume.py --steps 1000 --sampler ddpm --device cuda
