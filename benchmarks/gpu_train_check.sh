#!/usr/bin/env bash
# The bundle's training path on one NVIDIA GPU: a single process (bfloat16 autocast) and torchrun DDP (NCCL),
# a few hundred steps on phantoms, to check that it runs and to measure seconds per step (not to make weights).
#   bash benchmarks/gpu_train_check.sh [OUT_DIR]       (default runs/gpu_train_check)
# Writes OUT_DIR/single/log.jsonl and OUT_DIR/ddp/log.jsonl (the trainer's logs: loss, seconds per step, validation).
set -euo pipefail
py="${PYTHON:-python3}"
out="$(mkdir -p "${1:-runs/gpu_train_check}" && cd "${1:-runs/gpu_train_check}" && pwd)"
export PYTHONUNBUFFERED=1
"$py" -m medfusion.cli.main phantoms --out "$out/data/train" --n 8 --shape 96 96 64 --seed 1000
"$py" -m medfusion.cli.main phantoms --out "$out/data/val" --n 2 --shape 96 96 64 --seed 2000
cd bundles/brats_mri_cwdm
common=(--dataset_dir "$out/data/train" --val_dir "$out/data/val" --device cuda --trainer#log_every 50)
"$py" -m monai.bundle run --config_file configs/train.json "${common[@]}" --output_dir "$out/single" \
    --trainer#max_steps 400 --trainer#val_every 200
torchrun --nproc_per_node=1 -m monai.bundle run --config_file "['configs/train.json','configs/multi_gpu_train.json']" \
    "${common[@]}" --output_dir "$out/ddp" --trainer#max_steps 100 --trainer#val_every 100
nvidia-smi --query-gpu=name,memory.total --format=csv
