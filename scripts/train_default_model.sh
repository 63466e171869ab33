#!/usr/bin/env bash
# The bundled model's training run, as run on one lent GPU: six configurations side by side for
# MINUTES of wall time, then measured and ranked (scripts/train_candidates.py), the best exports
# packed into OUT. Usage: scripts/train_default_model.sh EMOJI_DIR RUNS_DIR OUT [MINUTES]
# EMOJI_DIR comes from `python scripts/emoji_dataset.py --out EMOJI_DIR --size 128 --holdout-style emojione`.
set -euo pipefail
data=$1 runs=$2 out=$3 minutes=${4:-5.5}
common="--batch 32 --steps 10000000 --workers 0 --cache-images on --mapping-layer-num 8 \
 --lambda-x-rec 10 --lambda-perceptual 0 --ema-decay 0.998 --tf32 --seed 0 \
 --save-every 500 --export-every 500 --sample-every 500 --log-every 50"
ada="--augment ada --ada-kimg 100"
w128="--latent-channel-size 64 --channel-base 4096 --channel-max 128"
exec python3 scripts/train_candidates.py --data "$data" --runs "$runs" --minutes "$minutes" \
  --bring-back "$out" --keep 2 --common "$common" \
  --candidate "l8w128=--size 64 --latent-spatial-size 8 $w128 $ada --augment-rec" \
  --candidate "l16w128=--size 64 --latent-spatial-size 16 $w128 $ada --augment-rec" \
  --candidate "l16w64=--size 64 --latent-spatial-size 16 --latent-channel-size 32 --channel-base 2048 --channel-max 64 $ada --augment-rec" \
  --candidate "l16w128-norec=--size 64 --latent-spatial-size 16 $w128 $ada" \
  --candidate "l16w128-noaug=--size 64 --latent-spatial-size 16 $w128" \
  --candidate "s128l16w128=--size 128 --latent-spatial-size 16 --latent-channel-size 64 --channel-base 8192 --channel-max 128 $ada --augment-rec"
