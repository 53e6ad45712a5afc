#!/usr/bin/env bash
# The published super-convergence protocols on one CUDA GPU. NOT RUN YET: written on a 2-core CPU
# machine without a GPU (2026-12-01); no GPU timing has been measured, so the sizes below are
# the published ones, not ones fitted to a budget. Results go to runs/cifar-full-gpu/.
#
#   bash benchmarks/cifar_full_gpu.sh keras   # the seeds' Keras experiment, as published:
#       cifar-resnet width 1 (128/32 channels), 8 blocks, BN fraction 0.95, 40k/10k/10k images,
#       batch 32 (1,250 updates per epoch), E = 8: one cycle 8 epochs (10,000 updates),
#       piecewise 64 epochs (80,000), constant 8 and 12, Adam 8, then the recipe 8:
#       about 150,000 updates at batch 32, 4.8M training samples plus the recipe's search.
#   bash benchmarks/cifar_full_gpu.sh sweep   # Smith & Topin's Table 1, as published:
#       ResNet-56, batch 1,000, flips, 10k/20k/30k/40k/50k images, 3 seeds, one cycle 0.1-3.0
#       (momentum 0.9) for 10,000 iterations vs 0.35/0.035/0.0035 at 50k/70k of 80,000:
#       15 x 90,000 = 1.35M iterations, 1.35G training samples -- hours, not minutes, on one GPU.
#   bash benchmarks/cifar_full_gpu.sh brief   # what fits a 15-minute device budget, by guess:
#       the sweep at the two ends (10k, 50k), 3 seeds, 400 cycle iterations vs 3,200 (a 25th
#       of the paper's iterations at the paper's ratio of 8), batch 1,000: 21.6M samples.
#
# Each part resumes: rerun the same line after an interruption and finished runs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-keras}
data=${SUPERCONVERGE_DATA:-../shared/data}/cifar10-full
out=${OUT:-runs}/cifar-full-gpu
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
run() { python benchmarks/cifar_full.py --protocol cuda --data-dir "$data" --out "$out" "$@"; }
case $part in
  keras) run --skip sweep ;;
  sweep) run --skip keras recipe ;;
  brief) run --skip keras recipe --sizes 10000 50000 --cycle-steps 400 ;;
  *) echo "usage: $0 keras|sweep|brief" >&2; exit 2 ;;
esac
python benchmarks/time_to_accuracy.py --data --cifar-results "$out/keras/results.json" \
  --sweep-results "$out/data-size/results.json" 2>/dev/null || true
