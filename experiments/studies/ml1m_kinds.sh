#!/bin/sh
# Every attention kind on MovieLens-1M over three seeds (issue: results a paper could cite).
# Each group is one `attnlab sweep` directory under $ROOT (default studies/ml1m): its
# configurations.tsv, runs/<k>/ (output, checkpoint, result) and the collected sweep.csv are the
# record. Two one-thread runs at a time; interrupted runs continue from their last validation
# (--checkpoints), finished ones are skipped: run this script again to resume, and
# `sh ml1m_kinds.sh collect` to print the tables of whatever has finished.
#
#   ATTNLAB=build/attnlab DATA=../shared/data/ml-1m.txt sh experiments/studies/ml1m_kinds.sh
#
# Names after the action run (or collect) only those sweeps, e.g. `sh ml1m_kinds.sh run favor
# cosformer`: a second instance can then fill a core the first leaves idle. Never give two
# instances the same sweep (both would resume the same unfinished runs).
set -eu
ATTNLAB=${ATTNLAB:-attnlab}
DATA=${DATA:-../shared/data/ml-1m.txt}
ROOT=${ROOT:-studies/ml1m}
ACTION=${1:-run}
[ $# -gt 0 ] && shift
ONLY="$*"
SEEDS="seed=0,1,2"
. "$(dirname "$0")/ml1m_settings.sh"
SCHEDULE="--epochs 200 --eval-every 20 --full-ranking"
SASREC="$SASREC_SETTINGS $SCHEDULE"
LISA="$LISA_SETTINGS $SCHEDULE"
TUNED="$TUNED_SETTINGS $SCHEDULE"

sweep() {  # name grid args
  if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $1 "; then
    return 0
  fi
  if [ "$ACTION" = collect ]; then
    echo "== $1"
    "$ATTNLAB" sweep --collect --dir "$ROOT/$1" --grid "$2" || true
  else
    "$ATTNLAB" sweep --checkpoints --jobs 2 --threads 1 --dir "$ROOT/$1" --grid "$2" --args "$3"
  fi
}

# In order of what the conclusions need first: exact and the tuned LISA-Soft (the 0.02 target),
# then the papers' settings of every kind.
sweep exact "attention=softmax-fused;$SEEDS" "$SASREC"
sweep lisa-soft-tuned "attention=lisa-soft;codebooks=8x32;$SEEDS" "$TUNED"
sweep favor "attention=favor;features=128,256;$SEEDS" "$SASREC"
sweep cosformer "attention=cosformer;$SEEDS" "$SASREC"
sweep lisa-soft-mini "attention=lisa-soft,lisa-mini;codebooks=8x32;$SEEDS" "$LISA"
sweep lisa-base "attention=lisa-base;codebooks=8x128;$SEEDS" "$LISA"
# Ablation, not rows of the kinds table: the codebook size at a fixed variant, to tell LISA-Base's
# finer codebooks (8 x 128 against Soft's and Mini's 8 x 32) from its hard codes and compressed
# targets as the reason it is closest to exact attention.
sweep lisa-base-8x32 "attention=lisa-base;codebooks=8x32;$SEEDS" "$LISA"
sweep lisa-soft-8x128 "attention=lisa-soft;codebooks=8x128;$SEEDS" "$LISA"
