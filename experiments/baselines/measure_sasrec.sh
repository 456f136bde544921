#!/bin/bash
# SASRec ML-1M epoch, attnlab alternated with the PyTorch port: on 2 threads with a whole
# PyTorch epoch (no extrapolation), and on 1 thread with 20 batches extrapolated. Run from the
# repository root; LOG defaults to /tmp/baselines-sasrec.
set -u
LOG=${LOG:-/tmp/baselines-sasrec}
PAIRS=${PAIRS:-2}
DATA=${DATA:-/work/shared/data/ml-1m.txt}
PY=/usr/bin/python3
B=experiments/baselines
mkdir -p "$LOG" "$LOG/sasrec1"
step() { echo "== $1 $(date -u +%H:%M:%S)" >&2; }

step "SASRec 2 threads, whole epochs"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/sasrec" \
  --a "./build/attnlab train --data $DATA --epochs 1 --threads 2 --eval-every 1000" \
  --b "$PY $B/sasrec.py --data $DATA --threads 2 --epochs 1" > "$LOG/sasrec.runs.jsonl"

step "SASRec 1 thread, torch 20 batches extrapolated"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/sasrec1/sasrec" \
  --a "./build/attnlab train --data $DATA --epochs 1 --threads 1 --eval-every 1000" \
  --b "$PY $B/sasrec.py --data $DATA --threads 1 --batches 20 --warmup 2" \
  > "$LOG/sasrec1/sasrec.runs.jsonl"
step done
