#!/usr/bin/env bash
# The long run of the configuration that won scripts/train_default_model.sh (16x16x64 stylemap at
# 64 px, widths up to 128, adaptive augmentation, no --augment-rec), alone on the GPU: processes
# sharing one GPU time-slice it, so the side-by-side runs saw ~55 img/s each.
# Usage: scripts/train_default_model_long.sh EMOJI_DIR RUNS_DIR OUT [MINUTES]
set -euo pipefail
data=$1 runs=$2 out=$3 minutes=${4:-4.3}
common="--batch 64 --steps 10000000 --workers 0 --cache-images on --mapping-layer-num 8 \
 --lambda-x-rec 10 --lambda-perceptual 0 --ema-decay 0.998 --tf32 --seed 0 \
 --save-every 200 --export-every 200 --sample-every 400 --log-every 50"
exec python3 scripts/train_candidates.py --data "$data" --runs "$runs" --minutes "$minutes" \
  --bring-back "$out" --keep 1 --common "$common" \
  --candidate "l16w128=--size 64 --latent-spatial-size 16 --latent-channel-size 64 --channel-base 4096 --channel-max 128 --augment ada --ada-kimg 100"
