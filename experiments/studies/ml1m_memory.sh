#!/bin/sh
# Which phase sets the peak tensor memory of each ML-1M study configuration (ml1m_kinds.sh):
# one training epoch, then an evaluation of U users, U = 1 (the run's peak is the training
# step's) and U = 256 (evaluate()'s full batch, as at every validation of the study). Prints
# "name U peak-MiB peak-RSS-MiB" per run; each run's output is kept in $OUT/<name>.<U>.txt.
#
#   ATTNLAB=build/attnlab DATA=../shared/data/ml-1m.txt OUT=memory sh experiments/studies/ml1m_memory.sh
set -eu
ATTNLAB=${ATTNLAB:-attnlab}
DATA=${DATA:-../shared/data/ml-1m.txt}
OUT=${OUT:-studies/ml1m_memory}
. "$(dirname "$0")/ml1m_settings.sh"  # ml1m_kinds.sh's settings, without its schedule
SASREC="$SASREC_SETTINGS --full-ranking"
LISA="$LISA_SETTINGS --full-ranking"
TUNED="$TUNED_SETTINGS --full-ranking"
mkdir -p "$OUT"

probe() {  # name users args...
  name=$1
  users=$2
  shift 2
  "$ATTNLAB" train "$@" --epochs 1 --eval-every 1 --eval-users "$users" --threads 1 --seed 0 \
    > "$OUT/$name.$users.txt" 2>&1
  # The summary's last two columns: peak MiB (tensors) and peak RSS MiB.
  echo "$name $users $(tail -n 1 "$OUT/$name.$users.txt" | awk '{print $(NF-1), $NF}')"
}

for users in 1 256; do
  probe exact "$users" $SASREC --attention softmax-fused
  probe favor128 "$users" $SASREC --attention favor --features 128
  probe favor256 "$users" $SASREC --attention favor --features 256
  probe cosformer "$users" $SASREC --attention cosformer
  probe lisa-soft "$users" $LISA --attention lisa-soft --codebooks 8x32
  probe lisa-mini "$users" $LISA --attention lisa-mini --codebooks 8x32
  probe lisa-base "$users" $LISA --attention lisa-base --codebooks 8x128
  probe lisa-soft-tuned "$users" $TUNED --attention lisa-soft --codebooks 8x32
done
