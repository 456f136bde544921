#!/bin/sh
# Gradients of the approximations watched while SASRec trains on MovieLens-1M (issue: results a
# paper could cite): FAVOR+ with m = 128 features, cosFormer and LISA-Soft, each trained for the
# full 200 epochs with `--shadow softmax-fused --shadow-every 50` (LISA: its exact attention mode),
# validated every 10 epochs. Each run writes $ROOT/<name>/ (output.txt, shadow.csv, epochs.csv,
# result.csv, checkpoint.npz); run this script again to resume an interrupted run from its last
# validation. Seed 0, one thread per run.
#
#   ATTNLAB=build/attnlab DATA=../shared/data/ml-1m.txt sh experiments/studies/ml1m_shadow.sh [name]
#   ATTNLAB=build/attnlab sh experiments/studies/ml1m_shadow.sh plot    # the plots, from what ran
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

# The plots in $ROOT/plots: the cosine of all gradients together and of each attention layer's
# output against the step, and the validation HR@10 against the step (48 steps per epoch), one
# line per kind; and per kind the cosine of each layer's gradients.
plot() {
  out="$ROOT/plots"
  mkdir -p "$out"
  echo "kind,step,what,name,cosine,relative_error" > "$out/shadow_all.csv"
  echo "kind,epoch,step,valid_hr10" > "$out/valid.csv"
  for k in favor128 cosformer lisa-soft; do
    [ -f "$ROOT/$k/shadow.csv" ] || continue
    awk -F, -v k="$k" 'NR > 1 && ($4 == "all" || $4 == "attention" || $4 == "layer") \
      { print k "," $1 "," $4 "," $5 "," $6 "," $7 }' "$ROOT/$k/shadow.csv" >> "$out/shadow_all.csv"
    sed -n 's/^{"epoch": \([0-9]*\),.*"valid_hr10": \([0-9.]*\),.*/\1 \2/p' "$ROOT/$k/log.jsonl" |
      awk -v k="$k" '{ print k "," $1 "," $1 * 48 "," $2 }' >> "$out/valid.csv"
    "$ATTNLAB" plot --csv "$out/shadow_all.csv" --where kind="$k" --where what=layer --group name \
      --x step --y cosine --title "$k: cosine of approximate and exact gradients, per layer" \
      --out "$out/layers_$k.svg"
  done
  "$ATTNLAB" plot --csv "$out/shadow_all.csv" --where what=all --group kind --x step --y cosine \
    --title "Cosine of the approximate and the exact gradient (all parameters)" \
    --out "$out/gradient_cosine.svg"
  "$ATTNLAB" plot --csv "$out/shadow_all.csv" --where what=attention --group kind,name --x step \
    --y relative_error --log-y --title "Relative error of each attention layer's output" \
    --out "$out/attention_error.svg"
  "$ATTNLAB" plot --csv "$out/valid.csv" --group kind --x step --y valid_hr10 \
    --title "Validation HR@10 (sampled, 100 negatives)" --out "$out/valid_hr10.svg"
}

if [ "$ONLY" = plot ]; then
  plot
  exit 0
fi

run favor128 "--attention favor --features 128 $SASREC"
run cosformer "--attention cosformer $SASREC"
run lisa-soft "--attention lisa-soft --codebooks 8x32 $LISA"
