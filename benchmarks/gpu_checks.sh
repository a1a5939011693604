#!/usr/bin/env bash
# The GPU rows of the benchmarks and the CUDA tests, on a machine with one NVIDIA GPU:
#   bash benchmarks/gpu_checks.sh [pipeline]   # CUDA tests, shipped model: full volume DDIM 50 (float32, bfloat16),
#                                              # denoiser step, full volume DDPM 1000 (float32); ~3 min on one H200
#   bash benchmarks/gpu_checks.sh published    # the published-size network (81.5 M parameters, random weights) on a
#                                              # full 240x240x155 case: DDIM 50 and DDPM 1000 (extrapolated from 30
#                                              # steps), float32 vs bfloat16, eager vs torch.compile; ~4-6 min on one
#                                              # H200, stopped at 9 min (its runs keep to a 420 s budget)
#   bash benchmarks/gpu_checks.sh apps         # PET/CT ensemble on a 144 mm box at 1 mm; seg2med 2D/3D at
#                                              # 256x256x64 and 512x512x64, DDIM 50; stain 1024², DDIM 10;
#                                              # bfloat16 (not yet run)
#   bash benchmarks/gpu_checks.sh all          # all three, one after the other (more than one 10-min slot)
# Writes benchmarks/results/full_volume_cuda*.json, denoiser_cuda.json (pipeline) and published_cuda.json
# (published), petct_speed_cuda.json, seg2med_speed_cuda*.json and stain_speed_cuda.json (apps); each records its command, date and GPU.  Without a usable NVIDIA GPU it stops at once (status 2).
set -euo pipefail
py="${PYTHON:-python3}"
mode="${1:-pipeline}"
case "$mode" in
    pipeline|published|apps|all) ;;
    *) echo "usage: bash benchmarks/gpu_checks.sh [pipeline|published|apps|all]" >&2; exit 2 ;;
esac
export PYTHONUNBUFFERED=1
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; then
    echo "gpu_checks.sh: no NVIDIA GPU here (nvidia-smi missing or failing); these checks need one" >&2
    exit 2
fi
"$py" -c 'import sys, torch; torch.cuda.is_available() or sys.exit(f"gpu_checks.sh: torch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda})")' || exit 2

if [[ "$mode" == pipeline || "$mode" == all ]]; then
    "$py" -m pytest -q -p no:cacheprovider tests/core/test_wavelets.py -k cuda
    "$py" benchmarks/speed/bench_full_volume.py --steps 50 --device cuda
    "$py" benchmarks/speed/bench_full_volume.py --steps 50 --device cuda --precision bfloat16
    "$py" benchmarks/speed/bench_denoiser.py --device cuda --shape 240 240 160
    "$py" benchmarks/speed/bench_full_volume.py --steps 1000 --sampler ddpm --device cuda
fi
if [[ "$mode" == apps || "$mode" == all ]]; then
    # the other applications' GPU timings: PET/CT ensemble (goal ≤ 10 s), seg2med 2D/3D at 256² and 512², stain 1024²
    "$py" benchmarks/speed/bench_petct_speed.py --device cuda --precision bfloat16 --out benchmarks/results/petct_speed_cuda.json
    "$py" benchmarks/speed/bench_seg2med_speed.py --device cuda --precision bfloat16 --steps 50 \
        --out benchmarks/results/seg2med_speed_cuda.json
    "$py" benchmarks/speed/bench_seg2med_speed.py --device cuda --precision bfloat16 --steps 50 --shape 512 512 64 \
        --out benchmarks/results/seg2med_speed_cuda_512.json
    "$py" benchmarks/speed/bench_stain_speed.py --sizes 1024 --device cuda --precision bfloat16 \
        --out benchmarks/results/stain_speed_cuda.json
fi
if [[ "$mode" == published || "$mode" == all ]]; then
    # 540 s hard stop: the file keeps every run finished before it (it is rewritten after each run)
    timeout 540 "$py" benchmarks/speed/bench_published.py
fi
