#!/usr/bin/env bash
# Continue training the bundled model whenever a GPU is lent, then rebuild everything that depends on
# its weights, in one prepared run:
#   1. unpack the data (one compact archive carried with the tree: `tar czf emoji.tar.gz -C /work/data emoji`);
#   2. train from the shipped export (--init) with the card's options for MINUTES of wall time
#      (scripts/train_candidates.py stops it, keeps the latest export and measures it);
#   3. rebuild the model folder from that export: directions, prior, grids, figures, card
#      (scripts/build_default_model.py, reusing step 2's measurements), and the README's op pictures;
#   4. bring it back through OUT as parts of at most 15 MiB (`cat OUT/default_model.tar.part-* | tar x`).
# Usage: scripts/continue_training.sh DATA_ARCHIVE MINUTES OUT
# Environment: INIT (the model to continue; default the bundled one), TRAIN_ARGS (appended to the
# trainer's options, so they win), WORK (the scratch folder; default a new temporary one).
# A tiny CPU rehearsal (tests/test_continue_training.py runs one):
#   TRAIN_ARGS="--batch 2 --steps 2 --export-every 2 --save-every 2 --log-every 1 --sample-every 1000" \
#     scripts/continue_training.sh tiny.tar.gz 5 /tmp/out
set -euo pipefail
archive=$1 minutes=$2 out=$3
init=${INIT:-smapgan/assets/default_model}
work=${WORK:-$(mktemp -d)}
mkdir -p "$out" "$work"
tar xzf "$archive" -C "$work"
data=$(dirname "$(find "$work" -name metadata.jsonl | head -1)")
device=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
tf32=$([ "$device" = cuda ] && echo --tf32 || echo "")
common="--init $init --batch 64 --steps 10000000 --workers 0 --cache-images on \
 --lambda-x-rec 10 --lambda-perceptual 0 --ema-decay 0.998 --augment ada --ada-kimg 100 --seed 1 \
 --save-every 200 --export-every 200 --sample-every 400 --log-every 50 $tf32 ${TRAIN_ARGS:-}"
python3 scripts/train_candidates.py --data "$data" --runs "$work/runs" --minutes "$minutes" --keep 1 \
  --common "$common" --candidate "continued=--size 64 --latent-spatial-size 16 --latent-channel-size 64 --channel-base 4096 --channel-max 128"
rm -rf "$work/default_model"
cp -r "$init" "$work/default_model"  # its card's configuration table is carried over
python3 scripts/build_default_model.py --run "$work/runs/continued" --data "$data" --out "$work/default_model" \
  --figure "$work/docs/figure.png" --measured "$work/runs/summary.json" \
  --trained-on "a lent $device, $minutes more minutes from the shipped export"
python3 scripts/make_op_pictures.py --model "$work/default_model" --out "$work/docs/ops"
tar cf - -C "$work" default_model docs | split -b 15M - "$out/default_model.tar.part-"
ls -l "$out"
