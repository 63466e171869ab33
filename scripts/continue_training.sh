#!/usr/bin/env bash
# Continue training the bundled model whenever a GPU is lent, then rebuild everything that depends on
# its weights, in one prepared run:
#   1. unpack the data (one compact archive carried with the tree: `tar czf emoji.tar.gz -C /work/data emoji`);
#   2. train from the shipped export (--init smapgan/assets/default_model) with the card's options for
#      MINUTES of wall time (scripts/train_candidates.py stops it and keeps the latest export);
#   3. rebuild the model folder from that export: directions, prior, figures, card, README figure
#      (scripts/build_default_model.py);
#   4. bring it back through OUT as parts of at most 15 MiB (`cat OUT/default_model.tar.part-* | tar x`).
# Usage: scripts/continue_training.sh DATA_ARCHIVE MINUTES OUT
# A tiny CPU rehearsal: scripts/continue_training.sh small.tar.gz 0.5 /tmp/out (any emoji folder works).
set -euo pipefail
archive=$1 minutes=$2 out=$3
work=$(mktemp -d)
mkdir -p "$out"
tar xzf "$archive" -C "$work"
data=$(dirname "$(find "$work" -name metadata.jsonl | head -1)")
device=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
tf32=$([ "$device" = cuda ] && echo --tf32 || echo "")
common="--init smapgan/assets/default_model --batch 64 --steps 10000000 --workers 0 --cache-images on \
 --lambda-x-rec 10 --lambda-perceptual 0 --ema-decay 0.998 --augment ada --ada-kimg 100 --seed 1 \
 --save-every 200 --export-every 200 --sample-every 400 --log-every 50 $tf32"
python3 scripts/train_candidates.py --data "$data" --runs "$work/runs" --minutes "$minutes" --keep 1 \
  --common "$common" --candidate "continued=--size 64 --latent-spatial-size 16 --latent-channel-size 64 --channel-base 4096 --channel-max 128"
cp -r smapgan/assets/default_model "$work/default_model"
python3 scripts/build_default_model.py --run "$work/runs/continued" --data "$data" --out "$work/default_model" \
  --figure "$work/default_model/readme-figure.png" --trained-on "a lent $device, $minutes more minutes from the shipped export"
tar cf - -C "$work" default_model | split -b 15M - "$out/default_model.tar.part-"
ls -l "$out"
