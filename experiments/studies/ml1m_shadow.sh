#!/bin/sh
# Gradients of the approximations watched while SASRec trains on MovieLens-1M (issue: results a
# paper could cite): FAVOR+ with m = 128 features, cosFormer and LISA-Soft, each trained for the
# full 200 epochs with `--shadow softmax-fused --shadow-every 50` (LISA: its exact attention mode),
# validated every 10 epochs. Each run writes $ROOT/<name>/ (output.txt, shadow.csv, epochs.csv,
# result.csv, checkpoint.npz); run this script again to resume an interrupted run from its last
# validation. Seed 0, one thread per run.
#
#   ATTNLAB=build/attnlab DATA=../shared/data/ml-1m.txt sh experiments/studies/ml1m_shadow.sh [name]
set -eu
ATTNLAB=${ATTNLAB:-attnlab}
DATA=${DATA:-../shared/data/ml-1m.txt}
ROOT=${ROOT:-studies/ml1m_shadow}
ONLY=${1:-}
# The SASRec paper's settings (Kang & McAuley, ICDM 2018, Sec. IV-C), as in ml1m_kinds.sh, with
# validation every 10 epochs for the curves.
SASREC="--data $DATA --dim 50 --blocks 2 --heads 1 --maxlen 200 --dropout 0.2 --lr 0.001 \
--batch 128 --epochs 200 --eval-every 10 --full-ranking --threads 1 --seed 0"
# LISA-Soft as tuned on validation (docs/results.md): width 50, lr 2e-3, 8 x 32 codewords.
LISA="--data $DATA --dim 50 --maxlen 200 --dropout 0.2 --lr 0.002 --batch 128 --epochs 200 \
--eval-every 10 --full-ranking --threads 1 --seed 0"
SHADOW="--shadow softmax-fused --shadow-every 50"

run() {  # name args
  [ -n "$ONLY" ] && [ "$ONLY" != "$1" ] && return 0
  dir="$ROOT/$1"
  mkdir -p "$dir"
  [ -f "$dir/result.csv" ] && { echo "$1: finished"; return 0; }
  resume=""
  [ -f "$dir/checkpoint.npz" ] && resume="--resume"
  # shellcheck disable=SC2086
  "$ATTNLAB" train $2 $SHADOW --checkpoint "$dir/checkpoint.npz" $resume --log "$dir/log.jsonl" \
    --out "$dir" >> "$dir/output.txt" 2>&1
}

run favor128 "--attention favor --features 128 $SASREC"
run cosformer "--attention cosformer $SASREC"
run lisa-soft "--attention lisa-soft --codebooks 8x32 $LISA"
