#!/bin/bash
# Short, focused alternations for the ratio table: each side runs one configuration (the
# baseline's fastest formulation from measure_all.sh) in a few seconds, so that A and B see the
# same load on a shared machine; 5 pairs. Run from the repository root; LOG defaults to
# /tmp/baselines-ratios.
set -u
LOG=${LOG:-/tmp/baselines-ratios}
PAIRS=${PAIRS:-5}
PY=/usr/bin/python3
B=experiments/baselines
mkdir -p "$LOG"
step() { echo "== $1 $(date -u +%H:%M:%S)" >&2; }

step "GEMM n=1024"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/gemm" \
  --a "./build/attnlab bench gemm --threads 1 --sizes 1024" \
  --b "$PY $B/sgemm.py --threads 1 --sizes 1024" > "$LOG/gemm.runs.jsonl"

step "exact causal L=4096: attnlab softmax-fused vs torch blocked"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/exact" \
  --a "./build/attnlab bench attention --kind softmax-fused --mask causal --head-dim 64 --thread-counts 1 --lengths 4096 --no-crossover" \
  --b "$PY $B/exact_attention.py --threads 1 --lengths 4096 --impls blocked --block 256" \
  > "$LOG/exact.runs.jsonl"

step "exact causal L=4096: attnlab softmax-fused vs numpy blocked"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/exactnp" \
  --a "./build/attnlab bench attention --kind softmax-fused --mask causal --head-dim 64 --thread-counts 1 --lengths 4096 --no-crossover" \
  --b "$PY $B/numpy_attention.py --threads 1 --lengths 4096 --impls blocked --block 256" \
  > "$LOG/exactnp.runs.jsonl"

step "FAVOR+ causal L=4096 m=256: attnlab vs torch chunked"
$PY $B/alternate.py --pairs "$PAIRS" --log "$LOG/favor" \
  --a "./build/attnlab bench attention --kind favor --mask causal --features 256 --head-dim 64 --thread-counts 1 --lengths 4096 --no-crossover" \
  --b "$PY $B/favor.py --threads 1 --lengths 4096 --features 256 --head-dim 64 --impls chunked --chunks 256" \
  > "$LOG/favor.runs.jsonl"
step done
