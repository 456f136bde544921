#!/bin/bash
# The measurements of experiments/baselines/README.md, each side alternated with attnlab
# (A = attnlab, B = the baseline; 3 pairs). Run from the repository root after building
# build/attnlab; LOG (default /tmp/baselines-cmp) receives every run's output.
set -u
LOG=${LOG:-/tmp/baselines-cmp}
PAIRS=${PAIRS:-3}
DATA=${DATA:-/work/shared/data/ml-1m.txt}
PY=/usr/bin/python3
B=experiments/baselines
mkdir -p "$LOG"
step() { echo "== $1 $(date -u +%H:%M:%S)" >&2; }

step "sgemm: OpenBLAS Prescott vs Cooperlake, alternated"
$PY $B/sgemm.py --compare-cores Prescott,Cooperlake --pairs "$PAIRS" --threads 1 \
  --sizes 256,512,1024,2048 > "$LOG/sgemm_cores.jsonl" 2> "$LOG/sgemm_cores.err"

step "GEMM: attnlab vs OpenBLAS (numpy)"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/gemm" \
  --a "./build/attnlab bench gemm --threads 1 --sizes 256,512,1024,2048" \
  --b "$PY $B/sgemm.py --threads 1 --sizes 256,512,1024,2048" > "$LOG/gemm.runs.jsonl"

step "exact causal attention L=4096 d=64: attnlab vs torch and numpy"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/exact" \
  --a "./build/attnlab bench attention --kind softmax-fused --mask causal --head-dim 64 --thread-counts 1 --lengths 4096 --no-crossover" \
  --b "bash -c '$PY $B/exact_attention.py --threads 1 --lengths 4096 --impls explicit,addmm,blocked,sdpa && $PY $B/numpy_attention.py --threads 1 --lengths 4096'" \
  > "$LOG/exact.runs.jsonl"

step "FAVOR+ causal L=4096 m=256 d=64: attnlab vs torch"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/favor" \
  --a "./build/attnlab bench attention --kind favor --mask causal --features 256 --head-dim 64 --thread-counts 1 --lengths 4096 --no-crossover" \
  --b "$PY $B/favor.py --threads 1 --lengths 4096 --features 256 --head-dim 64 --impls cumsum,chunked --chunks 128,256,512" \
  > "$LOG/favor.runs.jsonl"

step "SASRec ML-1M, 2 threads: attnlab epoch vs torch 20 batches (extrapolated)"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/sasrec" \
  --a "./build/attnlab train --data $DATA --epochs 1 --threads 2 --eval-every 1000" \
  --b "$PY $B/sasrec.py --data $DATA --threads 2 --batches 20 --warmup 2" \
  > "$LOG/sasrec.runs.jsonl"
step done
